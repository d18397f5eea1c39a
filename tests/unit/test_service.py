"""service: submit / observe / kill / sweep / gc / deadlines over fake helm and kube."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.helm import HelmError, HelmReleaseInfo, HelmRenderError
from orchestrator.kube import KubeUnavailable
from orchestrator.service import SessionService, Settings, is_bad_input, is_temporary
from orchestrator.session import Phase
from orchestrator.submit_lock import ANN_SUBMIT_ID
from tests.conftest import ROOT
from tests.unit.fakes import FakeHelm, FakeKube, pod, session_pods

EXAMPLE = json.loads((ROOT / "tests" / "unit" / "data" / "harvester-example-pandaJobData.json").read_text())
NOW = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
PASSWORD = "c0rrect-horse-battery"


def make(**settings: Any) -> tuple[SessionService, FakeHelm, FakeKube]:
    helm, kube = FakeHelm(), FakeKube()
    svc = SessionService(
        Settings(namespace="ns", **settings), helm=helm, kube=kube, clock=lambda: NOW, sleep=lambda _: None
    )
    return svc, helm, kube  # type: ignore[arg-type]


def interactive() -> dict[str, Any]:
    params = dict(next(iter(EXAMPLE.values())))
    params["daskMode"] = "interactive"
    params["secrets"] = {"jl": json.dumps({"username": "u", "password": PASSWORD})}
    return params


def test_submit_installs_once() -> None:
    svc, helm, kube = make()
    first = svc.submit(EXAMPLE)
    second = svc.submit(EXAMPLE)
    assert first.created and not second.created
    assert [c[0] for c in helm.calls] == ["status", "install", "status"]
    # The Secret is the submit's lock: made once, even for a batch job with nothing secret in it.
    assert kube.secrets_written == [{}]
    secret = kube.find("ns", "Secret", "dask-1759473585-secret")
    assert secret is not None and secret["metadata"]["annotations"][ANN_SUBMIT_ID]


def test_submit_interactive_writes_the_secret_before_install() -> None:
    svc, helm, kube = make()
    result = svc.submit(interactive())
    assert result.mode == "interactive"
    assert kube.secrets_written == [{"jupyter-password": PASSWORD}]
    assert PASSWORD not in json.dumps(helm.values[("ns", "dask-1759473585")])


def test_failed_install_leaves_nothing() -> None:
    svc, helm, kube = make()
    helm.fail_install = HelmRenderError("helm install: the chart refused the values: workers.replicas")
    with pytest.raises(HelmRenderError) as err:
        svc.submit(interactive())
    assert is_bad_input(err.value)
    assert kube.objects.get("ns", {}) == {}
    assert ("uninstall-no-hooks", "ns", "dask-1759473585") in helm.calls


def test_bad_job_touches_nothing() -> None:
    svc, helm, kube = make()
    with pytest.raises(InputError):
        svc.submit({"PandaID": "nope"})
    assert helm.calls == []
    assert kube.requests == 0


@pytest.mark.parametrize("n", [1, 10, 100])
def test_observe_is_one_list_per_namespace(n: int) -> None:
    svc, _, kube = make()
    for i in range(n):
        for p in session_pods(f"dask-{i + 1}"):
            kube.put("ns", "Pod", p)
    states = svc.observe(now=NOW)
    assert len(states) == n
    assert all(s.phase is Phase.RUNNING for s in states.values())
    assert kube.requests == 1


def test_observe_missing_release_and_grace() -> None:
    svc, _, kube = make()
    states = svc.observe(["dask-5", "dask-6"], now=NOW, submitted={"dask-6": NOW - timedelta(seconds=5)})
    assert states["dask-5"].phase is Phase.CANCELLED
    assert states["dask-5"].reason == "ReleaseMissing"
    assert states["dask-6"].phase is Phase.STARTING
    assert kube.requests == 1


def test_observe_unreachable_cluster_raises_temporary() -> None:
    svc, _, kube = make()
    kube.unavailable = True
    with pytest.raises(KubeUnavailable) as err:
        svc.observe(now=NOW)
    assert is_temporary(err.value)


def test_lifetime_is_enforced_from_the_listed_pods() -> None:
    svc, helm, kube = make()
    old = "2026-11-26T10:00:00Z"  # two days before NOW, lifetime one day
    for p in session_pods("dask-9", created=old):
        kube.put("ns", "Pod", p)
    helm.releases[("ns", "dask-9")] = HelmReleaseInfo("dask-9", "ns", 1, "deployed", None)
    state = svc.observe(now=NOW)["dask-9"]
    assert (state.phase, state.reason) == (Phase.FAILED, "DeadlineExceeded")
    assert kube.requests == 1
    ended = svc.enforce_deadlines(now=NOW)
    assert ended == {"dask-9": "DeadlineExceeded"}
    assert ("ns", "dask-9") not in helm.releases


def test_interactive_lease_ends_finished() -> None:
    svc, _, kube = make()
    started = (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for p in session_pods("dask-8", mode="interactive", created=started):
        kube.put("ns", "Pod", p)
    state = svc.observe(now=NOW)["dask-8"]
    assert (state.phase, state.reason) == (Phase.FINISHED, "LeaseExpired")


def test_sweep_plain() -> None:
    svc, helm, kube = make()
    svc.submit(interactive())
    kube.put("ns", "Pod", pod("dask-1759473585", "scheduler"))
    result = svc.sweep("dask-1759473585")
    assert result.clean and result.release_existed and not result.used_fallback
    assert kube.objects["ns"] == {}
    assert ("uninstall", "ns", "dask-1759473585") in helm.calls


def test_sweep_falls_back_when_the_pre_delete_hook_wedges() -> None:
    svc, helm, _kube = make()
    svc.submit(EXAMPLE)
    helm.fail_uninstall_with_hooks = HelmError("helm uninstall: pre-delete hook timed out")
    result = svc.sweep("dask-1759473585")
    assert result.used_fallback
    assert result.cleanup_completed is True
    assert result.clean
    calls = [c[0] for c in helm.calls]
    assert calls.index("get-values") < calls.index("uninstall-no-hooks") < calls.index("template")
    assert any("uninstall with hooks failed" in n for n in result.notes)


def test_sweep_reports_what_remains() -> None:
    svc, _, kube = make(verify_timeout=0.0)
    stubborn = pod("dask-3", "worker")
    stubborn["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"  # never goes away
    kube.put("ns", "Pod", stubborn)
    original = kube.delete_labelled
    kube.delete_labelled = lambda *a, **k: 0  # type: ignore[method-assign]
    result = svc.sweep("dask-3")
    kube.delete_labelled = original  # type: ignore[method-assign]
    assert not result.clean
    assert result.remaining == ("Pod/dask-3-worker",)


def test_kill_is_idempotent_and_cheap_when_gone() -> None:
    svc, helm, _kube = make()
    first = svc.kill("dask-77")
    second = svc.kill("dask-77")
    assert first.release_existed is False and second.release_existed is False
    assert [c[0] for c in helm.calls] == ["status", "status"]


def test_gc_finds_orphans_but_spares_young_ones() -> None:
    svc, _helm, kube = make(gc_grace_seconds=600)
    labels = {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": "dask-1"}
    kube.put(
        "ns",
        "Secret",
        {
            "metadata": {
                "name": "dask-1-secret",
                "labels": labels,
                "creationTimestamp": "2026-11-28T09:00:00Z",
            }
        },
    )
    young = {**labels, "app.kubernetes.io/instance": "dask-2"}
    kube.put(
        "ns",
        "Secret",
        {"metadata": {"name": "dask-2-secret", "labels": young, "creationTimestamp": "2026-11-28T10:04:00Z"}},
    )
    planned = svc.gc(now=NOW, dry_run=True)
    assert [a.release for a in planned] == ["dask-1"]
    assert len(kube.objects["ns"]) == 2
    svc.gc(now=NOW)
    assert list(kube.objects["ns"]) == [("Secret", "dask-2-secret")]


def test_gc_sweeps_releases_past_their_lifetime() -> None:
    svc, helm, _ = make(gc_grace_seconds=0)
    helm.releases[("ns", "dask-4")] = HelmReleaseInfo("dask-4", "ns", 1, "deployed", NOW - timedelta(days=3))
    helm.releases[("ns", "dask-5")] = HelmReleaseInfo("dask-5", "ns", 1, "deployed", NOW - timedelta(hours=1))
    actions = svc.gc(now=NOW)
    assert [a.release for a in actions] == ["dask-4"]
    assert ("ns", "dask-4") not in helm.releases and ("ns", "dask-5") in helm.releases
