"""The supplemental error-code table of docs/harvester.md must say what the code does.

Harvester operators read the table, PanDA shows the codes: a code renumbered, added or remapped in
``orchestrator/harvester/error_codes.py`` without the table (or the reverse) fails here.
"""

from __future__ import annotations

import re
from itertools import takewhile
from pathlib import Path
from typing import NamedTuple

import pytest

from orchestrator.harvester.error_codes import REASON_CODES, ErrorCodes

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "harvester.md"
HEADING = "### Supplemental error codes"


class Row(NamedTuple):
    """One row of the table: the code, its ErrorCodes name, and the reasons the row lists."""

    code: int
    name: str
    reasons: tuple[str, ...]


def table_rows(text: str) -> list[Row]:
    """The rows of the first markdown table after the error-code heading.

    The third column reads ``<phase> / <Reason>, <Reason> (comment)`` or ``... : comment`` when the
    row is reached through session reasons; any other text (``finished ...``) lists none.
    """
    assert HEADING in text, f"docs/harvester.md has no {HEADING!r} section"
    lines = text.split(HEADING, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = list(takewhile(lambda line: line.startswith("|"), lines[start:]))
    header, rule, *rows = table
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "code",
        "name",
        "session (phase / reason)",
    ]
    assert set(rule.replace("|", "").replace("-", "").strip()) <= {":", ""}
    parsed = []
    for line in rows:
        code, name, session = (cell.strip() for cell in line.strip().strip("|").split("|"))
        reasons: tuple[str, ...] = ()
        if " / " in session:
            listed = re.split(r"[(:]", session.split(" / ", 1)[1], maxsplit=1)[0]
            reasons = tuple(part.strip() for part in listed.split(",") if part.strip())
        parsed.append(Row(int(code), name.split()[0], reasons))
    return parsed


def code_constants() -> dict[str, int]:
    return {name: value for name, value in vars(ErrorCodes).items() if name.isupper()}


def test_the_table_lists_every_code_once_with_its_name() -> None:
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    names = [row.name for row in rows]
    assert len(names) == len(set(names)), "a name appears twice in the table"
    assert {row.name: row.code for row in rows} == code_constants()


def test_the_reasons_of_each_row_map_to_its_code() -> None:
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    listed = [reason for row in rows for reason in row.reasons]
    assert len(listed) == len(set(listed)), "a reason appears in two rows"
    documented = {reason: row.code for row in rows for reason in row.reasons}
    assert documented == dict(REASON_CODES)


def test_the_parser_sees_a_difference(tmp_path: Path) -> None:
    """The two tests above can fail: a renumbered code and a moved reason are both caught."""
    text = DOC.read_text(encoding="utf-8")
    renumbered = text.replace("| 5853 | UNSCHEDULABLE |", "| 5859 | UNSCHEDULABLE |")
    assert renumbered != text
    assert {row.name: row.code for row in table_rows(renumbered)} != code_constants()
    moved = text.replace("failed / CrashLoopBackOff", "failed / Unschedulable")
    assert moved != text
    assert {r: row.code for row in table_rows(moved) for r in row.reasons} != dict(REASON_CODES)
