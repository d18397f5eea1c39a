"""The diagrams kept as Mermaid source must name what the code and the chart have.

The state diagram of docs/harvester.md names every phase (with the Harvester status the monitor
reports it as), every reason and every deadline of `orchestrator.session`; the release diagram of
the README names every component, every hook and every gate of the chart. A phase, reason,
status mapping, hook or gate added, renamed or removed without the diagram fails here.
"""

from __future__ import annotations

import re

import pytest

from orchestrator.harvester.statuses import PHASE_TO_STATUS
from orchestrator.session.vocabulary import (
    CLEANUP,
    FINAL_PHASES,
    JUPYTERLAB,
    PILOT,
    PREPARE,
    SCHEDULER,
    WORKER,
    Deadline,
    Phase,
    Reason,
)
from tests.conftest import CHART, ROOT

pytestmark = pytest.mark.unit

TEMPLATES = CHART / "templates"


def mermaid_after(path: str, heading: str) -> str:
    """The first ```mermaid block after `heading` in the file (fails when there is none)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    assert heading in text, f"{path} has no {heading!r} section"
    match = re.search(r"```mermaid\n(.*?)\n```", text.split(heading, 1)[1], re.S)
    assert match, f"{path}: no mermaid block after {heading!r}"
    return match.group(1)


STATES = mermaid_after("docs/harvester.md", "## A session's states")
RELEASE = mermaid_after("README.md", "## The release")


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z][A-Za-z0-9_.-]*", text))


def transitions(diagram: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*(\S+)\s+-->\s+(\S+?):", diagram, re.M)


def test_the_state_diagram_is_a_state_diagram_of_every_phase() -> None:
    assert STATES.lstrip().startswith("stateDiagram-v2")
    for phase in Phase:
        status = PHASE_TO_STATUS[phase]
        assert f'state "{phase} (Harvester: {status})" as {phase}' in STATES, phase
    states = {s for pair in transitions(STATES) for s in pair} - {"[*]"}
    assert states == {str(p) for p in Phase}
    entered = {b for _, b in transitions(STATES)}
    left_for_good = {a for a, b in transitions(STATES) if b == "[*]"}
    assert entered >= {str(p) for p in Phase}
    assert left_for_good == {str(p) for p in FINAL_PHASES}


def test_the_state_diagram_names_every_reason_and_deadline() -> None:
    named = words(STATES)
    missing = [reason.value for reason in Reason if reason.value not in named]
    assert not missing, f"reasons not in the state diagram of docs/harvester.md: {missing}"
    for deadline in Deadline:
        assert f"{deadline} deadline" in STATES, deadline


def test_the_state_diagram_says_who_ends_a_release() -> None:
    for who in ("activeDeadlineSeconds", "enforce", "kill_workers", "sweep_worker", "gc", "idle timeout"):
        assert who in STATES, who


def chart_hooks() -> set[str]:
    """Every Helm hook the chart's templates declare (a templated choice lists both words)."""
    hooks: set[str] = set()
    for template in TEMPLATES.rglob("*.yaml"):
        for line in re.findall(r"helm\.sh/hook:\s*(.+)", template.read_text(encoding="utf-8")):
            hooks.update(
                re.findall(
                    r"\b(pre-install|post-install|pre-delete|post-delete|pre-upgrade|post-upgrade|test)\b",
                    line,
                )
            )
    return hooks


def chart_gates() -> set[str]:
    """The init containers that hold a session pod until what it needs is there."""
    return set(
        re.findall(
            r"^- name: (wait-for-[a-z-]+)", (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8"), re.M
        )
    )


def test_the_release_diagram_names_every_hook_gate_and_component() -> None:
    assert RELEASE.lstrip().startswith("flowchart")
    hooks = chart_hooks()
    assert {"pre-install", "pre-delete", "post-delete", "test"} <= hooks
    for hook in hooks:
        assert f"{hook} hook" in RELEASE, hook
    gates = chart_gates()
    assert gates, "no gate found in the chart's _helpers.tpl"
    for gate in gates:
        assert f"gate: {gate}" in RELEASE, gate
    lowered = RELEASE.lower()
    for component in (SCHEDULER, WORKER, PILOT, JUPYTERLAB, PREPARE, CLEANUP):
        assert component in lowered, component
    for part in ("shared volume", "per-job Secret", "NetworkPolicies", "activeDeadlineSeconds"):
        assert part in RELEASE, part
