"""`helm lint --strict` of every queue values file in both modes, with Helm 4 and Helm 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.conftest import MODES, QUEUE_FILES, job_values, run_helm
from tests.conftest import CHART, VALUES_DIR


def test_queue_values_files_exist() -> None:
    assert {"GOOGLE_DASK.yaml", "example.yaml"} <= set(QUEUE_FILES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("queue_file", QUEUE_FILES)
def test_lint_strict(helm_bin: Path, queue_file: str, mode: str) -> None:
    proc = run_helm(
        helm_bin,
        ["lint", "--strict", str(CHART)],
        values=[job_values(mode)],
        files=[VALUES_DIR / queue_file],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_lint_fails_without_job_values(helm_bin: Path) -> None:
    """The chart's defaults alone are not a session: lint must say which field is missing."""
    proc = run_helm(helm_bin, ["lint", "--strict", str(CHART)])
    assert proc.returncode != 0
    assert "pandaId" in proc.stdout + proc.stderr
