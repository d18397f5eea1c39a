"""The Harvester plugins against the real API server, driven the way Harvester's bodies drive them.

A small cycle driver plays Harvester: the submitter body (submit_workers, then ``set_status``
from the result), the monitor body (check_workers every cycle, status taken only from the plugin's
answer, nothing updated on ``(False, [])``), and the sweeper body (kill_workers for workers to
kill, then, at clean-up time, kill_workers again for every final worker followed by sweep_worker).

20 workers in one namespace, four behaviours chosen through pod annotations that the kwok stages
understand (scripts/cluster/stages/), each a separate "queue" (submitter parameters ``valuesFiles``)
as a site would configure them: the pilot succeeds, the pilot fails with exit code 3, the pilot's
image cannot be pulled, and a session that runs until it is killed in the middle.
Afterwards nothing labelled for any of them remains in the namespace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator.harvester.base import ErrorCodes
from orchestrator.harvester.monitor import DaskHelmMonitor
from orchestrator.harvester.submitter import DaskHelmSubmitter
from orchestrator.harvester.sweeper import DaskHelmSweeper
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import EXIT_AFTER, EXIT_CODE, IMAGE_PULL, labelled_by, prepare_namespace
from tests.conftest import TOOLS_BIN
from tests.doubles import JobSpec, WorkSpec, example_params

STARTUP_SECONDS = 15

# behaviour -> (count, pilot annotations, expected final status)
SCENARIOS: dict[str, tuple[int, dict[str, str], str]] = {
    "success": (8, {EXIT_CODE: "0", EXIT_AFTER: "6"}, WorkSpec.ST_finished),
    "pilot-fails": (4, {EXIT_CODE: "3", EXIT_AFTER: "6"}, WorkSpec.ST_failed),
    "image-pull": (4, {IMAGE_PULL: "fail"}, WorkSpec.ST_failed),
    "killed": (4, {}, WorkSpec.ST_cancelled),
}


def queue_params(cluster: KubeCluster, namespace: str, extra_values: str | None = None) -> dict[str, Any]:
    """A plugin section of panda_queueconfig.json, as Harvester passes it (plus injected keys)."""
    params: dict[str, Any] = {
        "queueName": "GOOGLE_DASK",
        "siteName": "GOOGLE_DASK",
        "namespace": namespace,
        "kubeconfig": str(cluster.kubeconfig),
        "helmExecutable": str(TOOLS_BIN / "helm"),
        "installTimeout": 120,
        "uninstallTimeout": 60,
        "cleanupTimeout": 30,
        "verifyTimeout": 60,
        "nProcesses": 4,
    }
    if extra_values is not None:
        params["valuesFiles"] = [extra_values]
    return params


def labelled_objects(cluster: KubeCluster, namespace: str) -> list[str]:
    """Every object of the namespace labelled as ours, over every listable namespaced kind."""
    return labelled_by(cluster, namespace, "app.kubernetes.io/name=dask-panda-session")


class Harvester:
    """The parts of Harvester's submitter, monitor and sweeper bodies that call our plugins."""

    def __init__(self, monitor: DaskHelmMonitor, sweeper: DaskHelmSweeper) -> None:
        self.monitor = monitor
        self.sweeper = sweeper
        self.plugin_status_calls = 0
        self.history: dict[int, list[str]] = {}

    def submit(
        self, submitter: DaskHelmSubmitter, workspecs: list[WorkSpec]
    ) -> list[tuple[bool | None, str]]:
        before = sum(len(ws.status_calls) for ws in workspecs)
        results = submitter.submit_workers(workspecs)
        self.plugin_status_calls += sum(len(ws.status_calls) for ws in workspecs) - before
        assert len(results) == len(workspecs)
        for ws, (ok, _) in zip(workspecs, results, strict=True):
            if ok:
                ws.set_status(WorkSpec.ST_submitted)  # the body overrides whatever the plugin set
                ws.submitTime = datetime.now(UTC).replace(tzinfo=None)
            else:
                ws.set_status(WorkSpec.ST_missed)
        return results

    def monitor_cycle(self, workspecs: list[WorkSpec]) -> None:
        live = [ws for ws in workspecs if not ws.is_final_status()]
        if not live:
            return
        before = sum(len(ws.status_calls) for ws in live)
        ok, results = self.monitor.check_workers(live)
        self.plugin_status_calls += sum(len(ws.status_calls) for ws in live) - before
        assert ok, "the cluster is up: the check must not fail"
        assert len(results) == len(live)
        for ws, (status, diag) in zip(live, results, strict=True):
            assert status is not None, f"worker {ws.workerID}: None for a healthy worker ({diag})"
            assert status in WorkSpec.ST_LIST, status
            history = self.history.setdefault(ws.workerID, [])
            if not history or history[-1] != status:
                history.append(status)
            ws.set_status(status)

    def kill(self, workspecs: list[WorkSpec]) -> list[tuple[bool, str]]:
        return self.sweeper.kill_workers(workspecs)

    def clean_up(self, workspecs: list[WorkSpec]) -> list[tuple[bool, str]]:
        """Clean-up time: kill again (idempotent), then sweep; a True sweep deletes the row."""
        killed = self.sweeper.kill_workers(workspecs)
        assert [ok for ok, _ in killed] == [True] * len(workspecs), killed
        return [self.sweeper.sweep_worker(ws) for ws in workspecs]


def test_twenty_workers_through_a_harvester_cycle(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    monitor = DaskHelmMonitor(**queue_params(kube_cluster, namespace))
    sweeper = DaskHelmSweeper(**queue_params(kube_cluster, namespace))
    harvester = Harvester(monitor, sweeper)

    groups: dict[str, list[WorkSpec]] = {}
    worker_id = 0
    for name, (count, pod_annotations, _) in SCENARIOS.items():
        values = {
            "timeouts": {
                "startupSeconds": STARTUP_SECONDS,
                "lifetimeSeconds": 900,
                "leaseSeconds": 600,
                "schedulerIdleSeconds": 0,
                "hookSeconds": 60,
                "testSeconds": 60,
            },
            "pilot": {"podAnnotations": pod_annotations},
        }
        extra = tmp_path / f"{name}.yaml"
        extra.write_text(yaml.safe_dump(values))
        submitter = DaskHelmSubmitter(**queue_params(kube_cluster, namespace, str(extra)))
        workspecs = []
        for _ in range(count):
            worker_id += 1
            params = example_params(90_000 + worker_id, daskWorkers=1)
            workspecs.append(WorkSpec(worker_id, [JobSpec(params)]))
        started = time.monotonic()
        results = harvester.submit(submitter, workspecs)
        assert [ok for ok, _ in results] == [True] * count, results
        assert time.monotonic() - started < 120  # never waits for pods to run
        assert all(ws.batchID == f"dask-{90_000 + ws.workerID}" for ws in workspecs)
        assert all(ws.session["namespace"] == namespace for ws in workspecs)
        groups[name] = workspecs
    everyone = [ws for group in groups.values() for ws in group]
    assert len(everyone) == 20

    # monitor cycles; kill the "killed" group in the middle, once it runs
    kube = monitor.service.kube
    killed_at: float | None = None
    deadline = time.monotonic() + 300
    cycles = 0
    while time.monotonic() < deadline:
        requests = kube.requests
        harvester.monitor_cycle(everyone)
        cycles += 1
        assert kube.requests - requests <= 1, "one LIST per namespace per check"
        to_kill = groups["killed"]
        if killed_at is None and all(ws.status == WorkSpec.ST_running for ws in to_kill):
            killed = harvester.kill(to_kill)
            assert [ok for ok, _ in killed] == [True] * len(to_kill), killed
            killed_at = time.monotonic()
        if all(ws.is_final_status() for ws in everyone):
            break
        time.sleep(2)
    summary = {ws.workerID: (ws.status, harvester.history.get(ws.workerID)) for ws in everyone}
    assert all(ws.is_final_status() for ws in everyone), json.dumps(summary)
    assert killed_at is not None, "the sessions to kill never ran"
    assert harvester.plugin_status_calls == 0  # the plugins never set a status

    for name, (_, _, expected) in SCENARIOS.items():
        for ws in groups[name]:
            assert ws.status == expected, (name, ws.workerID, harvester.history[ws.workerID], ws.errorDiag)
    for ws in groups["success"]:
        assert ws.errorCode == ErrorCodes.SUCCEEDED
        # the pilot may have ended before the first cycle: running is possible, not required
        assert set(harvester.history[ws.workerID]) <= {
            WorkSpec.ST_submitted,
            WorkSpec.ST_running,
            WorkSpec.ST_finished,
        }
        timings = ws.session["timings"]
        assert timings["submitted"] and timings["scheduler_ready"] and timings["pilot_started"]
        assert timings["ended"]
        assert ws.session["scheduler_address"].startswith(f"tls://{ws.batchID}-scheduler.{namespace}.svc")
        assert ws.session["dashboard_url"]
    for ws in groups["pilot-fails"]:
        assert ws.errorCode == ErrorCodes.PILOT_EXIT_CODE
        assert ws.nativeExitCode == 3
        assert ws.errorDiag is not None and ws.errorDiag.startswith("pilot exit code 3")
    for ws in groups["image-pull"]:
        assert ws.errorCode in (ErrorCodes.IMAGE_PULL_FAILED, ErrorCodes.STARTUP_TIMEOUT), ws.errorDiag
        assert WorkSpec.ST_running not in harvester.history[ws.workerID]
    for ws in groups["killed"]:
        assert harvester.history[ws.workerID][-2:] == [WorkSpec.ST_running, WorkSpec.ST_cancelled]

    # clean-up time: kill again, sweep, and nothing of theirs remains
    swept = harvester.clean_up(everyone)
    assert [ok for ok, _ in swept] == [True] * len(everyone), swept
    assert labelled_objects(kube_cluster, namespace) == []
    assert monitor.service.helm.list_releases(namespace) == []
    # a second clean-up (Harvester retries) is harmless
    assert [ok for ok, _ in sweeper.kill_workers(everyone)] == [True] * len(everyone)


def test_unreachable_cluster_fails_the_check_without_cancelling(tmp_path: Path) -> None:
    """A kubeconfig pointing at a closed port: (False, []) and no worker touched."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monitor = DaskHelmMonitor(namespace="nowhere", kubeconfig=str(kubeconfig), requestConnectTimeout=2)
    ws = WorkSpec(1, [JobSpec(example_params(1))], batchID="dask-1")
    assert monitor.check_workers([ws]) == (False, [])
    assert ws.status_calls == [] and ws.errorCode is None and ws.workAttributes is None
