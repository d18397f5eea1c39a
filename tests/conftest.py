"""Shared test configuration: tier markers by directory, repository paths and the pinned tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = Path(os.environ.get("DPS_TOOLS_BIN", ROOT / ".tools" / "bin"))
CHART = ROOT / "charts" / "dask-panda-session"
VALUES_DIR = ROOT / "values"

TIERS = ("unit", "chart", "cluster", "smoke", "bench")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the tier named by its directory, so `-m unit` etc. select a tier."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[1]))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def chart_path() -> Path:
    return CHART


def tool(name: str) -> Path:
    """A pinned tool from .tools/bin; fail clearly when bootstrap has not run."""
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap.sh first")
    return path


@pytest.fixture(scope="session", params=["helm", "helm3"], ids=["helm4", "helm3"])
def helm_bin(request: pytest.FixtureRequest) -> Path:
    """Both Helm majors: every chart test runs with Helm 4 and Helm 3."""
    return tool(str(request.param))
