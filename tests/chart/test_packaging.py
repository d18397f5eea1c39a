"""The built wheel works on its own: a fresh venv with only the wheel (and its dependencies from
the package index) renders a job with the chart and the queue values it carries, from a directory
outside the checkout, with Helm 4 and Helm 3.

The wheel is built from a copy of the package's sources (so the test leaves no `build/` or
`*.egg-info` in the checkout and no stale build output can leak into the wheel), installed with
pip into a venv made in a temporary directory, and run with no PYTHONPATH: the checkout is nowhere
in reach, so a file the wheel lacks fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CHART, ROOT, VALUES_DIR
from tests.wheel import JOB, ROLE, Installed, files, install_wheel, run

pytestmark = pytest.mark.chart


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install_wheel(tmp_path_factory.mktemp("wheel"))


def _manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _kinds_and_names(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_the_installed_package_uses_its_own_packaged_copies(installed: Installed) -> None:
    found = installed.site_data()
    for key in ("package", "chart", "values", "role"):
        assert Path(found[key]).is_relative_to(installed.venv), (key, found[key])
    # Every file of the chart (files/, templates/tests/, .helmignore), every queue file and the Role.
    assert files(Path(found["chart"])) == files(CHART)
    assert files(Path(found["values"])) == files(VALUES_DIR)
    assert Path(found["role"]).read_bytes() == ROLE.read_bytes()


def test_render_outside_the_checkout_gives_the_charts_manifests(installed: Installed, helm_bin: Path) -> None:
    args = ["--helm", str(helm_bin), "render", "job.json", "-q", "GOOGLE_DASK", "-o", "manifests"]
    objects = _manifests(run([installed.cli, *args], installed.workdir).stdout)
    # The same objects as the checkout's own CLI renders from the checkout's chart.
    ours = run([sys.executable, "-m", "orchestrator.cli", *args[:3], str(JOB), *args[4:]], ROOT)
    assert _kinds_and_names(objects) == _kinds_and_names(_manifests(ours.stdout))
    release = "dask-" + next(iter(json.loads(JOB.read_text(encoding="utf-8"))))
    # The session's parts, its hooks (from templates/) and its helm test (templates/tests/).
    for part in ("Pod/scheduler", "Pod/pilot", "Pod/worker-0", "Pod/test", "Job/prepare", "Job/cleanup"):
        kind, suffix = part.split("/")
        assert (kind, f"{release}-{suffix}") in _kinds_and_names(objects), part
    version = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["version"]
    labels = [o["metadata"].get("labels", {}).get("helm.sh/chart") for o in objects]
    assert f"dask-panda-session-{version}" in labels


def test_chart_and_values_dir_options_are_honoured(installed: Installed, tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    meta["version"] = "99.0.0-site"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    values = tmp_path / "values"
    values.mkdir()
    queue = yaml.safe_load((VALUES_DIR / "GOOGLE_DASK.yaml").read_text(encoding="utf-8"))
    queue.setdefault("queue", {})["name"] = "SITE_QUEUE"
    (values / "SITE_QUEUE.yaml").write_text(yaml.safe_dump(queue), encoding="utf-8")
    helm = str(ROOT / ".tools" / "bin" / "helm")
    render = [installed.cli, "--helm", helm, "render", "job.json", "-q", "SITE_QUEUE", "-o", "manifests"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    by_options = [*render, "--chart", str(chart), "--values-dir", str(values)]
    by_env = {**env, "DPS_CHART": str(chart), "DPS_VALUES_DIR": str(values)}
    for args, environ in ((by_options, env), (render, by_env)):
        proc = subprocess.run(
            args, cwd=installed.workdir, env=environ, capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stderr
        labels = {o["metadata"].get("labels", {}).get("helm.sh/chart") for o in _manifests(proc.stdout)}
        assert labels == {"dask-panda-session-99.0.0-site"}
    # The packaged values directory has no SITE_QUEUE: without --values-dir the queue is unknown.
    bad = subprocess.run(
        render, cwd=installed.workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2
    assert "SITE_QUEUE.yaml" in bad.stderr and "GOOGLE_DASK" in bad.stderr


def test_harvester_path_renders_with_the_packaged_values(installed: Installed) -> None:
    """The plugins' own path (queue parameters -> Settings -> render), no checkout in reach."""
    code = (
        "import json, sys\n"
        "from orchestrator.harvester.queue_params import settings_from_params\n"
        "from orchestrator.service import SessionService\n"
        "service = SessionService(settings_from_params({'queueName': 'GOOGLE_DASK', 'namespace': 'panda'}))\n"
        "job, rendered = service.render(json.load(open('job.json')))\n"
        "print(json.dumps({'release': rendered.release, 'queue': rendered.values['queue']['name']}))\n"
    )
    out = json.loads(run([installed.python, "-c", code], installed.workdir).stdout)
    pandaid = next(iter(json.loads(JOB.read_text(encoding="utf-8"))))
    assert out == {"release": f"dask-{pandaid}", "queue": "GOOGLE_DASK"}
