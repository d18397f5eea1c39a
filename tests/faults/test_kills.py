"""Processes killed mid-submit: helm SIGKILLed while it waits for the prepare hook, and the
orchestrator process SIGKILLed between the per-job Secret and the install. The same job is then
submitted again, as Harvester would: it must end with exactly one deployed release (whatever the
dead submit left: a ``pending-install`` release, a Secret without a release) that runs and is
swept clean.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, service, values_file
from tests.conftest import TOOLS_BIN
from tests.faults.flow import (
    check_one_release,
    describe,
    hooks_take,
    retry_submit,
    secret_exists,
    settings_for,
    start_submit_process,
    sweep_and_check,
    wait_pod,
    wait_running,
)
from tests.faults.inject import children, processes, sigkill, wait_for_helm
from tests.faults.ledger import FaultRecord

pytestmark = pytest.mark.faults

# Short: a lock or a pending-install left by a dead submitter is stale once older than this.
INSTALL_TIMEOUT = 20.0


@pytest.mark.parametrize("also_kill_submitter", [False, True], ids=["helm", "helm-and-submitter"])
def test_helm_sigkilled_during_the_prepare_hook(
    kube_cluster: KubeCluster,
    faults_ns: str,
    tmp_path: Path,
    fault: FaultRecord,
    also_kill_submitter: bool,
) -> None:
    fault.fault = "helm SIGKILLed during the prepare hook, then resubmitted"
    pandaid = 9201 if also_kill_submitter else 9202
    release = f"dask-{pandaid}"
    doc = job(pandaid)
    extra = [values_file(tmp_path, "t", {**fast_timeouts(startup=60), **hooks_take(5)})]
    fault.sessions += 1
    first: dict[str, Any] = {}
    if also_kill_submitter:
        # The whole submitter dies with helm (a node of Harvester lost): nothing undoes anything.
        proc = start_submit_process(
            tmp_path,
            "first",
            settings_for(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT),
            doc,
            extra,
        )
    else:
        svc0 = service(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT)

        def submit() -> None:
            try:
                first["result"] = svc0.submit(doc, values_files=extra)
            except Exception as err:
                first["error"] = err

        thread = threading.Thread(target=submit, daemon=True)
        thread.start()
    try:
        wait_pod(kube_cluster, faults_ns, release, "prepare")
        helm = wait_for_helm(kube_cluster.kubeconfig, (release,), timeout=10)
        assert sigkill(helm.pid)
        fault.injected += 1
        fault.note(f"SIGKILLed helm: {' '.join(helm.argv[:3])}")
    finally:
        if also_kill_submitter:
            sigkill(proc.pid)
            proc.communicate(timeout=30)
    if not also_kill_submitter:
        thread.join(timeout=120)
        assert not thread.is_alive(), "the submit whose helm was killed never returned"
        fault.note(f"the first submit: {describe(first['error']) if 'error' in first else first}")

    svc = service(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT)
    result = retry_submit(svc, doc, extra, fault, timeout=90)
    assert result.release == release
    wait_running(svc, release, fault)
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)


def slow_helm(tmp_path: Path, gate: Path) -> Path:
    """A helm that sleeps before an install while ``gate`` exists, then runs the real helm: the
    submitter is then reliably between its Secret and its install when it is killed."""
    wrapper = tmp_path / "helm-slow"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{gate}" ]; then\n'
        '  for a in "$@"; do case "$a" in install|upgrade) sleep 60 ;; esac; done\n'
        "fi\n"
        f'exec "{TOOLS_BIN / "helm"}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def test_orchestrator_killed_between_the_secret_and_the_install(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "orchestrator killed between the Secret and the install, then resubmitted"
    pandaid = 9301
    release = f"dask-{pandaid}"
    # Interactive: its Secret (the JupyterLab password) exists whatever the submit's design.
    doc = job(pandaid, mode="interactive", password="faults-" + os.urandom(4).hex())
    extra = [values_file(tmp_path, "t", fast_timeouts(startup=60))]
    gate = tmp_path / "hold-installs"
    gate.touch()
    wrapper = slow_helm(tmp_path, gate)
    settings = settings_for(
        kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT, helm_executable=str(wrapper)
    )
    fault.sessions += 1
    proc = start_submit_process(tmp_path, "first", settings, doc, extra)
    held: list[int] = []
    try:

        def install_held() -> bool:
            held[:] = [
                p.pid
                for p in processes()
                if str(wrapper) in p.argv and any(a in ("install", "upgrade") for a in p.argv)
            ]
            return bool(held) and secret_exists(kube_cluster, faults_ns, f"{release}-secret")

        kube_cluster.wait_for("the submit between its Secret and its install", install_held, timeout=60)
    finally:
        # The orchestrator dies before its helm ever ran: kill it, then the held would-be helm.
        sigkill(proc.pid)
        out, _ = proc.communicate(timeout=30)
        for pid in held:
            for child in children(pid):
                sigkill(child)
            sigkill(pid)
        gate.unlink()
    fault.injected += 1
    assert secret_exists(kube_cluster, faults_ns, f"{release}-secret"), (
        "positive control: the Secret is there"
    )
    assert [r for r in kube_cluster_releases(kube_cluster, faults_ns) if r == release] == [], (
        "the install had not started"
    )

    svc = service(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT)
    result = retry_submit(svc, doc, extra, fault, timeout=90)
    assert result.release == release
    wait_running(svc, release, fault)
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
    assert [p.text for p in processes() if str(wrapper) in p.text] == [], "the held install survived"
    assert "ok" not in out, out  # the killed submitter never reported a result


def kube_cluster_releases(cluster: KubeCluster, namespace: str) -> list[str]:
    """Release names from helm's own storage (the release Secrets), without running helm."""
    secrets = cluster.core.list_namespaced_secret(namespace, label_selector="owner=helm").items
    return sorted({s.metadata.labels.get("name", "") for s in secrets})
