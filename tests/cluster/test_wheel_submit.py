"""A fresh venv with only the built wheel submits, shows and deletes a session on the local
cluster, from a directory outside the checkout: what a Harvester site gets from
`pip install <checkout or wheel>`, with the chart and the queue values the wheel carries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import labelled, prepare_namespace
from tests.conftest import ROOT, TOOLS_BIN
from tests.wheel import JOB, install_wheel

pytestmark = pytest.mark.cluster


def test_the_installed_wheel_submits_shows_and_deletes_a_session(
    kube_cluster: KubeCluster,
    namespace: str,
    shared_pv: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    installed = install_wheel(tmp_path_factory.mktemp("wheel"))
    shutil.copy2(ROOT / "examples" / "local-cluster.yaml", installed.workdir / "local-cluster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DPS_NAMESPACE")}
    env["KUBECONFIG"] = str(kube_cluster.kubeconfig)
    release = "dask-" + next(iter(json.loads(JOB.read_text(encoding="utf-8"))))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [installed.cli, "--helm", str(TOOLS_BIN / "helm"), "-n", namespace, *args],
            cwd=installed.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    cli("submit", "job.json", "-f", "local-cluster.yaml", "--timeout", "300")
    shown = json.loads(cli("status", release, "-o", "json").stdout)
    assert [s["release"] for s in shown] == [release], shown
    # helm's record of the release, made by the wheel's CLI with the wheel's chart
    record = kube_cluster.kubectl_json("get", "secrets", "-n", namespace, "-l", f"name={release},owner=helm")
    assert len(record["items"]) == 1, record
    cli("delete", release)
    assert labelled(kube_cluster, namespace, release) == []
