"""Fixtures of the smoke tier: the pinned venv, the helm binary and rendered releases to run.

The smoke tier fails (never skips) when its environment is missing: CI must prove it ran.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from orchestrator.job import parse_job
from orchestrator.values import load_queue, render_values
from tests.chart.jobs import job_with_input_files
from tests.conftest import CHART, ROOT, VALUES_DIR, tool
from tests.smoke.kubelet import Kubelet, free_ports, helm_template

SMOKE_VENV = ROOT / ".venv-smoke"
QUEUE_VALUES = VALUES_DIR / "GOOGLE_DASK.yaml"
NAMESPACE = "smoke"


class DirFactory(Protocol):
    """Makes fresh directories: pytest's tmp_path_factory, or the demo's own temporary root."""

    def mktemp(self, basename: str) -> Path: ...


@pytest.fixture(scope="session")
def smoke_venv() -> Path:
    """.venv-smoke (scripts/bootstrap.sh --smoke) holds the images' pinned versions."""
    if not (SMOKE_VENV / "bin" / "dask").exists() or not (SMOKE_VENV / "bin" / "jupyter-lab").exists():
        pytest.fail(f"{SMOKE_VENV} is missing or incomplete: run scripts/bootstrap.sh --smoke")
    return SMOKE_VENV


@dataclass(frozen=True)
class Ports:
    """Free ports, given to the chart as values (never patched into rendered commands)."""

    scheduler: int
    dashboard: int
    jupyterlab: int

    def values(self) -> dict[str, str]:
        return {
            "scheduler.port": str(self.scheduler),
            "scheduler.dashboardPort": str(self.dashboard),
            "jupyterlab.port": str(self.jupyterlab),
            # every worker on this one host: let each pick its own dashboard port
            "workers.dashboardPort": "0",
        }


def new_ports() -> Ports:
    scheduler, dashboard, jupyterlab = free_ports(3)
    return Ports(scheduler, dashboard, jupyterlab)


def new_panda_id() -> str:
    return str(6_000_000_000 + secrets.randbelow(999_999_999))


@dataclass(frozen=True)
class JobRelease:
    """What the orchestrator makes of one job: the values file for helm and the per-job Secret."""

    values_file: Path
    secret_name: str
    secret: dict[str, str]
    job_dir: str  # <PandaID>-<attempt> under the jobs directory

    @property
    def definition(self) -> bytes:
        return self.secret["pandaJobData.out"].encode("utf-8")


def job_release(
    tmp_path_factory: DirFactory,
    panda_id: str,
    mode: str,
    ports: Ports,
    *,
    input_files: int = 2,
    password: str | None = None,
    **fields: Any,
) -> JobRelease:
    """The job through the orchestrator's own data path (parse_job, render_values), as the service
    would install it: the values (no definition, no password) go to helm in a file, the Secret's
    data to the smoke kubelet. The ports are values, so the session addresses match the render."""
    params = job_with_input_files(input_files, pandaid=int(panda_id), **fields)
    if mode == "interactive":
        params.update(daskMode="interactive", secrets={"password": password})
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(params, queue_limits=queue.limits)
    overrides: dict[str, Any] = {}
    for dotted, value in ports.values().items():
        node = overrides
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = int(value)
    rendered = render_values(job, queue, namespace=NAMESPACE, overrides=overrides)
    directory = tmp_path_factory.mktemp("job-values")
    directory.chmod(0o700)
    values_file = directory / "job.json"
    values_file.touch(mode=0o600)
    values_file.write_text(json.dumps(rendered.values))
    assert rendered.secret_name is not None
    return JobRelease(
        values_file, rendered.secret_name, rendered.secret.reveal(), f"{job.pandaid}-{job.attempt}"
    )


def render(
    release: str,
    panda_id: str,
    ports: Ports,
    extra: Mapping[str, str] | None = None,
    helm: str = "helm",
    values_files: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """The chart rendered for the queue GOOGLE_DASK, plus the given values only.

    Secret values go in values_files (never on helm's command line, where `ps` would show them).
    """
    values = {**ports.values(), **(extra or {})}
    return helm_template(
        tool(helm),
        CHART,
        release,
        NAMESPACE,
        values_files=[QUEUE_VALUES, *values_files],
        set_values=values,
        set_strings={"job.pandaId": panda_id},
    )


def make_kubelet(
    tmp_path_factory: DirFactory,
    venv: Path,
    documents: list[dict[str, Any]],
    secrets_data: Mapping[str, Mapping[str, str]] | None = None,
) -> Kubelet:
    workdir = tmp_path_factory.mktemp("kubelet")
    workdir.chmod(0o755)
    return Kubelet(documents, NAMESPACE, workdir, venv, secrets=secrets_data)
