"""A wheel built from the checkout and installed into a fresh venv, with the checkout out of
reach: the packaging test (chart tier) renders with it, the cluster tier submits with it.

The wheel is built from a copy of the package's sources (so no `build/` or `*.egg-info` is left in
the checkout and no stale build output can leak into the wheel), installed with pip and its
dependencies from the package index, and run with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# What pyproject.toml builds the wheel from: the package, its metadata and the data it maps in.
SOURCES = ("pyproject.toml", "README.md", "orchestrator", "charts", "values", "deploy")
ROLE = ROOT / "deploy" / "orchestrator-rbac.yaml"
JOB = ROOT / "examples" / "batch-job.json"


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


class Installed:
    """The venv with the wheel installed, and a working directory outside the checkout."""

    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir
        self.cli = str(venv / "bin" / "dask-panda-session")
        self.python = str(venv / "bin" / "python")

    def site_data(self) -> dict[str, str]:
        code = (
            "import json, orchestrator, orchestrator.resources as r;"
            "print(json.dumps({'package': orchestrator.__file__, 'chart': str(r.chart_dir()),"
            "'values': str(r.values_dir()), 'role': str(r.role_file())}))"
        )
        return dict(json.loads(run([self.python, "-c", code], self.workdir).stdout))


def install_wheel(base: Path) -> Installed:
    """Build the wheel under `base`, install it into `base/venv`; the working directory
    `base/elsewhere` holds a copy of the example batch job as `job.json`."""
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], base)
    (wheel,) = dist.glob("dask_panda_session-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], base)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], base)
    workdir = base / "elsewhere"
    workdir.mkdir()
    shutil.copy2(JOB, workdir / "job.json")
    return Installed(venv, workdir)
