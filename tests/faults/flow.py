"""The faults tier's steps and invariant checks, shared by its tests.

A step retries the way Harvester does (a temporary error is tried again next cycle), counts in
the test's :class:`FaultRecord` what the invariants forbid, and returns what it saw; the tests
assert on the counts after they have been recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestrator.errors import InputError
from orchestrator.service import SessionService, SubmitResult, SweepResult, is_temporary
from orchestrator.session import Phase, SessionState
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import labelled
from tests.faults.ledger import FaultRecord

BAD = (Phase.FAILED, Phase.CANCELLED)
GC_GRACE = 30.0
# Objects that kube-controller-manager derives from the release's Services (Endpoints, and
# EndpointSlices owned by the Service) are its controllers' to remove. After a kube-apiserver
# restart their informers learn of the deletions made meanwhile only when they list again, once
# their reflectors' exponential back-off lets them: 85 to 95 s after the restart was seen on a
# loaded 2-core machine (the sweep may end well before). They get more than twice that; the test
# fails if they are still there then.
DERIVED_KINDS = ("endpoints/", "endpointslice.discovery.k8s.io/")
CONTROLLER_GRACE = 240.0
HOOK_HOLD_ANNOTATIONS = ("kwok.dask-panda-session/exit-code", "kwok.dask-panda-session/exit-after")


def hooks_take(seconds: int) -> dict[str, Any]:
    """Values that keep every hook Job's pod Running for ``seconds`` before it succeeds: the
    prepare hook holds `helm install`, the cleanup hook `helm uninstall`, for that long."""
    code, after = HOOK_HOLD_ANNOTATIONS
    return {"hooks": {"podAnnotations": {code: "0", after: str(seconds)}}}


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:300]}"


def retry_submit(
    svc: SessionService,
    job: Mapping[str, Any],
    values_files: Sequence[str],
    record: FaultRecord,
    *,
    timeout: float = 90.0,
    outage: Callable[[], bool] = lambda: False,
) -> SubmitResult:
    """Submit until it returns, as Harvester retries a submit that failed temporarily. An error
    that is not temporary is counted as misclassified (Harvester would drop the job), and tried
    again all the same, so the test still reaches its other checks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return svc.submit(dict(job), values_files=list(values_files))
        except InputError:
            raise
        except Exception as err:
            temporary = is_temporary(err)
            record.note(f"submit: {'temporary' if temporary else 'NOT temporary'}: {describe(err)}")
            if not temporary:
                record.misclassified_errors += 1
            if time.monotonic() >= deadline:
                raise
        time.sleep(2.0)


def retry_sweep(
    svc: SessionService, release: str, record: FaultRecord, *, timeout: float = 90.0
) -> SweepResult:
    """Sweep until clean, as the sweeper tries again next cycle."""
    deadline = time.monotonic() + timeout
    last: SweepResult | None = None
    while time.monotonic() < deadline:
        try:
            last = svc.sweep(release)
            if last.clean:
                return last
            record.note(f"sweep not clean yet: {list(last.remaining)[:5]}")
        except Exception as err:
            temporary = is_temporary(err)
            record.note(f"sweep: {'temporary' if temporary else 'NOT temporary'}: {describe(err)}")
            if not temporary:
                record.misclassified_errors += 1
        time.sleep(2.0)
    if last is None:
        raise TimeoutError(f"sweep of {release} never returned within {timeout} s")
    return last


def call_during_outage(record: FaultRecord, what: str, call: Callable[[], Any]) -> Any:
    """One operation started while the API server is away (Harvester's next cycle does not
    wait for it to come back): it must fail with an error the orchestrator calls temporary.
    Returns what the call returned, or None when it raised."""
    try:
        result = call()
    except InputError:
        raise
    except Exception as err:
        temporary = is_temporary(err)
        record.note(
            f"{what} during the outage: {'temporary' if temporary else 'NOT temporary'}: {describe(err)}"
        )
        if not temporary:
            record.misclassified_errors += 1
        return None
    record.note(f"{what} during the outage returned {result!r}"[:300])
    return result


def observe_one(svc: SessionService, release: str, **kwargs: Any) -> SessionState:
    return svc.observe([release], **kwargs)[release]


def wait_running(
    svc: SessionService,
    release: str,
    record: FaultRecord,
    *,
    timeout: float = 60.0,
    submitted: Mapping[str, datetime] | None = None,
) -> SessionState:
    """Observe until the session is running; a failed/cancelled verdict on the way is false."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, str | None]] = []
    while True:
        state = observe_one(svc, release, submitted=submitted or {release: svc.clock()})
        if not seen or seen[-1] != (state.phase, state.reason):
            seen.append((state.phase, state.reason))
        if state.phase is Phase.RUNNING:
            return state
        if state.phase in BAD:
            record.false_verdict(release, state.phase, state.reason, state.message)
            raise AssertionError(f"{release} reported {state.phase}/{state.reason}; seen {seen}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{release} not running after {timeout} s; seen {seen}")
        time.sleep(0.5)


def count_bad(record: FaultRecord, states: Sequence[SessionState], what: str) -> int:
    """Count (as false verdicts) the states of a healthy session that say failed or cancelled."""
    bad = [s for s in states if s.phase in BAD]
    for s in bad:
        record.false_verdict(s.release, s.phase, s.reason, f"{what}: {s.message}")
    return len(bad)


def check_one_release(svc: SessionService, namespace: str, release: str, record: FaultRecord) -> Any:
    """Exactly one release for the job, installed once (revision 1) and deployed. Returns it."""
    mine = [r for r in svc.helm.list_releases(namespace) if r.name == release]
    extra = max(0, len(mine) - 1) + sum(max(0, r.revision - 1) for r in mine)
    if extra:
        record.duplicate_releases += extra
        record.note(f"{release}: {[(r.status, r.revision) for r in mine]} in helm list")
    assert len(mine) == 1, f"{release}: {len(mine)} releases"
    assert mine[0].status == "deployed", f"{release} is {mine[0].status}"
    return mine[0]


def sweep_and_check(
    svc: SessionService, cluster: KubeCluster, namespace: str, release: str, record: FaultRecord
) -> None:
    """Every session ends swept: no release, nothing labelled for it left in the namespace."""
    result = retry_sweep(svc, release, record)
    left = wait_unlabelled(cluster, namespace, release, record)
    still = [r.name for r in svc.helm.list_releases(namespace) if r.name == release]
    record.leftovers += len(left) + len(still)
    if still:
        record.note(f"{release}: the release is still listed after the sweep")
    assert result.clean, result
    assert left == [] and still == [], (left, still)


def wait_unlabelled(cluster: KubeCluster, namespace: str, release: str, record: FaultRecord) -> list[str]:
    """What is still labelled for the release once the cluster's controllers had their time:
    ``GC_GRACE`` for anything, ``CONTROLLER_GRACE`` for what kube-controller-manager derives from
    the release's Services. The time they took is noted when it passed ``GC_GRACE``."""
    start = time.monotonic()
    while left := labelled(cluster, namespace, release):
        waited = time.monotonic() - start
        derived_only = all(name.startswith(DERIVED_KINDS) for name in left)
        if waited >= (CONTROLLER_GRACE if derived_only else GC_GRACE):
            record.note(f"{release}: still labelled {waited:.0f} s after the sweep: {left}")
            return left
        time.sleep(1.0)
    waited = time.monotonic() - start
    if waited > GC_GRACE:
        record.note(f"{release}: the controllers removed their objects {waited:.0f} s after the sweep")
    return []


def pod_uids(cluster: KubeCluster, namespace: str, release: str) -> dict[str, str]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}")
    return {
        p.metadata.name: p.metadata.uid
        for p in pods.items
        if p.metadata.labels.get("app.kubernetes.io/component")
        in ("scheduler", "worker", "pilot", "jupyterlab")
    }


def wait_pod(
    cluster: KubeCluster,
    namespace: str,
    release: str,
    component: str,
    phase: str = "Running",
    timeout: float = 60,
) -> Any:
    """The release's first pod of ``component`` once it is in ``phase``."""

    def probe() -> Any:
        pods = cluster.core.list_namespaced_pod(
            namespace,
            label_selector=f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}",
        ).items
        return next((p for p in pods if p.status.phase == phase and not p.metadata.deletion_timestamp), None)

    return cluster.wait_for(f"{release} {component} pod {phase}", probe, timeout=timeout, interval=0.1)


def secret_exists(cluster: KubeCluster, namespace: str, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        cluster.core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def settings_for(cluster: KubeCluster, namespace: str, **overrides: Any) -> dict[str, Any]:
    """The Settings fields the cluster tier's ``service()`` uses, as plain data (for a subprocess)."""
    from tests.conftest import TOOLS_BIN

    base: dict[str, Any] = {
        "namespace": namespace,
        "queue": "GOOGLE_DASK",
        "helm_executable": str(TOOLS_BIN / "helm"),
        "kubeconfig": str(cluster.kubeconfig),
        "install_timeout": 120.0,
        "uninstall_timeout": 60.0,
        "cleanup_timeout": 30.0,
        "verify_timeout": 60.0,
    }
    base.update(overrides)
    return base


def start_submit_process(
    tmp_path: Any,
    name: str,
    settings: Mapping[str, Any],
    job: Mapping[str, Any],
    values_files: Sequence[str],
    go_file: str | None = None,
) -> Any:
    """``python -m tests.faults.submit_proc`` in its own session (so it can be SIGKILLed alone)."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    spec = tmp_path / f"{name}.spec.json"
    spec.write_text(
        json.dumps(
            {
                "settings": dict(settings),
                "job": dict(job),
                "values_files": list(values_files),
                "go_file": go_file,
            }
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.submit_proc", str(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
