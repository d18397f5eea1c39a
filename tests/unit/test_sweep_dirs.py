"""The job's directory counts in a sweep: cleanup after the pods are gone, on the fallback and
undo paths, a failed cleanup is not clean (and is not forgotten once the release is gone)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.harvester.sweeper import DaskHelmSweeper
from orchestrator.harvester.workspec import ATTRIBUTE_KEY
from orchestrator.helm import HelmError, HelmReleaseInfo, HelmRenderError
from orchestrator.job import release_name
from orchestrator.jobdirs import GC_SCRIPT, DirectoryCounts, parse_counts
from orchestrator.kube import Kind
from orchestrator.names import ANN_PENDING_DIRECTORY, GC_JOB_NAME, pending_cleanup_name
from orchestrator.service import SessionService, Settings, job_directory_of
from tests.conftest import ROOT
from tests.doubles import FakeHelm, FakeKube, WorkSpec, pod, worker

EXAMPLE = json.loads((ROOT / "tests" / "data" / "harvester-example-pandaJobData.json").read_text())
PANDAID = int(next(iter(EXAMPLE)))
RELEASE = release_name(PANDAID)
NOW = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)


class CleanupKube(FakeKube):
    """FakeKube whose cleanup Jobs end as `outcome` says, and which records, for every Job
    created, the pods of the namespace at that moment."""

    outcome: str = "Complete"  # "Complete", "Failed" or "" (never ends)
    created_jobs: list[tuple[dict[str, Any], list[str]]]

    def __init__(self) -> None:
        super().__init__(jobs_complete=False)
        self.created_jobs = []

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if kind.name == "Job":
            pods = [name for (k, name) in self.objects.get(namespace, {}) if k == "Pod"]
            self.created_jobs.append((json.loads(json.dumps(body)), pods))
        return super().create(kind, namespace, body)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        obj = super().get(kind, namespace, name)
        if obj is not None and kind.name == "Job" and name.endswith("-cleanup") and self.outcome:
            cond = {"type": self.outcome, "status": "True", "reason": "BackoffLimitExceeded"}
            if self.outcome == "Failed":
                cond["message"] = "Job has reached the specified backoff limit"
            obj.setdefault("status", {})["conditions"] = [cond]
        return obj

    def cleanup_runs(self) -> list[dict[str, Any]]:
        return [job for job, _ in self.created_jobs if job["metadata"]["name"].endswith("-cleanup")]


class RecordingHelm(FakeHelm):
    """FakeHelm that keeps the values every `template` call rendered from."""

    rendered: list[dict[str, Any]]
    fail_get_values: Exception | None = None

    def __init__(self) -> None:
        super().__init__()
        self.rendered = []

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        self.rendered.append(json.loads(json.dumps(values)))
        jobs = super().template(name, namespace, values, show_only)
        for job in jobs:
            job["metadata"]["labels"] = {
                "app.kubernetes.io/name": "dask-panda-session",
                "app.kubernetes.io/instance": name,
            }
            job["spec"] = {
                "template": {
                    "metadata": {"labels": dict(job["metadata"]["labels"])},
                    "spec": {"containers": [{"name": "cleanup", "image": "cleanup:1", "args": ["rm"]}]},
                }
            }
        return jobs

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        if self.fail_get_values is not None:
            self._call("get-values", namespace, name)
            raise self.fail_get_values
        return super().get_values(name, namespace)


def make(queue: str = "GOOGLE_DASK", **settings: Any) -> tuple[SessionService, RecordingHelm, CleanupKube]:
    helm, kube = RecordingHelm(), CleanupKube()
    svc = SessionService(
        Settings(namespace="ns", queue=queue, verify_timeout=0.2, cleanup_timeout=0.2, **settings),
        helm=helm,
        kube=kube,
        clock=lambda: NOW,
        sleep=lambda _: None,
    )
    return svc, helm, kube


def submitted(svc: SessionService, helm: RecordingHelm) -> None:
    svc.submit(EXAMPLE)
    helm.fail_uninstall_with_hooks = HelmError("helm uninstall: pre-delete hook failed: BackoffLimitExceeded")


def test_fallback_cleanup_runs_after_the_session_pods_are_gone() -> None:
    svc, helm, kube = make()
    submitted(svc, helm)
    kube.put("ns", "Pod", pod(RELEASE, "scheduler"))
    kube.put("ns", "Pod", pod(RELEASE, "worker"))
    result = svc.sweep(RELEASE)
    assert result.used_fallback
    assert result.clean, result
    assert result.cleanup_completed is True
    [(job, pods_then)] = kube.created_jobs
    assert job["metadata"]["name"] == f"{RELEASE}-cleanup"
    assert pods_then == []  # no pod of the session held files open when the cleanup started
    assert kube.get(Kind("Job", "batch/v1", "jobs"), "ns", pending_cleanup_name(RELEASE)) is None


def test_a_hook_that_succeeded_is_not_followed_by_a_second_cleanup() -> None:
    svc, _helm, kube = make()
    svc.submit(EXAMPLE)
    result = svc.sweep(RELEASE)
    assert result.clean
    assert result.cleanup_completed is None
    assert kube.created_jobs == []


@pytest.mark.parametrize("outcome", ["Failed", ""])
def test_failed_cleanup_makes_the_sweep_not_clean_and_names_the_directory(outcome: str) -> None:
    svc, helm, kube = make()
    submitted(svc, helm)
    kube.outcome = outcome
    result = svc.sweep(RELEASE)
    directory = f"{PANDAID}-0"
    assert not result.clean
    assert result.cleanup_completed is False
    assert result.remaining == (f"directory {directory}",)
    assert any(directory in note and "cleanup" in note for note in result.notes), result.notes
    if outcome == "Failed":
        assert any("BackoffLimitExceeded" in note for note in result.notes)
    else:
        assert any("did not finish" in note for note in result.notes)
    # the failed cleanup Job itself is gone; its record stays, suspended, without the instance label
    record = kube.find("ns", "Job", pending_cleanup_name(RELEASE))
    assert record is not None
    assert record["spec"]["suspend"] is True
    assert "app.kubernetes.io/instance" not in record["metadata"]["labels"]
    assert record["metadata"]["annotations"][ANN_PENDING_DIRECTORY] == directory
    assert kube.find("ns", "Job", f"{RELEASE}-cleanup") is None


def test_a_pending_cleanup_is_not_forgotten_once_the_release_is_gone() -> None:
    svc, helm, kube = make()
    submitted(svc, helm)
    kube.outcome = "Failed"
    assert not svc.kill(RELEASE).clean
    assert not svc.sweep(RELEASE).clean  # the release is gone now, the directory is not
    kube.outcome = "Complete"
    result = svc.sweep(RELEASE)
    assert result.clean, result
    assert result.cleanup_completed is True
    assert not result.release_existed
    assert kube.find("ns", "Job", pending_cleanup_name(RELEASE)) is None
    assert len(kube.cleanup_runs()) == 3
    assert all(job == kube.cleanup_runs()[0] for job in kube.cleanup_runs())


def test_kill_of_a_gone_release_runs_a_pending_cleanup_again() -> None:
    svc, helm, kube = make()
    submitted(svc, helm)
    kube.outcome = "Failed"
    svc.kill(RELEASE)
    kube.outcome = "Complete"
    result = svc.kill(RELEASE)
    assert result.cleanup_completed is True and result.clean
    assert kube.find("ns", "Job", pending_cleanup_name(RELEASE)) is None
    # and from then on a kill is the cheap one again: no cleanup
    runs = len(kube.cleanup_runs())
    assert svc.kill(RELEASE).clean
    assert len(kube.cleanup_runs()) == runs


def test_fallback_renders_the_cleanup_from_rebuilt_values_when_helm_get_values_fails() -> None:
    svc, helm, kube = make(queue="example")
    attempt_job = json.loads(json.dumps(EXAMPLE))
    next(iter(attempt_job.values()))["attemptNr"] = 3
    svc.submit(attempt_job)
    release = release_name(PANDAID, 3)
    helm.fail_uninstall_with_hooks = HelmError("helm uninstall: timed out waiting for the pre-delete hook")
    helm.fail_get_values = HelmError("helm get values: release: not found")
    result = svc.sweep(release)
    assert result.clean, result
    assert result.cleanup_completed is True
    [values] = helm.rendered
    assert values["job"]["pandaId"] == str(PANDAID)
    assert values["job"]["attempt"] == 3
    # the queue's own shared volume and jobs directory
    assert values["sharedVolume"]["jobsDirectory"] == svc.queue().values["sharedVolume"]["jobsDirectory"]
    assert job_directory_of(values) == f"{values['sharedVolume']['jobsDirectory'].strip('/')}/{PANDAID}-3"
    assert any("cannot read the release values" in note for note in result.notes)
    assert [job["metadata"]["name"] for job in kube.cleanup_runs()] == [f"{release}-cleanup"]


def test_fallback_without_values_or_a_name_of_ours_is_not_clean() -> None:
    svc, helm, kube = make()
    helm.values[("ns", "someone-elses")] = {}
    helm.releases[("ns", "someone-elses")] = HelmReleaseInfo("someone-elses", "ns", 1, "failed", None)
    helm.fail_get_values = HelmError("helm get values: boom")
    result = svc.sweep("someone-elses")
    assert not result.clean
    assert result.cleanup_completed is False
    assert any("is not a <prefix>-<PandaID>" in note for note in result.notes)
    assert kube.created_jobs == []


def test_undo_of_a_failed_submit_runs_the_cleanup_from_its_own_values() -> None:
    svc, helm, kube = make()
    helm.fail_install = HelmError("helm install: timed out waiting for the condition")
    helm.fail_install_leaves = "failed"
    kube.put("ns", "Pod", pod(RELEASE, "scheduler"))
    with pytest.raises(HelmError):
        svc.submit(EXAMPLE)
    [values] = helm.rendered
    assert values["job"]["pandaId"] == str(PANDAID)
    assert values["job"]["definitionSha256"]  # the submit's own values, not rebuilt ones
    [(job, pods_then)] = kube.created_jobs
    assert job["metadata"]["name"] == f"{RELEASE}-cleanup"
    assert pods_then == []
    assert kube.objects["ns"] == {}  # the lock, the pods and the cleanup Job: all gone


def test_undo_after_the_chart_refused_the_values_runs_no_cleanup() -> None:
    svc, helm, kube = make()
    helm.fail_install = HelmRenderError("helm install: values don't meet the specifications of the schema")
    with pytest.raises(HelmRenderError):
        svc.submit(EXAMPLE)
    assert helm.rendered == []
    assert kube.created_jobs == []


def harvester_worker() -> WorkSpec:
    ws = worker(1, PANDAID)
    ws.batchID = RELEASE
    ws.set_work_attributes({ATTRIBUTE_KEY: {"namespace": "ns", "release": RELEASE}})
    return ws


def test_sweep_worker_fails_while_the_directory_remains() -> None:
    svc, helm, kube = make()
    submitted(svc, helm)
    kube.outcome = "Failed"
    sweeper = DaskHelmSweeper(queueName="GOOGLE_DASK", namespace="ns", nProcesses=1, service=svc)
    ws = harvester_worker()
    assert sweeper.kill_workers([ws])[0][0] is True  # the kill ended the session
    ok, message = sweeper.sweep_worker(ws)
    assert ok is False
    assert f"directory {PANDAID}-0" in message
    kube.outcome = "Complete"
    ok, message = sweeper.sweep_worker(ws)
    assert ok is True, message


# --- directories of releases that no longer exist ------------------------------------------------


def run_gc_script(root: Path, tmp_path: Path, *, keep: str, dry_run: bool) -> tuple[int, str]:
    """Run the gc Job's script for real (sh) on a directory standing in for the jobs directory."""
    log = tmp_path / "termination-log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JOBS_ROOT": str(root),
        "TERMINATION_LOG": str(log),
        "KEEP": keep,
        "GRACE_MINUTES": "10",
        "DRY_RUN": "1" if dry_run else "0",
        "LIMIT": "100",
    }
    done = subprocess.run(["sh", "-c", GC_SCRIPT], env=env, capture_output=True, text=True, check=False)
    return done.returncode, log.read_text()


def job_tree(root: Path, tmp_path: Path) -> Path:
    old = time.time() - 3600
    for name in ("111-0", "111-1", "222-0", "333-0"):
        (root / name / "data" / "sub").mkdir(parents=True)
        (root / name / "data" / "sub" / "file").write_text("x")
        (root / name / "data" / "sub").chmod(0o500)  # what a payload may do
        os.utime(root / name, (old, old))
    os.utime(root / "333-0", None)  # modified just now: its release may be installing
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    (root / "444-0").symlink_to(outside)  # never followed
    (root / "notes").mkdir()  # not a job directory
    return outside


def test_gc_script_removes_only_old_directories_of_gone_releases(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    outside = job_tree(root, tmp_path)
    code, message = run_gc_script(root, tmp_path, keep="111-1 999-0", dry_run=False)
    assert code == 0
    assert parse_counts(message) == DirectoryCounts(found=3, removed=2, young=1, failed=0, kept=1)
    assert sorted(p.name for p in root.iterdir()) == ["111-1", "333-0", "444-0", "notes"]
    assert (outside / "precious").read_text() == "keep me"


def test_gc_script_dry_run_removes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    job_tree(root, tmp_path)
    before = sorted(p.name for p in root.iterdir())
    code, message = run_gc_script(root, tmp_path, keep="", dry_run=True)
    assert code == 0
    assert parse_counts(message) == DirectoryCounts(found=4, removed=0, young=1, failed=0, kept=0)
    assert sorted(p.name for p in root.iterdir()) == before


def test_gc_runs_the_directory_job_keeping_live_releases() -> None:
    svc, _helm, kube = make(gc_grace_seconds=600)
    svc.submit(EXAMPLE)  # a live release: its directory is kept
    gc_jobs: list[dict[str, Any]] = []
    original = kube.create

    def create(kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = original(kind, namespace, body)
        if body["metadata"]["name"] == GC_JOB_NAME:
            gc_jobs.append(obj)
            kube.put(
                namespace,
                "Pod",
                {
                    "metadata": {"name": "gc-pod", "labels": body["spec"]["template"]["metadata"]["labels"]},
                    "status": {
                        "containerStatuses": [
                            {"state": {"terminated": {"message": "found=3 removed=2 young=1 failed=0 kept=1\n"}}}
                        ]
                    },
                },
            )
        return obj

    kube.create = create  # type: ignore[method-assign]
    kube.outcome = "Complete"
    result = svc.gc(now=NOW, dry_run=True)
    [job] = gc_jobs
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KEEP"] == f"{PANDAID}-0"
    assert env["DRY_RUN"] == "1"
    assert env["GRACE_MINUTES"] == "10"
    assert "app.kubernetes.io/instance" not in job["metadata"]["labels"]
    assert result.directories == DirectoryCounts(found=3, removed=2, young=1, failed=0, kept=1)
    assert kube.find("ns", "Job", GC_JOB_NAME) is None


def test_a_record_left_by_a_failed_undo_is_settled_by_the_next_release_hook() -> None:
    svc, helm, kube = make()
    helm.fail_install = HelmError("helm install: pre-install hook failed")
    helm.fail_install_leaves = "failed"
    kube.outcome = "Failed"
    with pytest.raises(HelmError):
        svc.submit(EXAMPLE)
    assert kube.find("ns", "Job", pending_cleanup_name(RELEASE)) is not None
    helm.fail_install = None
    kube.outcome = "Complete"
    svc.submit(EXAMPLE)  # installed again; its pre-delete hook removes the directory
    result = svc.sweep(RELEASE)
    assert result.clean, result
    assert kube.find("ns", "Job", pending_cleanup_name(RELEASE)) is None
