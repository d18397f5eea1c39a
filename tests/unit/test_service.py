"""service: submit / observe / kill / sweep / gc / deadlines over fake helm and kube."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.helm import HelmError, HelmReleaseInfo, HelmRenderError, HelmUnavailable
from orchestrator.kube import KubeError, KubeUnavailable
from orchestrator.service import SessionService, Settings, is_bad_input, is_temporary
from orchestrator.session import Phase
from orchestrator.submit_lock import ANN_SUBMIT_ID
from orchestrator.tls import TLS_KEYS
from orchestrator.values import DEFINITION_KEY
from tests.conftest import ROOT
from tests.doubles import FakeHelm, FakeKube, pod, session_pods

EXAMPLE = json.loads((ROOT / "tests" / "data" / "harvester-example-pandaJobData.json").read_text())
NOW = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
PASSWORD = "c0rrect-horse-battery"


def make(**settings: Any) -> tuple[SessionService, FakeHelm, FakeKube]:
    helm, kube = FakeHelm(), FakeKube()
    svc = SessionService(
        Settings(namespace="ns", **settings), helm=helm, kube=kube, clock=lambda: NOW, sleep=lambda _: None
    )
    return svc, helm, kube


def interactive() -> dict[str, Any]:
    params = dict(next(iter(EXAMPLE.values())))
    params["daskMode"] = "interactive"
    params["secrets"] = {"jl": json.dumps({"username": "u", "password": PASSWORD})}
    return params


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_submit_installs_once() -> None:
    svc, helm, kube = make()
    first = svc.submit(EXAMPLE)
    second = svc.submit(EXAMPLE)
    assert first.created and not second.created
    assert [c[0] for c in helm.calls] == ["status", "install", "status"]
    # The Secret is the submit's lock and carries the job definition: made once, batch jobs too.
    assert [sorted(data) for data in kube.secrets_written] == [sorted([DEFINITION_KEY, *TLS_KEYS])]
    secret = kube.find("ns", "Secret", "dask-1759473585-secret")
    assert secret is not None and secret["metadata"]["annotations"][ANN_SUBMIT_ID]


def test_submit_interactive_writes_the_secret_before_install() -> None:
    svc, helm, kube = make()
    result = svc.submit(interactive())
    assert result.mode == "interactive"
    assert [sorted(data) for data in kube.secrets_written] == [
        sorted(["jupyter-password", DEFINITION_KEY, *TLS_KEYS])
    ]
    # compared by digest, so that a failure never prints the password
    assert digest(kube.secrets_written[0]["jupyter-password"]) == digest(PASSWORD)
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


def test_kill_of_a_live_release_reads_its_status_once() -> None:
    svc, helm, _kube = make()
    release = svc.submit(EXAMPLE).release
    helm.calls.clear()
    result = svc.kill(release)
    assert result.release_existed is True and result.clean
    assert [c[0] for c in helm.calls] == ["status", "uninstall"]  # one helm status, not two
    assert svc.helm.release(release, "ns") is None


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


# -- the cluster's clock ----------------------------------------------------------------------------


@pytest.mark.parametrize("host_offset", [timedelta(0), timedelta(minutes=10), timedelta(minutes=-10)])
def test_observe_judges_on_the_api_servers_date(host_offset: timedelta) -> None:
    """An interactive session 55 min into its 1 h lease, by the server's clock: running, whatever
    the host's clock says (10 minutes ahead, the host alone would end it as LeaseExpired)."""
    svc, _, kube = make()
    svc.clock = lambda: NOW + host_offset
    for p in session_pods("dask-8", mode="interactive", created="2026-11-28T09:10:00Z"):
        kube.put("ns", "Pod", p)
    state = svc.observe()["dask-8"]
    assert (state.phase, state.reason) == (Phase.RUNNING, None)
    # the Date came with the pod LIST: no clock request; the one other is the JupyterLab Services'
    assert kube.calls == [("list_pods", "ns"), ("list_services", "ns")] and kube.requests == 2


def test_observe_without_a_date_falls_back_to_the_host_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.service")
    svc, _, kube = make()
    kube.send_date = False
    svc.clock = lambda: NOW + timedelta(minutes=10)
    for p in session_pods("dask-8", mode="interactive", created="2026-11-28T09:10:00Z"):
        kube.put("ns", "Pod", p)
    state = svc.observe()["dask-8"]
    assert (state.phase, state.reason) == (Phase.FINISHED, "LeaseExpired")
    assert "no Date" in caplog.text


def test_clock_skew_is_host_minus_server() -> None:
    svc, _, kube = make()
    svc.clock = lambda: NOW + timedelta(seconds=90)
    assert svc.clock_skew() == 90.0
    assert kube.requests == 1
    kube.send_date = False
    with pytest.raises(KubeError, match="Date"):
        svc.clock_skew()


# -- enforce and gc, release by release --------------------------------------------------------------


def _overdue(kube: FakeKube, helm: FakeHelm, *releases: str) -> None:
    for release in releases:
        for p in session_pods(release, created="2026-11-26T10:00:00Z"):
            kube.put("ns", "Pod", p)
        helm.releases[("ns", release)] = HelmReleaseInfo(release, "ns", 1, "deployed", None)


def test_enforce_goes_on_past_a_failing_release() -> None:
    svc, helm, kube = make()
    _overdue(kube, helm, "dask-1", "dask-2", "dask-3")
    helm.fail_release["dask-2"] = HelmError("helm status ns/dask-2: release: storage backend error")
    ended = svc.enforce_deadlines(now=NOW)
    assert ended == {"dask-1": "DeadlineExceeded", "dask-3": "DeadlineExceeded"}
    assert set(ended.failures) == {"dask-2"}
    assert "storage backend" in str(ended.failures["dask-2"])
    assert ("ns", "dask-1") not in helm.releases and ("ns", "dask-3") not in helm.releases


def test_enforce_during_an_outage_reports_every_release_as_temporary() -> None:
    svc, helm, kube = make()
    _overdue(kube, helm, "dask-1", "dask-2")
    helm.fail_release["dask-1"] = HelmUnavailable("helm status ns/dask-1: cluster unreachable")
    ended = svc.enforce_deadlines(now=NOW)
    assert dict(ended) == {}
    assert set(ended.failures) == {"dask-1", "dask-2"}
    assert all(is_temporary(e) for e in ended.failures.values())
    assert helm.count("status") == 1  # not tried release by release during the outage


def _orphan(kube: FakeKube, release: str, created: str = "2026-11-28T09:00:00Z") -> None:
    labels = {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": release}
    kube.put(
        "ns",
        "Service",
        {"metadata": {"name": f"{release}-x", "labels": labels, "creationTimestamp": created}},
    )


def test_gc_goes_on_past_a_failing_release() -> None:
    svc, _helm, kube = make()
    for release in ("dask-1", "dask-2", "dask-3"):
        _orphan(kube, release)
    original = kube.delete_labelled

    def flaky(namespace: str, selector: str, kinds: Any = ()) -> int:
        if selector.endswith("=dask-2"):
            raise KubeError("DELETE services/dask-2-x: 403 Forbidden")
        return original(namespace, selector)

    kube.delete_labelled = flaky  # type: ignore[method-assign]
    done = svc.gc(now=NOW)
    assert [a.release for a in done] == ["dask-1", "dask-3"]
    assert set(done.failures) == {"dask-2"}
    assert [name for (_, name) in kube.objects["ns"]] == ["dask-2-x"]


def test_gc_confirms_each_orphan_before_deleting_it() -> None:
    """An empty `helm list` (partial answer) must not remove a live session's objects."""
    svc, helm, kube = make()
    _orphan(kube, "dask-1")
    _orphan(kube, "dask-2")
    helm.releases[("ns", "dask-1")] = HelmReleaseInfo("dask-1", "ns", 1, "deployed", NOW)
    helm.list_releases = lambda namespace: []  # type: ignore[method-assign]
    done = svc.gc(now=NOW)
    assert [a.release for a in done] == ["dask-2"]
    assert [name for (_, name) in kube.objects["ns"]] == ["dask-1-x"]
    assert helm.calls.count(("status", "ns", "dask-1")) == 1
    assert helm.calls.count(("status", "ns", "dask-2")) == 1


def test_gc_measures_ages_on_the_server_clock() -> None:
    svc, _, kube = make(gc_grace_seconds=600)
    svc.clock = lambda: NOW + timedelta(hours=2)  # the host alone would call it old
    _orphan(kube, "dask-1", created="2026-11-28T10:00:00Z")  # 5 min before the server's now
    assert svc.gc(dry_run=True) == []
    kube.server_now = NOW + timedelta(minutes=20)
    assert [a.release for a in svc.gc(dry_run=True)] == ["dask-1"]


def _probe_object(kube: FakeKube, kind: str, run_id: str, created: str) -> None:
    labels = {"app.kubernetes.io/managed-by": "dask-panda-session", "dask-panda-session/netpol-probe": run_id}
    name = f"dask-panda-session-netpol-probe-{run_id}-{kind.lower()}"
    kube.put("ns", kind, {"metadata": {"name": name, "labels": labels, "creationTimestamp": created}})


def test_gc_removes_what_an_interrupted_doctor_probe_left_once_it_is_old() -> None:
    svc, _, kube = make()
    _probe_object(kube, "NetworkPolicy", "0a1b2c", created="2026-11-28T07:00:00Z")  # 3 h before now
    _probe_object(kube, "Pod", "0a1b2c", created="2026-11-28T07:00:00Z")
    _probe_object(kube, "NetworkPolicy", "9f8e7d", created="2026-11-28T10:04:00Z")  # a probe running now
    planned = svc.gc(dry_run=True)
    assert [(a.release, len(a.objects)) for a in planned] == [("dask-panda-session-netpol-probe-0a1b2c", 2)]
    assert kube.deleted == []
    svc.gc()
    assert sorted(name for _, name, _ in kube.deleted) == [
        "dask-panda-session-netpol-probe-0a1b2c-networkpolicy",
        "dask-panda-session-netpol-probe-0a1b2c-pod",
    ]
    assert kube.find("ns", "NetworkPolicy", "dask-panda-session-netpol-probe-9f8e7d-networkpolicy")


def _jupyterlab_service(release: str, ip: str | None) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "dask-panda-session",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": "jupyterlab",
    }
    return {
        "metadata": {"name": f"{release}-jupyterlab", "labels": labels},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 8888}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]} if ip else {}},
    }


def test_observe_reports_the_external_jupyterlab_url_with_one_service_list_for_all_sessions() -> None:
    svc, _, kube = make()
    for i in range(10):
        release = f"dask-{100 + i}"
        for p in session_pods(release, mode="interactive" if i % 2 else "batch"):
            kube.put("ns", "Pod", p)
        kube.put("ns", "Service", _jupyterlab_service(release, f"192.0.2.{i}" if i != 9 else None))
    states = svc.observe()
    assert kube.calls == [("list_pods", "ns"), ("list_services", "ns")]  # never one per session
    assert states["dask-101"].jupyter_url == "http://192.0.2.1:8888/"
    assert states["dask-101"].dashboard_url == "http://192.0.2.1:8888/dask/status"
    assert states["dask-109"].jupyter_url is None  # its LoadBalancer has no address yet
    assert states["dask-100"].jupyter_url is None  # batch
    assert states["dask-100"].dashboard_url == "http://dask-100-scheduler.ns.svc.cluster.local:8787/status"


def test_observe_lists_no_service_without_an_interactive_session_going() -> None:
    svc, _, kube = make()
    for p in session_pods("dask-1"):
        kube.put("ns", "Pod", p)
    svc.observe()
    assert kube.calls == [("list_pods", "ns")]


def test_a_refused_service_list_keeps_the_rendered_urls(caplog: pytest.LogCaptureFixture) -> None:
    svc, _, kube = make()
    for p in session_pods("dask-3", mode="interactive"):
        kube.put("ns", "Pod", p)

    def refused(namespace: str, selector: str) -> list[dict[str, Any]]:
        raise KubeError("GET services: 403 Forbidden: cannot list services")

    kube.list_services = refused  # type: ignore[method-assign]
    state = svc.observe()["dask-3"]
    assert state.phase == Phase.RUNNING
    assert "cannot list the JupyterLab Services" in caplog.text


def test_an_unreachable_api_for_the_service_list_fails_observe() -> None:
    svc, _, kube = make()
    for p in session_pods("dask-4", mode="interactive"):
        kube.put("ns", "Pod", p)

    def down(namespace: str, selector: str) -> list[dict[str, Any]]:
        raise KubeUnavailable("GET services: cluster unreachable")

    kube.list_services = down  # type: ignore[method-assign]
    with pytest.raises(KubeUnavailable):
        svc.observe()


def test_the_helm_cache_and_openapi_settings_reach_helm(tmp_path: Path) -> None:
    from orchestrator.helm import Helm

    default = SessionService(Settings(), kube=FakeKube())
    assert isinstance(default.helm, Helm)
    assert (default.helm.cache_dir, default.helm.openapi_validation) == (None, False)
    chosen = SessionService(Settings(helm_cache_dir=tmp_path, helm_openapi_validation=True), kube=FakeKube())
    assert isinstance(chosen.helm, Helm)
    assert (chosen.helm.cache_dir, chosen.helm.openapi_validation) == (tmp_path, True)
