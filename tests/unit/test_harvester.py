"""Unit tests of the Harvester plugins against Harvester's plugin contract.

The contract is that of https://github.com/HSF/harvester: its ``PluginBase`` and ``PluginFactory``
(a new plugin object per cycle, every queue parameter an attribute), the dummy submitter, monitor
and sweeper (the return values), and the agent's submitter, monitor and sweeper bodies (what they
do with those values).

SessionService runs for real (job parsing, values rendering and schema validation, state
derivation); only helm and the Kubernetes API are fakes (tests/doubles).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import helm as helm_mod
from orchestrator.harvester import plugin_base, queue_params, statuses
from orchestrator.harvester.error_codes import REASON_CODES, ErrorCodes, error_code
from orchestrator.harvester.monitor import DaskHelmMonitor
from orchestrator.harvester.statuses import WorkerStatus
from orchestrator.harvester.submitter import DaskHelmSubmitter
from orchestrator.harvester.sweeper import DaskHelmSweeper
from orchestrator.harvester.workspec import ATTRIBUTE_KEY
from orchestrator.helm import Helm
from orchestrator.kube import LEFTOVER_KINDS, Kube, KubeUnavailable
from orchestrator.service import Settings
from orchestrator.session import Phase, SessionState
from tests.doubles import (
    HELM_TIMEOUT,
    HELM_UNAVAILABLE,
    NOW,
    FakeHelm,
    FakeKube,
    JobSpec,
    WorkSpec,
    example_params,
    fixture_pods,
    make_service,
    with_pilot_exit,
    worker,
)

NS = "harvester"
ROOT = Path(__file__).resolve().parents[2]


def plugins(
    namespace: str = NS, threads: int = 4, **kwargs: Any
) -> tuple[DaskHelmSubmitter, DaskHelmMonitor, DaskHelmSweeper, FakeHelm, FakeKube]:
    service, helm, kube = make_service(namespace, **kwargs)
    common = {"queueName": "GOOGLE_DASK", "namespace": namespace, "nProcesses": threads, "service": service}
    return (
        DaskHelmSubmitter(**common),
        DaskHelmMonitor(**common),
        DaskHelmSweeper(**common),
        helm,
        kube,
    )


def submitted_worker(worker_id: int, pandaid: int, namespace: str = NS) -> WorkSpec:
    """A worker as the submitter leaves it (batchID + work attribute), without running it."""
    ws = worker(worker_id, pandaid)
    ws.batchID = f"dask-{pandaid}"
    ws.set_work_attributes(
        {ATTRIBUTE_KEY: {"namespace": namespace, "release": ws.batchID, "submitted": NOW.isoformat()}}
    )
    ws.status = WorkSpec.ST_submitted
    return ws


# ------------------------------------------------------------------------------------------------
# statuses, the PluginBase shim, queue parameters, codes


def test_status_constants_are_harvesters() -> None:
    for name in ("submitted", "running", "finished", "failed", "ready", "cancelled", "idle", "missed"):
        assert getattr(WorkerStatus, name) == getattr(WorkSpec, f"ST_{name}")
    assert set(statuses.PHASE_TO_STATUS.values()) <= set(WorkSpec.ST_LIST)
    assert set(statuses.PHASE_TO_STATUS) == set(Phase)


def test_plugins_import_and_build_without_pandaharvester() -> None:
    if importlib.util.find_spec("pandaharvester") is None:  # else the shim uses it, on purpose
        assert "pandaharvester" not in sys.modules
        assert not plugin_base.harvester_available()
    plugin = DaskHelmMonitor(queueName="GOOGLE_DASK", namespace="ns1", nProcesses="8", dbInterface=object())
    assert vars(plugin)["queueName"] == "GOOGLE_DASK"  # set by Harvester's PluginBase from the configuration
    assert plugin.n_threads == 8
    assert plugin._service is None  # nothing built at construction


def test_building_the_service_runs_neither_helm_nor_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("no process may run while building a plugin's service")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    plugin = DaskHelmSubmitter(queueName="GOOGLE_DASK", namespace="ns1", helmExecutable="/nonexistent/helm")
    service = plugin.service
    assert service.settings.namespace == "ns1"
    assert isinstance(service.helm, Helm) and isinstance(service.kube, Kube)
    assert service.helm._client is None
    assert service.kube._api is None
    assert plugin.service is service  # built once per plugin object


def test_plugins_subclass_harvesters_pluginbase_when_importable(tmp_path: Path) -> None:
    pkg = tmp_path / "pandaharvester" / "harvestercore"
    pkg.mkdir(parents=True)
    (tmp_path / "pandaharvester" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin_base.py").write_text(
        textwrap.dedent(
            """
            class PluginBase:
                def __init__(self, **kwarg):
                    self.from_harvester = True
                    for k, v in kwarg.items():
                        setattr(self, k, v)
            """
        )
    )
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from pandaharvester.harvestercore.plugin_base import PluginBase
        from orchestrator.harvester.submitter import DaskHelmSubmitter
        from orchestrator.harvester.plugin_base import harvester_available
        p = DaskHelmSubmitter(namespace="x", nProcesses=2)
        assert harvester_available()
        assert isinstance(p, PluginBase) and p.from_harvester and p.namespace == "x"
        assert p.service.settings.namespace == "x"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_settings_from_every_queue_parameter() -> None:
    settings = queue_params.settings_from_params(
        {
            "queueName": "PANDA_QUEUE",
            "daskQueue": "GOOGLE_DASK",
            "namespace": "dask-sessions",
            "valuesFiles": ["/etc/dps/site.yaml", "/etc/dps/more.yaml"],
            "chart": "/opt/chart",
            "k8s_config_file": "/etc/kube/config",
            "kubeContext": "gke",
            "helmExecutable": "/usr/local/bin/helm",
            "installTimeout": "200",
            "uninstallTimeout": 100,
            "cleanupTimeout": 90,
            "verifyTimeout": 30,
            "gcGraceSeconds": 300,
            "defaultLifetimeSeconds": 3600,
            "requestConnectTimeout": 3,
            "requestReadTimeout": 20,
            "nProcesses": 4,
            "siteName": "ignored",
        }
    )
    assert settings == Settings(
        namespace="dask-sessions",
        queue="GOOGLE_DASK",
        values_files=("/etc/dps/site.yaml", "/etc/dps/more.yaml"),
        chart=Path("/opt/chart"),
        helm_executable="/usr/local/bin/helm",
        kubeconfig="/etc/kube/config",
        kube_context="gke",
        install_timeout=200.0,
        uninstall_timeout=100.0,
        cleanup_timeout=90.0,
        verify_timeout=30.0,
        request_timeout=(3.0, 20.0),
        gc_grace_seconds=300.0,
        default_lifetime_seconds=3600.0,
    )


def test_settings_defaults_and_forms() -> None:
    settings = queue_params.settings_from_params({"queueName": "GOOGLE_DASK", "valuesFiles": "a.yaml, b.yaml"})
    assert settings.queue == "GOOGLE_DASK"
    assert settings.values_files == ("a.yaml", "b.yaml")
    assert settings.namespace == Settings().namespace
    assert settings.request_timeout == Settings().request_timeout
    assert queue_params.settings_from_params({"kubeconfig": "k", "k8s_config_file": "old"}).kubeconfig == "k"


@pytest.mark.parametrize("value", ["soon", -1, 0, True])
def test_bad_timeout_names_the_parameter(value: object) -> None:
    with pytest.raises(ValueError, match="installTimeout"):
        queue_params.settings_from_params({"installTimeout": value})


def state(
    phase: Phase, reason: str | None = None, exit_code: int | None = None, message: str = "m"
) -> SessionState:
    return SessionState("dask-1", NS, phase, reason=reason, pilot_exit_code=exit_code, message=message)


@pytest.mark.parametrize(
    ("session", "code"),
    [
        (state(Phase.FINISHED, exit_code=0), ErrorCodes.SUCCEEDED),
        (state(Phase.FAILED, "PilotExitCode", 3), ErrorCodes.PILOT_EXIT_CODE),
        (state(Phase.FAILED, "OOMKilled", 137), ErrorCodes.MEMORY_EXCEEDED),
        (state(Phase.FAILED, "DeadlineExceeded"), ErrorCodes.DEADLINE_EXCEEDED),
        (state(Phase.FAILED, "ImagePullBackOff"), ErrorCodes.IMAGE_PULL_FAILED),
        (state(Phase.FAILED, "ErrImagePull"), ErrorCodes.IMAGE_PULL_FAILED),
        (state(Phase.FAILED, "Unschedulable"), ErrorCodes.UNSCHEDULABLE),
        (state(Phase.FAILED, "StartupTimeout"), ErrorCodes.STARTUP_TIMEOUT),
        (state(Phase.FAILED, "Evicted"), ErrorCodes.PREEMPTED),
        (state(Phase.FAILED, "SomethingNew"), ErrorCodes.GENERAL_ERROR),
        (state(Phase.FAILED), ErrorCodes.GENERAL_ERROR),
        (state(Phase.CANCELLED, "ReleaseMissing"), ErrorCodes.RELEASE_MISSING),
        (state(Phase.CANCELLED, "Deleting"), ErrorCodes.DELETED),
    ],
)
def test_error_codes_of_final_sessions(session: SessionState, code: int) -> None:
    found = error_code(session)
    assert found is not None
    assert found[0] == code
    assert code == 0 or code >= 1000  # Harvester: worker error codes are >= 1000
    if session.pilot_exit_code is not None:
        assert found[1].startswith(f"pilot exit code {session.pilot_exit_code}")


@pytest.mark.parametrize("phase", [Phase.STARTING, Phase.RUNNING])
def test_no_error_code_while_a_session_lives(phase: Phase) -> None:
    assert error_code(state(phase, "ImagePullBackOff")) is None


def test_codes_are_distinct_from_harvesters_reserved_kubernetes_codes() -> None:
    ours = {v for k, v in vars(ErrorCodes).items() if k.isupper()}
    reserved = {
        ErrorCodes.K8S_BACKOFF_LIMIT,
        ErrorCodes.K8S_CONTAINER_NOT_TERMINATED,
        ErrorCodes.K8S_TERMINATED_BY_K8S,
    }
    mapped = set(REASON_CODES.values())
    assert not mapped & reserved
    assert mapped <= ours


# ------------------------------------------------------------------------------------------------
# submitter


def test_submit_success_sets_batch_id_and_namespace_attribute() -> None:
    submitter, _, _, helm, kube = plugins()
    ws = worker(7, 4242)
    [(ok, message)] = submitter.submit_workers([ws])
    assert ok is True, message
    assert ws.batchID == "dask-4242"
    assert ws.session["namespace"] == NS
    assert ws.session["release"] == "dask-4242"
    assert ws.session["pandaid"] == 4242
    assert ws.session["submitted"] == NOW.isoformat()
    assert ws.status_calls == []  # the body sets the status, never the plugin
    assert helm.calls == [("status", NS, "dask-4242"), ("install", NS, "dask-4242")]
    assert helm.values[(NS, "dask-4242")]["job"]["harvesterWorkerId"] == "7"
    assert kube.lists() == 0  # never waits for pods
    assert "4242" in message and "batch" in message


def test_submit_returns_one_result_per_workspec_in_order() -> None:
    submitter, _, _, helm, _ = plugins(threads=4)
    two_jobs = WorkSpec(3, [JobSpec(example_params(3003)), JobSpec(example_params(3004))])
    bad = worker(2, 2002, PandaID="not-a-number")
    workspecs = [
        worker(1, 1001),
        bad,
        two_jobs,
        WorkSpec(4, []),
        WorkSpec(5, None),
        worker(6, 1006),
    ]
    results = submitter.submit_workers(workspecs)
    assert [r[0] for r in results] == [True, False, False, False, False, True]
    assert [ws.batchID for ws in workspecs] == ["dask-1001", None, None, None, None, "dask-1006"]
    assert "2 jobs" in results[2][1] and "OneToOne" in results[2][1]
    assert "0 jobs" in results[3][1] and "0 jobs" in results[4][1]
    assert "PandaID" in results[1][1]
    assert helm.count("install") == 2
    assert all(ws.status_calls == [] for ws in workspecs)


@pytest.mark.parametrize(
    "fields",
    [
        {"PandaID": -5},
        {"attemptNr": "many"},
        {"daskMode": "interactive"},  # no password: no default password
        {"daskWorkers": "lots"},
        {"daskMode": "sometimes"},
    ],
)
def test_bad_job_is_a_permanent_failure_and_creates_nothing(fields: dict[str, object]) -> None:
    submitter, _, _, helm, kube = plugins()
    ws = worker(1, 5005, **fields)
    [(ok, message)] = submitter.submit_workers([ws])
    assert ok is False
    assert "not retried" in message
    assert ws.batchID is None and ws.workAttributes is None
    assert helm.calls == []
    assert kube.requests == 0


def test_secret_values_never_appear_in_messages() -> None:
    submitter, _, _, helm, _ = plugins()
    helm.fail_install = helm_mod.HelmError("helm install: boom")
    ws = worker(1, 5006, daskMode="interactive", secrets={"password": "Sup3r-Secret-Pw"})
    [(ok, message)] = submitter.submit_workers([ws])
    assert ok is None
    assert "Sup3r-Secret-Pw" not in message


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("install", HELM_TIMEOUT),
        ("install", HELM_UNAVAILABLE),
        ("status", HELM_UNAVAILABLE),
        ("install", RuntimeError("something unforeseen")),
    ],
)
def test_temporary_failures_return_none(where: str, error: Exception) -> None:
    submitter, _, _, helm, _ = plugins()
    setattr(helm, f"fail_{where}", error)
    ws = worker(1, 6006)
    [(ok, message)] = submitter.submit_workers([ws])
    assert ok is None
    assert "will retry" in message
    assert ws.batchID is None
    assert ws.status_calls == []


def test_unreachable_cluster_at_secret_creation_is_temporary() -> None:
    submitter, _, _, helm, kube = plugins()
    kube.unavailable = True
    ws = worker(1, 6007, daskMode="interactive", secrets={"password": "Sup3r-Secret-Pw"})
    [(ok, message)] = submitter.submit_workers([ws])
    assert ok is None
    assert "KubeUnavailable" in message
    assert helm.count("install") == 0


def test_submit_is_idempotent() -> None:
    submitter, _, _, helm, _ = plugins()
    first = worker(1, 7007)
    again = worker(1, 7007)
    assert submitter.submit_workers([first])[0][0] is True
    [(ok, message)] = submitter.submit_workers([again])
    assert ok is True
    assert again.batchID == first.batchID == "dask-7007"
    assert "existing" in message
    assert helm.count("install") == 1


def test_retried_attempt_gets_its_own_release() -> None:
    submitter, _, _, _, _ = plugins()
    ws = worker(1, 7008, attemptNr=2)
    assert submitter.submit_workers([ws])[0][0] is True
    assert ws.batchID == "dask-7008-a2"


def test_empty_submission() -> None:
    submitter, *_ = plugins()
    assert submitter.submit_workers([]) == []


# ------------------------------------------------------------------------------------------------
# monitor


def test_monitor_maps_every_session_state() -> None:
    _, monitor, _, helm, kube = plugins(namespace="dask-sessions")
    cases = {
        101: ("batch-running", WorkSpec.ST_running, None),
        102: ("batch-finished", WorkSpec.ST_finished, ErrorCodes.SUCCEEDED),
        103: ("batch-pilot-oomkilled", WorkSpec.ST_failed, ErrorCodes.MEMORY_EXCEEDED),
        104: ("deadline-exceeded", WorkSpec.ST_failed, ErrorCodes.DEADLINE_EXCEEDED),
        105: ("image-pull-backoff", WorkSpec.ST_submitted, None),
        106: ("interactive-staged", WorkSpec.ST_running, None),
        107: ("unschedulable", WorkSpec.ST_submitted, None),
    }
    workspecs = []
    for pandaid, (fixture, _, _) in cases.items():
        kube.add(fixture_pods(fixture, pandaid))
        helm.deploy("dask-sessions", f"dask-{pandaid}")
        workspecs.append(submitted_worker(pandaid, pandaid, "dask-sessions"))
    kube.add(with_pilot_exit(fixture_pods("batch-finished", 108), 3))
    workspecs.append(submitted_worker(108, 108, "dask-sessions"))
    gone = submitted_worker(109, 109, "dask-sessions")
    gone.set_work_attributes(
        {ATTRIBUTE_KEY: {**gone.session, "submitted": (NOW - timedelta(hours=1)).isoformat()}}
    )
    workspecs.append(gone)
    fresh = submitted_worker(110, 110, "dask-sessions")  # submitted just now, no pods yet
    workspecs.append(fresh)

    ok, results = monitor.check_workers(workspecs)
    assert ok is True
    assert len(results) == len(workspecs)
    statuses = [status for status, _ in results]
    assert all(status in WorkSpec.ST_LIST for status in statuses)
    expected = [v[1] for v in cases.values()] + [
        WorkSpec.ST_failed,
        WorkSpec.ST_cancelled,
        WorkSpec.ST_submitted,
    ]
    assert statuses == expected
    for ws, (pandaid, (_, _, code)) in zip(workspecs, cases.items(), strict=False):
        assert ws.errorCode == code, pandaid
        assert ws.status_calls == []
    # the pilot's exit code
    failed = workspecs[7]
    assert failed.errorCode == ErrorCodes.PILOT_EXIT_CODE
    assert failed.errorDiag is not None and failed.errorDiag.startswith("pilot exit code 3")
    assert failed.nativeExitCode == 3
    assert failed.session["pilot_exit_code"] == 3
    assert workspecs[2].nativeExitCode == 137
    # the release that is gone
    assert gone.errorCode == ErrorCodes.RELEASE_MISSING
    assert "ReleaseMissing" in results[8][1]
    assert fresh.errorCode is None
    # problems of a starting session are in the diag, but no code yet
    assert "ImagePullBackOff" in results[4][1]
    assert "Unschedulable" in results[6][1]


def test_monitor_reports_a_worker_marked_to_kill_cancelled_once_its_release_is_gone() -> None:
    """Harvester's sweeper body never saves the workspec after kill_workers (the real agent shows
    it): the ``killed`` attribute is lost, and only the database's ``killTime`` tells the monitor.
    Without it a release killed right after its submit would look "starting" for gcGraceSeconds."""
    _, monitor, _, _, _ = plugins(namespace="dask-sessions")
    marked = submitted_worker(1, 301, "dask-sessions")  # no pods: uninstalled by the sweeper
    marked.killTime = NOW.replace(tzinfo=None)
    unmarked = submitted_worker(2, 302, "dask-sessions")  # no pods: still within the grace period
    ok, results = monitor.check_workers([marked, unmarked])
    assert ok
    assert [status for status, _ in results] == [WorkSpec.ST_cancelled, WorkSpec.ST_submitted]
    assert marked.errorCode == ErrorCodes.RELEASE_MISSING
    assert unmarked.errorCode is None


def test_monitor_puts_addresses_and_timings_in_the_attributes() -> None:
    _, monitor, _, _, kube = plugins(namespace="dask-sessions")
    kube.add(fixture_pods("interactive-staged", 201))
    kube.add(fixture_pods("batch-finished", 202))
    interactive, batch = submitted_worker(1, 201, "dask-sessions"), submitted_worker(2, 202, "dask-sessions")
    ok, _ = monitor.check_workers([interactive, batch])
    assert ok
    attrs = interactive.session
    assert attrs["scheduler_address"] == "tcp://dask-201-scheduler.dask-sessions.svc.cluster.local:8786"
    # interactive: the dashboard is reached through JupyterLab's proxy, behind its password
    assert attrs["jupyter_url"] == "http://dask-201-jupyterlab.dask-sessions.svc.cluster.local:8888/lab"
    assert attrs["dashboard_url"] == "http://dask-201-jupyterlab.dask-sessions.svc.cluster.local:8888/dask/status"
    assert batch.session["dashboard_url"] == "http://dask-202-scheduler.dask-sessions.svc.cluster.local:8787/status"
    assert attrs["phase"] == "running"
    assert attrs["namespace"] == "dask-sessions"
    assert attrs["release"] == "dask-201"
    assert set(attrs["timings"]) == {
        "submitted",
        "scheduler_ready",
        "workers_ready",
        "pilot_started",
        "ended",
    }
    assert attrs["timings"]["submitted"] == "2026-11-28T10:00:02Z"
    assert batch.session["timings"]["ended"] is not None
    assert batch.session["jupyter_url"] is None


def test_monitor_lists_once_per_namespace_whatever_the_chunk() -> None:
    _, monitor, _, helm, kube = plugins()
    workspecs = []
    for i in range(30):
        ns = f"ns-{i % 3}"
        kube.add(fixture_pods("batch-running", 300 + i, ns))
        workspecs.append(submitted_worker(i, 300 + i, ns))
    ok, results = monitor.check_workers(workspecs)
    assert ok
    assert [s for s, _ in results] == [WorkSpec.ST_running] * 30
    assert kube.requests == 3
    assert sorted(ns for _, ns in kube.calls) == ["ns-0", "ns-1", "ns-2"]
    assert helm.calls == []


def test_monitor_asks_no_events_for_failing_sessions() -> None:
    _, monitor, _, _, kube = plugins(namespace="dask-sessions")
    for pandaid in range(401, 406):
        kube.add(fixture_pods("image-pull-backoff", pandaid))
    ok, _ = monitor.check_workers([submitted_worker(p, p, "dask-sessions") for p in range(401, 406)])
    assert ok
    assert kube.calls == [("list_pods", "dask-sessions")]


def test_unreachable_cluster_fails_the_whole_check_and_touches_nothing() -> None:
    _, monitor, _, _, kube = plugins()
    kube.add(fixture_pods("batch-finished", 501, "a"))
    workspecs = [submitted_worker(1, 501, "a"), submitted_worker(2, 502, "b")]
    before = [dict(ws.workAttributes or {}) for ws in workspecs]
    kube.unavailable = True
    assert monitor.check_workers(workspecs) == (False, [])
    assert [ws.workAttributes for ws in workspecs] == before
    assert all(ws.errorCode is None and ws.status_calls == [] for ws in workspecs)


def test_outage_of_the_second_namespace_updates_no_worker_of_the_first() -> None:
    _, monitor, _, _, kube = plugins()
    kube.add(fixture_pods("batch-finished", 511, "a"))
    first, second = submitted_worker(1, 511, "a"), submitted_worker(2, 512, "b")
    original = kube.list_pods_at

    def flaky(namespace: str, selector: str = "") -> tuple[list[dict[str, Any]], datetime | None]:
        if namespace == "b":
            raise KubeUnavailable("GET pods: cluster unreachable")
        return original(namespace)

    kube.list_pods_at = flaky  # type: ignore[method-assign]
    assert monitor.check_workers([first, second]) == (False, [])
    assert first.errorCode is None and "phase" not in first.session


def test_worker_without_batch_id_is_cancelled_as_never_submitted() -> None:
    _, monitor, _, _, kube = plugins()
    kube.add(fixture_pods("batch-running", 601, NS))
    orphan = worker(1, 600)
    healthy = submitted_worker(2, 601)
    ok, results = monitor.check_workers([orphan, healthy])
    assert ok
    assert results[0] == (WorkSpec.ST_cancelled, "no batchID: the worker was never submitted to the cluster")
    assert orphan.errorCode == ErrorCodes.NOT_SUBMITTED
    assert results[1][0] == WorkSpec.ST_running
    ok, results = monitor.check_workers([worker(3, 602)])
    assert ok and results[0][0] == WorkSpec.ST_cancelled
    assert kube.requests == 1


def test_namespace_comes_from_the_worker_not_the_current_configuration() -> None:
    _, monitor, _, _, kube = plugins(namespace="new-ns")
    kube.add(fixture_pods("batch-running", 701, "old-ns"))
    ok, results = monitor.check_workers([submitted_worker(1, 701, "old-ns")])
    assert ok and results[0][0] == WorkSpec.ST_running
    assert kube.calls == [("list_pods", "old-ns")]


def test_batch_id_forms_without_attribute() -> None:
    _, monitor, sweeper, _, kube = plugins(namespace="conf-ns")
    kube.add(fixture_pods("batch-running", 801, "other"))
    kube.add(fixture_pods("batch-running", 802, "conf-ns"))
    slash = worker(1, 801)
    slash.batchID = "other/dask-801"
    bare = worker(2, 802)
    bare.batchID = "dask-802"
    ok, results = monitor.check_workers([slash, bare])
    assert ok
    assert [s for s, _ in results] == [WorkSpec.ST_running, WorkSpec.ST_running]
    assert sweeper.namespace_of(slash) == "other"
    assert sweeper.namespace_of(bare) == "conf-ns"


def test_monitor_writes_attributes_only_when_they_change() -> None:
    _, monitor, _, _, kube = plugins(namespace="dask-sessions")
    kube.add(fixture_pods("batch-running", 901))
    ws = submitted_worker(1, 901, "dask-sessions")
    monitor.check_workers([ws])
    assert "workAttributes" in ws.updated
    ws.updated.clear()
    monitor.check_workers([ws])
    assert ws.updated == set()


def test_monitor_empty_chunk() -> None:
    _, monitor, _, _, kube = plugins()
    assert monitor.check_workers([]) == (True, [])
    assert kube.requests == 0


def test_startup_timeout_is_reported_as_failed_from_the_same_list() -> None:
    later = NOW + timedelta(hours=2)
    service, helm, kube = make_service("dask-sessions", now=later)
    monitor = DaskHelmMonitor(namespace="dask-sessions", service=service)
    kube.add(fixture_pods("image-pull-backoff", 1001))
    ws = submitted_worker(1, 1001, "dask-sessions")
    ok, [(status, diag)] = monitor.check_workers([ws])
    assert ok and status == WorkSpec.ST_failed
    assert "ImagePullBackOff" in diag
    assert ws.errorCode == ErrorCodes.IMAGE_PULL_FAILED
    assert kube.requests == 1
    assert helm.calls == []


# ------------------------------------------------------------------------------------------------
# sweeper


def test_kill_workers_is_idempotent_and_cheap_once_gone() -> None:
    submitter, _, sweeper, helm, kube = plugins()
    workspecs = [worker(i, 1100 + i) for i in range(1, 4)]
    assert [r[0] for r in submitter.submit_workers(workspecs)] == [True] * 3
    for ws in workspecs:
        kube.add(fixture_pods("batch-running", ws.session["pandaid"], NS))
    first = sweeper.kill_workers(workspecs)
    assert [ok for ok, _ in first] == [True] * 3
    assert all("uninstalled" in message for _, message in first)
    assert kube.of_kind(NS, "Pod") == []
    uninstalls = helm.count("uninstall")
    requests = kube.requests
    again = sweeper.kill_workers(workspecs)
    assert [ok for ok, _ in again] == [True] * 3
    assert all("already gone" in message for _, message in again)
    assert helm.count("uninstall") == uninstalls  # no uninstall of a missing release
    per_worker = (kube.requests - requests) / 3
    assert per_worker <= 1 + 2 * len(LEFTOVER_KINDS)  # the Secret delete + LIST (and delete) per kind
    assert all(ws.status_calls == [] for ws in workspecs)


def test_kill_worker_single_form_and_missing_batch_id() -> None:
    _, _, sweeper, helm, _ = plugins()
    assert sweeper.kill_worker(worker(1, 1200)) == (
        True,
        "no batchID: the worker was never submitted, nothing to remove",
    )
    ws = submitted_worker(2, 1201)
    ok, message = sweeper.kill_worker(ws)
    assert ok is True and "already gone" in message
    assert sweeper.sweep_worker(worker(3, 1202))[0] is True
    assert helm.count("uninstall") == 0


def test_kill_results_are_in_order_with_threads() -> None:
    _, _, sweeper, helm, _ = plugins(threads=4)
    workspecs = [submitted_worker(i + 1, 1300 + i) for i in range(10)]
    workspecs.insert(5, worker(99, 1399))
    for ws in workspecs[::2]:
        if ws.batchID:
            helm.deploy(NS, ws.batchID)
    results = sweeper.kill_workers(workspecs)
    assert len(results) == 11
    for ws, (ok, message) in zip(workspecs, results, strict=True):
        assert ok is True
        if ws.batchID:
            assert ws.batchID in message
        else:
            assert "no batchID" in message


def test_kill_during_an_outage_fails_and_can_be_repeated() -> None:
    _, _, sweeper, helm, kube = plugins()
    ws = submitted_worker(1, 1401)
    helm.deploy(NS, "dask-1401")
    helm.fail_status = HELM_UNAVAILABLE
    ok, message = sweeper.kill_workers([ws])[0]
    assert ok is False and "HelmUnavailable" in message
    helm.fail_status = None
    kube.unavailable = True
    ok, message = sweeper.kill_workers([ws])[0]
    assert ok is False and "KubeUnavailable" in message
    kube.unavailable = False
    assert sweeper.kill_workers([ws])[0][0] is True


def test_sweep_worker_true_only_when_nothing_remains() -> None:
    _, _, sweeper, helm, kube = plugins()
    clean, dirty = submitted_worker(1, 1501), submitted_worker(2, 1502)
    for pandaid in (1501, 1502):
        helm.deploy(NS, f"dask-{pandaid}")
        kube.add(fixture_pods("batch-finished", pandaid, NS))
    kube.stubborn.add("dask-1502")
    ok, message = sweeper.sweep_worker(clean)
    assert ok is True and "nothing left" in message
    ok, message = sweeper.sweep_worker(dirty)
    assert ok is False
    assert "still present" in message and "Pod/dask-1502-scheduler" in message
    kube.stubborn.clear()
    assert sweeper.sweep_worker(dirty)[0] is True


def test_uninstall_failure_is_reported_not_raised() -> None:
    _, _, sweeper, helm, _ = plugins()
    helm.deploy(NS, "dask-1601")
    helm.fail_uninstall = HELM_TIMEOUT
    ws = submitted_worker(1, 1601)
    assert sweeper.kill_worker(ws)[0] is False
    assert sweeper.sweep_worker(ws)[0] is False


# ------------------------------------------------------------------------------------------------
# a whole Harvester cycle over the fakes


def test_cycle_submit_monitor_kill_sweep() -> None:
    submitter, monitor, sweeper, helm, kube = plugins(threads=2)
    helm.install_pods = lambda release, ns: fixture_pods(
        "batch-running", release.removeprefix("dask-"), ns
    )
    workspecs = [worker(i + 1, 1700 + i) for i in range(4)]
    assert [r[0] for r in submitter.submit_workers(workspecs)] == [True] * 4
    ok, results = monitor.check_workers(workspecs)
    assert ok and [s for s, _ in results] == [WorkSpec.ST_running] * 4
    # job 0 finishes, job 1's pilot fails, job 2 is killed in the middle, job 3 keeps running
    kube.remove_release(NS, "dask-1700")
    kube.add(fixture_pods("batch-finished", 1700, NS))
    kube.remove_release(NS, "dask-1701")
    kube.add(with_pilot_exit(fixture_pods("batch-finished", 1701, NS), 42))
    assert sweeper.kill_workers([workspecs[2]])[0][0] is True
    ok, results = monitor.check_workers(workspecs)
    assert ok
    assert [s for s, _ in results] == [
        WorkSpec.ST_finished,
        WorkSpec.ST_failed,
        WorkSpec.ST_cancelled,
        WorkSpec.ST_running,
    ]
    assert workspecs[1].nativeExitCode == 42
    # clean-up time: every worker is killed again, then swept
    assert [ok for ok, _ in sweeper.kill_workers(workspecs)] == [True] * 4
    assert [sweeper.sweep_worker(ws)[0] for ws in workspecs] == [True] * 4
    assert kube.of_kind(NS, "Pod") == []
    assert helm.releases == {}
    assert all(ws.status_calls == [] for ws in workspecs)


def test_kube_double_counts_requests() -> None:
    kube = FakeKube()
    kube.list_pods("x")
    assert kube.requests == 1 and kube.lists("x") == 1 and kube.lists("y") == 0


def test_deadlines_come_from_the_same_list_and_the_monitor_kills_nothing() -> None:
    service, helm, kube = make_service("dask-sessions", now=NOW + timedelta(hours=2))
    monitor = DaskHelmMonitor(namespace="dask-sessions", service=service)
    kube.add(fixture_pods("interactive-staged", 1801))  # lease 1 h
    short = fixture_pods("batch-running", 1802)
    for pod in short:
        pod["metadata"]["annotations"]["dask-panda-session/lifetime-seconds"] = "3600"
    kube.add(short)
    lease, lifetime = submitted_worker(1, 1801, "dask-sessions"), submitted_worker(2, 1802, "dask-sessions")
    ok, results = monitor.check_workers([lease, lifetime])
    assert ok
    assert results[0][0] == WorkSpec.ST_finished and "LeaseExpired" in results[0][1]
    assert results[1][0] == WorkSpec.ST_failed and "LifetimeExceeded" in results[1][1]
    assert lease.errorCode == ErrorCodes.SUCCEEDED
    assert lifetime.errorCode == ErrorCodes.DEADLINE_EXCEEDED
    assert kube.calls == [("list_pods", "dask-sessions")]
    assert helm.calls == []  # no kill from the monitor: the sweeper / enforce_deadlines end them


def test_harvester_id_reaches_the_pilot_values() -> None:
    """The queue's harvesterID becomes the chart's job.harvesterId (the pilot's HARVESTER_ID)."""
    from orchestrator.harvester.queue_params import settings_from_params
    from orchestrator.service import SessionService

    settings = settings_from_params({"queueName": "GOOGLE_DASK", "harvesterID": "CERN_central_k8s"})
    assert settings.harvester_id == "CERN_central_k8s"
    svc = SessionService(settings, helm=FakeHelm(), kube=FakeKube())
    _, rendered = svc.render(JobSpec(example_params()))
    assert rendered.values["job"]["harvesterId"] == "CERN_central_k8s"


# ------------------------------------------------------------------------------------------------
# the JupyterLab URL reaches PanDA


def _harvester_python() -> str | None:
    """A Python with the real ``pandaharvester`` installed: the Harvester agent's venv of the
    checkout (``.venv-harvester``), or ``DPS_HARVESTER_PYTHON``; None where there is none."""
    import os

    candidates = [os.environ.get("DPS_HARVESTER_PYTHON", ""), str(ROOT / ".venv-harvester" / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import pandaharvester.harvestercore.work_spec"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return candidate
    return None


_REAL_PROPAGATE = textwrap.dedent(
    """
    import json, sys
    from pandaharvester.harvestercore.work_spec import WorkSpec
    given = json.load(sys.stdin)
    ws = WorkSpec()
    ws.workerID, ws.batchID, ws.status = given["workerID"], given["batchID"], given["status"]
    ws.nativeStatus = given["nativeStatus"]
    ws.set_work_attributes(given["workAttributes"])
    ws.set_dialog_message(given["diag"])  # what Harvester's monitor body does with the diag
    print(json.dumps(ws.convert_to_propagate(), default=str))
    """
)


def _lb_service(release: str, namespace: str, ip: str) -> dict[str, object]:
    labels = {
        "app.kubernetes.io/name": "dask-panda-session",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": "jupyterlab",
    }
    return {
        "metadata": {"name": f"{release}-jupyterlab", "namespace": namespace, "labels": labels},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 8888}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def test_the_external_jupyterlab_url_reaches_the_fields_panda_receives() -> None:
    """diagMessage starts with the URL and stdOut is the URL, with Harvester's own field
    selection (the double; and the real WorkSpec where pandaharvester is installed)."""
    import json

    _, monitor, _, _, kube = plugins(namespace="dask-sessions")
    kube.add(fixture_pods("interactive-staged", 201))
    kube.add(fixture_pods("batch-running", 202))
    kube.add([_lb_service("dask-201", "dask-sessions", "192.0.2.201")], kind="Service")
    interactive, batch = submitted_worker(1, 201, "dask-sessions"), submitted_worker(2, 202, "dask-sessions")
    ok, results = monitor.check_workers([interactive, batch])
    assert ok
    assert kube.calls == [("list_pods", "dask-sessions"), ("list_services", "dask-sessions")]
    (status, diag), (_, batch_diag) = results
    url = "http://192.0.2.201:8888/"
    assert status == WorkSpec.ST_running
    assert diag.startswith(f"JupyterLab: {url}")
    assert interactive.session["jupyter_url"] == url
    assert "JupyterLab" not in batch_diag and not batch.has_work_attribute("stdOut")

    interactive.status = status
    interactive.set_dialog_message(diag)
    sent = interactive.convert_to_propagate()
    assert sent["diagMessage"].startswith(f"JupyterLab: {url}")
    assert sent["stdOut"] == url
    assert "dask_panda_session" not in sent  # our own attribute never leaves Harvester
    assert "password" not in json.dumps(sent).lower()

    real = _harvester_python()
    if real is not None:  # the same through Harvester's own WorkSpec
        given = {
            "workerID": interactive.workerID,
            "batchID": interactive.batchID,
            "status": status,
            "nativeStatus": interactive.nativeStatus,
            "workAttributes": interactive.workAttributes,
            "diag": diag,
        }
        out = subprocess.run(
            [real, "-c", _REAL_PROPAGATE], input=json.dumps(given), capture_output=True, text=True, check=True
        )
        real_sent = json.loads(out.stdout)
        assert real_sent["diagMessage"] == sent["diagMessage"]
        assert real_sent["stdOut"] == url
        assert "dask_panda_session" not in real_sent


def test_the_url_goes_to_panda_only_while_the_session_runs() -> None:
    _, monitor, _, _, kube = plugins(namespace="dask-sessions")
    kube.add(fixture_pods("image-pull-backoff", 203))
    ws = submitted_worker(3, 203, "dask-sessions")
    ok, [(status, diag)] = monitor.check_workers([ws])
    assert ok and status != WorkSpec.ST_running
    assert not diag.startswith("JupyterLab:") and not ws.has_work_attribute("stdOut")


def test_many_interactive_sessions_cost_one_service_list_per_namespace() -> None:
    _, monitor, _, _, kube = plugins()
    workspecs = []
    for i in range(20):
        ns = f"ns-{i % 2}"
        kube.add(fixture_pods("interactive-staged", 600 + i, ns))
        kube.add([_lb_service(f"dask-{600 + i}", ns, f"192.0.2.{i}")], kind="Service")
        workspecs.append(submitted_worker(i, 600 + i, ns))
    ok, results = monitor.check_workers(workspecs)
    assert ok
    assert [d.split(";")[0] for _, d in results] == [f"JupyterLab: http://192.0.2.{i}:8888/" for i in range(20)]
    assert kube.requests == 4
    assert sorted(kube.calls) == [
        ("list_pods", "ns-0"),
        ("list_pods", "ns-1"),
        ("list_services", "ns-0"),
        ("list_services", "ns-1"),
    ]
