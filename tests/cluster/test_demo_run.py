"""The README's first command, `scripts/demo.sh`, run as a user runs it after
`eval "$(scripts/test-cluster.sh env)"`: on the tier's local cluster (it must recognise it as its
own and set up its namespace), both example sessions followed to the end and swept, then the one
interactive session whose processes run for real, with the seed's computation."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.cluster.conftest import KubeCluster
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster


def test_the_demo_runs_end_to_end_on_the_local_cluster(kube_cluster: KubeCluster) -> None:
    namespace = f"demo-{os.urandom(3).hex()}"
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kube_cluster.kubeconfig)
    env["DPS_DEMO_NAMESPACE"] = namespace
    try:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo.sh")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    finally:
        kube_cluster.delete_namespace(namespace)
        kube_cluster.kubectl_run("delete", "pv", f"{namespace}-filestore", "--ignore-not-found", check=False)
    out = proc.stdout
    assert proc.returncode == 0, f"{out[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert "KUBECONFIG names the local cluster: using it (pods are simulated)" in out
    assert "nothing: both sessions are gone" in out
    # the real session: login checks, the proxied dashboard, the seed's computation, nothing left
    assert re.search(r"ok +a wrong password is refused", out), out[-3000:]
    assert re.search(r"ok +logged in: the scheduler's real dashboard", out), out[-3000:]
    assert re.search(r"ok +result: shape \(5000,\)", out), out[-3000:]
    assert "no process left" in out
    # the cluster the demo found running is still up: it did not start it, so it does not stop it
    assert kube_cluster.namespace_gone("default") is False
