"""The plugins refuse to load on top of another project's ``orchestrator`` package.

PyPI's ``orchestrator-core`` has the same import name; installed into the same environment, its
``orchestrator/__init__.py`` may replace ours while our ``orchestrator/harvester/`` stays. These
tests build exactly that mixture and expect one clear ImportError, not a failure deep inside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import orchestrator
from orchestrator.harvester.package_guard import MARKER, ForeignOrchestratorError, require_own_orchestrator

pytestmark = pytest.mark.unit

HARVESTER_DIR = Path(orchestrator.__file__).resolve().parent / "harvester"
FOREIGN_INIT = (
    '"""Stands for orchestrator-core: the same import name, another project."""\n__version__ = "4.0.0"\n'
)


def test_this_projects_package_carries_the_marker() -> None:
    assert getattr(orchestrator, MARKER) is True
    require_own_orchestrator()  # the package under test passes
    require_own_orchestrator(orchestrator)


def test_a_package_without_the_marker_is_refused_with_one_clear_message() -> None:
    foreign = ModuleType("orchestrator")
    foreign.__file__ = "/site-packages/orchestrator/__init__.py"
    with pytest.raises(ForeignOrchestratorError) as caught:
        require_own_orchestrator(foreign)
    assert isinstance(caught.value, ImportError)  # what Harvester's plugin factory expects of an import
    message = str(caught.value)
    assert "/site-packages/orchestrator/__init__.py" in message
    assert "orchestrator-core" in message
    assert "dask-panda-session" in message


def test_importing_a_plugin_over_a_foreign_orchestrator_fails_at_import(tmp_path: Path) -> None:
    """A mixed install: another project's ``orchestrator/__init__.py`` with our ``harvester/``."""
    package = tmp_path / "orchestrator"
    package.mkdir()
    (package / "__init__.py").write_text(FOREIGN_INIT, encoding="utf-8")
    shutil.copytree(HARVESTER_DIR, package / "harvester", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", "import orchestrator.harvester.submitter"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator.harvester.package_guard.ForeignOrchestratorError: "), result.stderr
    assert str(package / "__init__.py") in last
    assert "orchestrator-core" in last
    # nothing past the guard ran: the service layer (absent from the mixture) was never imported
    assert "No module named" not in result.stderr
