"""Where the chart, the queue values and the deploy Role are, in a checkout and in an installed wheel.

The package needs three things that live outside `orchestrator/` in the repository: the chart
(`charts/dask-panda-session`), the per-queue values files (`values/*.yaml`) and the orchestrator's
Role (`deploy/orchestrator-rbac.yaml`, which `doctor` reads). The wheel carries them as package
data under `orchestrator/_data/` (pyproject.toml maps the repository's own directories there at
build time, so git holds one copy of each). An installed package finds its packaged copies through
:mod:`importlib.resources`; a checkout, which has no `_data/`, uses the repository's files.

The CLI's `--chart` / `--values-dir` and the Harvester queue parameter `chart` override these.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

__all__ = ["CHART_NAME", "chart_dir", "role_file", "values_dir"]

CHART_NAME: Final = "dask-panda-session"

_CHECKOUT: Final = Path(__file__).resolve().parent.parent
"""The repository root when the package is run from a checkout (or an editable install)."""


def _data(*parts: str) -> Path | None:
    """A packaged data path, when this package is an installed wheel that has one."""
    node = files("orchestrator").joinpath("_data", *parts)
    # Wheels are always unpacked on install, so the Traversable is a real file-system path
    # (helm needs one); anything else (a zip import) falls back to the checkout's layout.
    if isinstance(node, Path) and node.exists():
        return node
    return None


def _find(*parts: str) -> Path:
    return _data(*parts) or _CHECKOUT.joinpath(*parts)


def chart_dir() -> Path:
    """The chart directory (holds Chart.yaml, values.yaml, values.schema.json, templates/)."""
    return _find("charts", CHART_NAME)


def values_dir() -> Path:
    """The directory of the per-queue values files (`<QUEUE>.yaml`)."""
    return _find("values")


def role_file() -> Path:
    """The orchestrator's namespaced Role (every right the code and helm need)."""
    return _find("deploy", "orchestrator-rbac.yaml")
