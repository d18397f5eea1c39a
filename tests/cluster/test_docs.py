"""The docs' commands, run as written against the local cluster, so that a README cannot rot.

* ``deploy/README.md``: every block, in a fresh namespace (only ``NS`` and the ``QUEUE``
  placeholder are filled in), ending with its ``doctor`` run through the ServiceAccount
  kubeconfig the README makes;
* ``README.md``, section "The CLI": the example block, run as that ServiceAccount (so the Role of
  ``deploy/`` is proved to be enough for render, submit, status and delete);
* ``scripts/cluster/README.md``, section "Commands": a second local cluster of its own (state in a
  temporary directory), up, used, down;
* ``charts/dask-panda-session/README.md``, section "Debugging a session by hand": the per-job
  Secret made with openssl and kubectl, the values file, ``helm template/install/test`` and the
  uninstall, in a fresh namespace instead of ``panda``.

The commands come from the markdown files themselves (``tests.docs_blocks``); the test adds only
what the docs say is someone else's job (the proxy Secret is Harvester's credential manager's) or
what they say to add on the local cluster (``-f examples/local-cluster.yaml``), and bounds the one
command that never ends by itself (``kubectl get -w``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import PROXY_SECRET, labelled, prepare_namespace
from tests.conftest import ROOT, TOOLS_BIN
from tests.docs_blocks import section_blocks

pytestmark = pytest.mark.cluster

DEPLOY_README = ROOT / "deploy" / "README.md"
README = ROOT / "README.md"
CLUSTER_README = ROOT / "scripts" / "cluster" / "README.md"
CHART_README = ROOT / "charts" / "dask-panda-session" / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
# The release the chart README's walk-through uses, and the README's CLI example's.
WALKTHROUGH_RELEASE = "dask-1759473585"
CLI_EXAMPLE_RELEASE = "dask-5000000001"
PASSWORD = "walk-through pass phrase 7"


def workdir(tmp_path: Path) -> Path:
    """A directory outside the checkout where the docs' relative paths resolve (files a command
    writes, such as ``harvester.kubeconfig``, stay out of the repository)."""
    for name in ("charts", "deploy", "examples", "values"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def run_shell(
    script: str, cwd: Path, kubeconfig: Path, stdin: str = "", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DPS_NAMESPACE", None)
    # doctor's NetworkPolicy probe cannot tell on simulated nodes: no need to wait its 90 s for that
    env["DPS_PROBE_TIMEOUT"] = "10"
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (
        f"the docs' commands failed (exit {proc.returncode}):\n{script}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


def bounded_watches(script: str, seconds: int = 10) -> str:
    """``kubectl ... -w`` runs until interrupted: run it for a few seconds (exit 124 is the
    bound, any other failure still fails)."""
    return "\n".join(
        f"timeout {seconds} {line} || [ $? -eq 124 ]" if line.rstrip().endswith(" -w") else line
        for line in script.splitlines()
    )


def in_namespace(text: str, old: str, new: str) -> str:
    """The docs' namespace replaced by the test's: ``-n old``, ``old.svc`` and ``old/`` only
    (never inside another word such as ``dask-panda-session``)."""
    text = re.sub(rf"(?<=-n ){re.escape(old)}(?![\w-])", new, text)
    return re.sub(rf"(?<![\w-]){re.escape(old)}(?=\.svc)", new, text)


def test_deploy_readme_then_the_cli_example_as_the_orchestrators_serviceaccount(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    cwd = workdir(tmp_path)
    deploy = [b.text for b in section_blocks(DEPLOY_README, "Setting up a namespace for sessions")]
    assert deploy[0].startswith("NS="), deploy[0]
    *setup, doctor = deploy
    setup[0] = f"NS={namespace}\n"
    assert "doctor" in doctor, doctor
    # Step 3 of deploy/README.md is Harvester's credential manager's: a placeholder proxy.
    proxy = f'kubectl -n "$NS" create secret generic {PROXY_SECRET} --from-literal=x509up_u25606_prod=placeholder\n'
    pv = f"filestore-dask-{namespace}"
    try:
        run_shell("".join([*setup, proxy, doctor.replace("QUEUE", "GOOGLE_DASK")]), cwd, kube_cluster.kubeconfig)
        token_config = cwd / "harvester.kubeconfig"
        assert token_config.stat().st_mode & 0o077 == 0, "the ServiceAccount kubeconfig is readable by others"
        assert "token" in token_config.read_text()

        (example,) = [b.text for b in section_blocks(README, "The CLI") if b.lang == "sh"]
        example = example.replace("dask-panda-session-demo", namespace)
        assert "submit" in example and "delete" in example, example
        out = run_shell(example, cwd, token_config)
        assert CLI_EXAMPLE_RELEASE in out.stdout, out.stdout
        kube_cluster.wait_for(
            "nothing of the example's release left",
            lambda: labelled(kube_cluster, namespace, CLI_EXAMPLE_RELEASE) == [],
            timeout=90,
        )
        secrets = kube_cluster.kubectl_json("get", "secrets", "-n", namespace)["items"]
        assert f"{CLI_EXAMPLE_RELEASE}-secret" not in {s["metadata"]["name"] for s in secrets}
    finally:
        kube_cluster.kubectl_run("delete", "pv", pv, "--ignore-not-found", "--wait=false", check=False)


def definition_for(panda_id: str) -> str:
    """The walk-through's ``pandaJobData.out``: the example interactive job as PanDA would send
    it for the walk-through's PandaID."""
    ((_, params),) = json.loads((ROOT / "examples" / "interactive-job.json").read_text()).items()
    params = {**params, "PandaID": int(panda_id), "attemptNr": 0}
    return json.dumps({panda_id: params})


def test_chart_readme_walk_through(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    cwd = workdir(tmp_path)
    blocks = section_blocks(CHART_README, "Debugging a session by hand")
    secret_block, values_block, install_block, end_block = blocks
    assert [b.lang for b in blocks] == ["sh", "yaml", "sh", "sh"], [b.lang for b in blocks]
    (cwd / "pandaJobData.out").write_text(definition_for(WALKTHROUGH_RELEASE.removeprefix("dask-")))

    # 1. the per-job Secret; the password comes on stdin, as `read -rs` expects it
    made = run_shell(
        in_namespace(secret_block.text, "panda", namespace), cwd, kube_cluster.kubeconfig, stdin=PASSWORD + "\n"
    )
    digests = re.findall(r"\b[0-9a-f]{64}\b", made.stdout)
    assert len(digests) == 1, made.stdout
    secret = kube_cluster.kubectl_json("get", "secret", f"{WALKTHROUGH_RELEASE}-secret", "-n", namespace)
    assert set(secret["data"]) == {
        "pandaJobData.out",
        "tls-ca.pem",
        "tls-cert.pem",
        "tls-key.pem",
        "jupyter-password",
    }
    assert PASSWORD not in made.stdout + made.stderr
    # 2. the per-job values, with the checksum the walk-through printed
    placeholder = "<the sha256sum printed above>"
    assert placeholder in values_block.text
    (cwd / "job.yaml").write_text(values_block.text.replace(placeholder, digests[0]))
    # 3. render, install, watch, test (with the local cluster's file, as the README says there)
    install = in_namespace(install_block.text, "panda", namespace)
    assert install.count("-f job.yaml") == 2, install
    install = install.replace("-f job.yaml", "-f job.yaml -f examples/local-cluster.yaml")
    tested = run_shell(bounded_watches(install), cwd, kube_cluster.kubeconfig)
    assert "Succeeded" in tested.stdout, tested.stdout[-3000:]
    # 4. end it: nothing of the release is left
    run_shell(in_namespace(end_block.text, "panda", namespace), cwd, kube_cluster.kubeconfig)
    kube_cluster.wait_for(
        "nothing of the walk-through's release left",
        lambda: labelled(kube_cluster, namespace, WALKTHROUGH_RELEASE) == [],
        timeout=90,
    )


def test_cluster_readme_commands_on_a_second_cluster(tmp_path: Path) -> None:
    """The test cluster's own recipe, on a cluster of its own (the binaries are cached by then:
    ``build`` is a check), so the tier's cluster is never touched."""
    (block,) = [b.text for b in section_blocks(CLUSTER_README, "Commands") if b.lang == "sh"]
    assert "scripts/test-cluster.sh up" in block and "down" in block, block
    env = dict(os.environ)
    env["DPS_CLUSTER_STATE"] = str(tmp_path / "cluster")
    env.pop("KUBECONFIG", None)
    try:
        proc = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert proc.returncode == 0, f"{block}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        assert "node-000000" in proc.stdout, proc.stdout  # `kubectl get nodes` on the second cluster
        assert "status: up" in proc.stdout, proc.stdout
        assert not (tmp_path / "cluster").exists(), "down left the state directory"
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-cluster.sh"), "down"],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
