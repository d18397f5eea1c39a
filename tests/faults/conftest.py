"""Fixtures of the `faults` tier: the cluster tier's local cluster, one queue namespace for the
whole tier, a record per test of what was injected and what went wrong, and the guarantee that
the API server is up again after every test (the tiers that run next need it).

Run it on a cluster of its own (``DPS_CLUSTER_STATE=<dir>``) when other people use the default
one: the tier kills the API server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

# The faults run on the cluster tier's local cluster: share its session fixture.
from tests.cluster.conftest import KubeCluster, kube_cluster, wait_for
from tests.cluster.sessions import prepare_namespace
from tests.faults.inject import apiserver_ready, helm_processes, start_apiserver, stray_helm
from tests.faults.ledger import FaultRecord, Ledger

__all__ = ["kube_cluster"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item: the record's outcome says whether the test passed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def ledger() -> Iterator[Ledger]:
    book = Ledger()
    yield book
    if book.records:
        book.write()


@pytest.fixture(scope="session")
def faults_ns(kube_cluster: KubeCluster) -> Iterator[str]:
    """One namespace set up like a PanDA queue's for the whole tier (each test uses its own
    PandaIDs and checks that nothing of its jobs is left), deleted at the end."""
    name = f"faults-{os.urandom(3).hex()}"
    core = kube_cluster.core
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    wait_for(
        f"ServiceAccount default in {name}",
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
    )
    volumes: list[str] = []

    def make_pv(claim: str) -> str:
        pv = f"{name}-{claim}"
        core.create_persistent_volume(
            k8s.V1PersistentVolume(
                metadata=k8s.V1ObjectMeta(name=pv),
                spec=k8s.V1PersistentVolumeSpec(
                    capacity={"storage": "10Gi"},
                    access_modes=["ReadWriteMany"],
                    persistent_volume_reclaim_policy="Retain",
                    storage_class_name="",
                    nfs=k8s.V1NFSVolumeSource(server="10.0.0.2", path="/vol1"),
                    claim_ref=k8s.V1ObjectReference(
                        api_version="v1", kind="PersistentVolumeClaim", namespace=name, name=claim
                    ),
                ),
            )
        )
        volumes.append(pv)
        return pv

    prepare_namespace(kube_cluster, name, make_pv)
    yield name
    if not apiserver_ready():
        start_apiserver()
    core.delete_namespace(name)
    for pv in volumes:
        try:
            core.delete_persistent_volume(pv)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_for(f"namespace {name} to be deleted", gone, timeout=120, interval=0.5)


@pytest.fixture(autouse=True)
def healthy_apiserver() -> Iterator[None]:
    """Every faults test starts and ends with a healthy API server, whatever it injected."""
    if not apiserver_ready():
        start_apiserver()
    yield
    if not apiserver_ready():
        start_apiserver()


@pytest.fixture
def fault(request: pytest.FixtureRequest, ledger: Ledger, kube_cluster: KubeCluster) -> Iterator[FaultRecord]:
    """The test's record (the test names its fault: ``fault.fault = "..."``), with the stray-helm
    invariant checked around it: no helm process of this cluster may outlive the test."""
    record = ledger.new(request.node.name, request.node.nodeid)
    before = helm_processes(kube_cluster.kubeconfig)
    yield record
    strays = stray_helm(before, kube_cluster.kubeconfig)
    record.stray_helm_processes += len(strays)
    for proc in strays:
        record.note(f"stray helm pid {proc.pid}: {proc.text[:200]}")
        os.kill(proc.pid, 9)
    call = getattr(request.node, "report_call", None)
    record.outcome = "passed" if call is not None and call.passed and not strays else "failed"
    assert not strays, f"helm processes outlived the test: {[p.text[:200] for p in strays]}"


def job_file(tmp_path: Path, name: str, doc: Any) -> Path:
    import json

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path
