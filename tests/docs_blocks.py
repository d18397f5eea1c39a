"""The fenced code blocks of a markdown section, so that tests run the commands the docs show
instead of a copy of them that could drift."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language tag, its text (the fence's indentation removed) and the
    line of the opening fence (for messages)."""

    lang: str
    text: str
    line: int


def section_blocks(path: Path, heading: str) -> list[Block]:
    """Every fenced block under the heading whose text is ``heading`` (up to the next heading of
    the same or a higher level), in order. Blocks nested in list items are found too."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    level: int | None = None
    fence: tuple[str, str, str, int] | None = None  # indent, marker, lang, line
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        if fence is not None:
            indent, marker, lang, start = fence
            if line.strip() == marker:
                if level is not None:
                    blocks.append(Block(lang, "\n".join(body) + "\n", start))
                fence, body = None, []
            else:
                body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            continue
        opening = _FENCE.match(line)
        if opening:
            fence = (opening.group(1), opening.group(2), opening.group(3), number)
            continue
        title = _HEADING.match(line)
        if title:
            depth = len(title.group(1))
            if level is not None and depth <= level:
                break
            if title.group(2) == heading:
                level = depth
    if level is None:
        raise AssertionError(f"{path.name} has no section {heading!r}")
    return blocks
