"""The chart's scripts live in files/ and reach the containers unchanged.

Why: shell and Python written inline in templates could be neither linted nor read as code, and a
template expression in them would be rendered into a command. Each script is now a file that
the templates include verbatim (values reach it as environment variables); these tests lint the
files and check that every multi-line command a render produces is one of them, byte for byte.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import Rendered, job_values, render
from tests.conftest import CHART, VALUES_DIR

FILES = CHART / "files"
SHELL_SCRIPTS = sorted(FILES.glob("*.sh"))
PYTHON_SCRIPTS = sorted(FILES.glob("*.py"))

# (object name suffix, container) -> the files its command runs (JupyterLab's start script gets
# its config writer and the dashboard's forwarder as arguments)
EXPECTED = {
    ("prepare", "prepare"): ("prepare-job-dir.sh",),
    ("cleanup", "cleanup"): ("cleanup-job-dir.sh",),
    ("pilot", "wait-for-scheduler"): ("wait-for-scheduler.py",),
    ("pilot", "wait-for-job-definition"): ("wait-for-job-definition.py",),
    ("pilot", "wait-for-address"): ("wait-for-address.py",),
    ("pilot", "pilot"): ("pilot-wrapper.sh",),
    ("worker-0", "wait-for-scheduler"): ("wait-for-scheduler.py",),
    ("jupyterlab", "wait-for-scheduler"): ("wait-for-scheduler.py",),
    ("jupyterlab", "jupyterlab"): ("jupyterlab-start.sh", "jupyterlab-config.py", "dashboard-forwarder.py"),
    ("test", "test"): ("test-connection.py",),
}


def test_there_are_scripts_to_check() -> None:
    expected = {name for names in EXPECTED.values() for name in names}
    assert {p.name for p in [*SHELL_SCRIPTS, *PYTHON_SCRIPTS]} == expected


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_syntax(script: Path) -> None:
    """`sh -n`: the images run these with /bin/sh, so no bash-only syntax parses here either."""
    proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/bootstrap.sh installs it as root with apt-get)")
    proc = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", PYTHON_SCRIPTS, ids=lambda p: p.name)
def test_python_compiles(script: Path) -> None:
    compile(script.read_text(encoding="utf-8"), str(script), "exec")


def _containers(rendered: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, spec in rendered.pod_specs():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            out[(name, container["name"])] = container
    return out


@pytest.fixture(scope="module")
def scripted(helm_bin: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Renders holding every scripted container: interactive mode, hooks and the helm test, and
    the pilot's address gate (a LoadBalancer whose address the cloud assigns)."""
    values = job_values("interactive", tests={"enabled": True, "minWorkers": 1})
    rendered = render(helm_bin, [values], [VALUES_DIR / "example.yaml"])
    gate = render(helm_bin, [values], [VALUES_DIR / "GOOGLE_DASK.yaml"])
    return {**_containers(rendered), **_containers(gate)}


@pytest.mark.parametrize("where", sorted(EXPECTED), ids=lambda w: f"{w[0]}/{w[1]}")
def test_each_container_runs_its_file_verbatim(
    scripted: dict[tuple[str, str], dict[str, Any]], where: tuple[str, str]
) -> None:
    suffix, container_name = where
    key = next((k for k in scripted if k[0].endswith(f"-{suffix}") and k[1] == container_name), None)
    assert key is not None, f"no container {container_name} in an object ending -{suffix}: {sorted(scripted)}"
    container = scripted[key]
    for name in EXPECTED[where]:
        script = (FILES / name).read_text(encoding="utf-8")
        assert script in [*container.get("command", []), *container.get("args", [])], name


def test_no_other_script_is_inline(helm_bin: Path) -> None:
    """Every multi-line command or argument of every container is a file of files/."""
    scripts = {p.read_text(encoding="utf-8") for p in [*SHELL_SCRIPTS, *PYTHON_SCRIPTS]}
    for mode in ("batch", "interactive"):
        rendered = render(
            helm_bin,
            [job_values(mode, tests={"enabled": True, "minWorkers": 1}, tls={"enabled": True})],
            [VALUES_DIR / "example.yaml"],
        )
        for (pod, name), container in _containers(rendered).items():
            for part in [*container.get("command", []), *container.get("args", [])]:
                if "\n" in str(part):
                    assert part in scripts, f"{pod}/{name} runs an inline script:\n{part}"
