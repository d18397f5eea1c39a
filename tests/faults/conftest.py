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

# The faults run on the cluster tier's local cluster: share its session fixture.
from tests.cluster.conftest import (
    KubeCluster,
    create_namespace,
    create_shared_pv,
    delete_pvs,
    kube_cluster,
    wait_for,
)
from tests.cluster.sessions import prepare_namespace
from tests.faults.inject import (
    apiserver_ready,
    component_errors,
    helm_processes,
    log_marks,
    start_apiserver,
    stray_helm,
)
from tests.faults.ledger import FaultRecord, Ledger

__all__ = ["kube_cluster"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item: the record's outcome says whether the test passed.
    A failed phase also shows what the control plane's components logged as errors meanwhile
    (a controller that fell behind after an outage is otherwise invisible in CI's output)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    marks = getattr(item, "component_log_marks", None)
    if report.failed and marks is not None:
        report.sections.append(("control-plane errors during the test", component_errors(marks)))
    return report


@pytest.fixture(autouse=True)
def component_log_marks(request: pytest.FixtureRequest, kube_cluster: KubeCluster) -> None:
    """Where each component's log stands as the test starts (see pytest_runtest_makereport)."""
    request.node.component_log_marks = log_marks(kube_cluster.kubeconfig.parent)


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
    name = create_namespace(kube_cluster, f"faults-{os.urandom(3).hex()}")
    core = kube_cluster.core
    volumes: list[str] = []

    def make_pv(claim: str) -> str:
        volumes.append(create_shared_pv(kube_cluster, name, claim))
        return volumes[-1]

    prepare_namespace(kube_cluster, name, make_pv)
    yield name
    if not apiserver_ready():
        start_apiserver()
    core.delete_namespace(name)
    delete_pvs(kube_cluster, volumes)
    wait_for(f"namespace {name} to be deleted", lambda: kube_cluster.namespace_gone(name), timeout=120, interval=0.5)


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
