"""The orchestrator against the real API server: submit, observe, kill, sweep, gc, deadlines.

Pods run on kwok nodes; their behaviour (the pilot's exit code, an image that cannot be pulled,
JupyterLab shutting down) is chosen per test through pod annotations in an extra values file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import DaskPandaSessionError
from orchestrator.kube import APP_SELECTOR, SECRET, KubeConflict
from orchestrator.names import ANN_PENDING_DIRECTORY, ANN_PENDING_JOB, GC_JOB_NAME, pending_cleanup_name
from orchestrator.service import SessionService
from orchestrator.session import Phase, SessionState
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import (
    IMAGE_PULL,
    fast_timeouts,
    job,
    jupyterlab_exits,
    labelled,
    pilot_exits,
    prepare_namespace,
    service,
    values_file,
)
from tests.conftest import ROOT, TOOLS_BIN


@pytest.fixture
def queue_ns(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> str:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    return namespace


def wait_final(svc: SessionService, release: str, timeout: float = 90.0) -> list[SessionState]:
    """Observe until the session is final; return every distinct state seen (phase, reason)."""
    seen: list[SessionState] = []
    deadline = time.monotonic() + timeout
    submitted = {release: svc.clock()}
    while time.monotonic() < deadline:
        state = svc.observe([release], submitted=submitted)[release]
        if not seen or (seen[-1].phase, seen[-1].reason) != (state.phase, state.reason):
            seen.append(state)
        if state.final:
            return seen
        time.sleep(1.0)
    pytest.fail(f"{release} not final after {timeout} s: {[(s.phase, s.reason) for s in seen]}")


def assert_swept(svc: SessionService, cluster: KubeCluster, namespace: str, release: str) -> None:
    result = svc.sweep(release)
    assert result.clean, result
    assert labelled(cluster, namespace, release) == []
    assert svc.helm.release(release, namespace) is None


def test_submit_twice_makes_one_release(kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path) -> None:
    svc = service(kube_cluster, queue_ns)
    extra = [values_file(tmp_path, "t", fast_timeouts())]
    first = svc.submit(job(101, workers=3), values_files=extra)
    second = svc.submit(job(101, workers=3), values_files=extra)
    assert first.created is True
    assert second.created is False
    assert first.release == second.release == "dask-101"
    assert [r.name for r in svc.helm.list_releases(queue_ns)] == ["dask-101"]
    pods = kube_cluster.core.list_namespaced_pod(
        queue_ns, label_selector="app.kubernetes.io/instance=dask-101"
    )
    names = sorted(p.metadata.name for p in pods.items)
    assert names == [
        "dask-101-pilot",
        "dask-101-scheduler",
        "dask-101-worker-0",
        "dask-101-worker-1",
        "dask-101-worker-2",
    ]
    assert_swept(svc, kube_cluster, queue_ns, "dask-101")


def test_the_submit_lock_on_the_real_api_server(kube_cluster: KubeCluster, namespace: str) -> None:
    """What the submit's lock relies on, as the API server does it: create-only (409), the
    metadata read that carries no Secret data, uid preconditions, and the Date of each answer."""
    kube = service(kube_cluster, namespace).kube
    labels = {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": "dask-77"}
    meta = kube.create_secret(namespace, "dask-77-secret", {"k": "s3cr3t-value"}, labels, {"a": "b"})
    assert meta["uid"] and meta["creationTimestamp"] and meta["annotations"] == {"a": "b"}
    with pytest.raises(KubeConflict):
        kube.create_secret(namespace, "dask-77-secret", {"k": "other"}, labels)
    read, date = kube.metadata_at(SECRET, namespace, "dask-77-secret")
    assert read is not None and read["uid"] == meta["uid"]
    assert "s3cr3t-value" not in json.dumps(read) and "czNjcjN0LXZhbHVl" not in json.dumps(read)
    assert date is not None and abs((date - datetime.now(UTC)).total_seconds()) < 300
    assert kube.delete(SECRET, namespace, "dask-77-secret", uid="not-its-uid") is False
    assert kube.metadata_at(SECRET, namespace, "dask-77-secret")[0] is not None
    assert kube.delete(SECRET, namespace, "dask-77-secret", uid=meta["uid"]) is True
    assert kube.metadata_at(SECRET, namespace, "dask-77-secret")[0] is None
    pods, listed_at = kube.list_pods_at(namespace)
    assert pods == [] and listed_at is not None
    assert kube.server_time() is not None


def test_concurrent_submits_make_one_release(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    extra = [values_file(tmp_path, "t", fast_timeouts())]
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def one() -> None:
        svc = service(kube_cluster, queue_ns, submit_poll_seconds=1.0)
        barrier.wait()
        try:
            results.append(svc.submit(job(102), values_files=extra).created)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert sorted(results) == [False, False, True]
    svc = service(kube_cluster, queue_ns)
    assert [(r.name, r.status) for r in svc.helm.list_releases(queue_ns)] == [("dask-102", "deployed")]
    assert_swept(svc, kube_cluster, queue_ns, "dask-102")


@pytest.mark.parametrize("helm", ["helm", "helm3"])
@pytest.mark.parametrize("exit_code", [0, 3])
def test_pilot_exit_decides_the_outcome(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path, helm: str, exit_code: int
) -> None:
    svc = service(kube_cluster, queue_ns, helm=helm)
    extra = [values_file(tmp_path, "t", {**fast_timeouts(), **pilot_exits(exit_code, after=4)})]
    result = svc.submit(job(200 + exit_code), values_files=extra)
    seen = wait_final(svc, result.release)
    final = seen[-1]
    assert Phase.RUNNING in [s.phase for s in seen]
    if exit_code == 0:
        assert final.phase is Phase.FINISHED, final
        assert final.reason is None
    else:
        assert final.phase is Phase.FAILED, final
        assert final.reason == "PilotExitCode"
        assert final.pilot_exit_code == exit_code
    timings = final.timings
    assert timings.submitted and timings.scheduler_ready and timings.pilot_started and timings.ended
    assert timings.ended >= timings.pilot_started >= timings.submitted
    assert_swept(svc, kube_cluster, queue_ns, result.release)


def cli(
    kube_cluster: KubeCluster, namespace: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(ROOT / ".venv" / "bin" / "dask-panda-session"),
        "--kubeconfig",
        str(kube_cluster.kubeconfig),
        "--helm",
        str(TOOLS_BIN / "helm"),
        "--namespace",
        namespace,
        *args,
    ]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=180, check=False)


def test_bad_input_exits_2_and_creates_nothing(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    bad_values = values_file(tmp_path, "bad", {"scheduler": {"port": 0}})
    cases = [
        ("malformed PandaID", ["submit", "-"], json.dumps({"PandaID": "12a"}), "PandaID"),
        ("not JSON", ["submit", "-"], "{not json", "JSON"),
        (
            "interactive without password",
            ["submit", "-"],
            json.dumps({"PandaID": 7, "daskMode": "interactive"}),
            "password",
        ),
        ("bad values file", ["submit", "-f", bad_values, "-"], json.dumps({"PandaID": 8}), "scheduler.port"),
        (
            "hostile worker count",
            ["submit", "-"],
            json.dumps({"PandaID": 9, "daskWorkers": "4; rm -rf /"}),
            "daskWorkers",
        ),
    ]
    for what, args, stdin, field in cases:
        proc = cli(kube_cluster, queue_ns, *args, stdin=stdin)
        assert proc.returncode == 2, (what, proc.stdout, proc.stderr)
        assert field in proc.stderr, (what, proc.stderr)
        assert "Traceback" not in proc.stderr
    objects = kube_cluster.kubectl_run(
        "get",
        "all,secrets,configmaps,jobs,networkpolicies,pvc",
        "-n",
        queue_ns,
        "-l",
        APP_SELECTOR,
        "-o",
        "name",
    ).stdout
    assert objects.strip() == ""
    svc = service(kube_cluster, queue_ns)
    assert svc.helm.list_releases(queue_ns) == []


@pytest.mark.parametrize(
    ("what", "extra", "reasons"),
    [
        (
            "image-pull",
            {"workers": {"podAnnotations": {IMAGE_PULL: "fail"}}},
            {"ErrImagePull", "ImagePullBackOff"},
        ),
        (
            "unschedulable",
            {"workers": {"nodeSelector": {"dask-panda-session/unschedulable": "true"}}},
            {"Unschedulable"},
        ),
    ],
)
def test_startup_problems_fail_after_the_startup_timeout(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path, what: str, extra: dict[str, Any], reasons: set[str]
) -> None:
    svc = service(kube_cluster, queue_ns)
    values = {**fast_timeouts(startup=12), **extra}
    result = svc.submit(job(300 + len(what)), values_files=[values_file(tmp_path, what, values)])
    seen = wait_final(svc, result.release, timeout=60)
    assert seen[0].phase in (Phase.STARTING, Phase.RUNNING)
    final = seen[-1]
    assert final.phase is Phase.FAILED, [(s.phase, s.reason) for s in seen]
    assert final.reason in reasons, final
    assert final.timings.submitted is not None
    # Before the timeout the problem is reported, but the session has not failed yet.
    assert any(s.phase in (Phase.STARTING, Phase.RUNNING) and s.reason in reasons for s in seen), [
        (s.phase, s.reason) for s in seen
    ]
    assert_swept(svc, kube_cluster, queue_ns, result.release)


def test_lifetime_expiry_kills_with_deadline_exceeded(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, queue_ns)
    values = fast_timeouts(startup=10, lifetime=30, lease=30)
    result = svc.submit(job(400), values_files=[values_file(tmp_path, "life", values)])
    assert svc.observe([result.release])[result.release].phase in (Phase.STARTING, Phase.RUNNING)
    ended: dict[str, str] = {}
    deadline = time.monotonic() + 90
    while not ended and time.monotonic() < deadline:
        ended = svc.enforce_deadlines()
        time.sleep(2)
    assert ended == {result.release: "DeadlineExceeded"}
    assert svc.helm.release(result.release, queue_ns) is None
    kube_cluster.wait_for(
        "nothing labelled left", lambda: labelled(kube_cluster, queue_ns, result.release) == [], timeout=60
    )


@pytest.fixture
def cmdline_sampler() -> Iterator[list[str]]:
    """Samples every process's command line while a test runs (a secret must never be on one)."""
    lines: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    with contextlib.suppress(OSError):
                        lines.append(
                            Path(f"/proc/{pid}/cmdline")
                            .read_bytes()
                            .replace(b"\0", b" ")
                            .decode(errors="replace")
                        )
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield lines
    stop.set()
    thread.join()


def test_password_goes_nowhere_but_its_secret(
    kube_cluster: KubeCluster,
    queue_ns: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    cmdline_sampler: list[str],
) -> None:
    password = "Canary-" + os.urandom(6).hex()
    caplog.set_level(logging.DEBUG)
    svc = service(kube_cluster, queue_ns)
    extra = [values_file(tmp_path, "t", {**fast_timeouts(), **jupyterlab_exits(after=6)})]
    result = svc.submit(job(500, mode="interactive", password=password), values_files=extra)
    seen = wait_final(svc, result.release)
    # Interactive: the session ends when JupyterLab ends (here: shut down after 6 s).
    assert seen[-1].phase is Phase.FINISHED, [(s.phase, s.reason) for s in seen]
    assert seen[-1].jupyter_url

    secret = kube_cluster.core.read_namespaced_secret(f"{result.release}-secret", queue_ns)
    import base64

    assert base64.b64decode(secret.data["jupyter-password"]).decode() == password  # positive control
    configmaps = kube_cluster.kubectl_run("get", "configmaps", "-n", queue_ns, "-o", "json").stdout
    helm_env = kube_cluster.env
    helm_values = subprocess.run(
        [str(TOOLS_BIN / "helm"), "get", "all", result.release, "-n", queue_ns],
        capture_output=True,
        text=True,
        env=helm_env,
        check=True,
    ).stdout
    pods = kube_cluster.kubectl_run("get", "pods", "-n", queue_ns, "-o", "json").stdout
    states = json.dumps([s.to_dict() for s in svc.observe().values()])
    assert "jupyter-password" in pods  # the pod references the Secret's key ...
    for where, text in [
        ("ConfigMaps", configmaps),
        ("helm get all", helm_values),
        ("pod specs", pods),
        ("log records", caplog.text),
        ("states", states),
        ("process command lines", "\n".join(cmdline_sampler)),
    ]:
        assert password not in text, f"the password leaked into {where}"
    assert len(cmdline_sampler) > 0
    assert_swept(svc, kube_cluster, queue_ns, result.release)
    assert (
        kube_cluster.kubectl_run(
            "get", "secret", f"{result.release}-secret", "-n", queue_ns, check=False
        ).returncode
        != 0
    )


def test_sweep_recovers_from_a_wedged_pre_delete_hook(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, queue_ns, uninstall_timeout=15.0, cleanup_timeout=10.0)
    result = svc.submit(job(600), values_files=[values_file(tmp_path, "t", fast_timeouts())])
    # Wedge the release's pre-delete hook: its pod can never pull its image.
    wedge = subprocess.run(
        [
            str(TOOLS_BIN / "helm"),
            "upgrade",
            result.release,
            str(ROOT / "charts" / "dask-panda-session"),
            "-n",
            queue_ns,
            "--reuse-values",
            "--set-json",
            f'hooks.podAnnotations={{"{IMAGE_PULL}": "fail"}}',
        ],
        capture_output=True,
        text=True,
        env=kube_cluster.env,
        check=False,
        timeout=120,
    )
    assert wedge.returncode == 0, wedge.stderr
    outcome = svc.sweep(result.release)
    assert outcome.used_fallback is True
    assert any("uninstall with hooks failed" in n for n in outcome.notes), outcome.notes
    # The fallback cleanup step runs with the same pod settings, so it cannot pull either: the job's
    # directory is not known to be gone, and the sweep says so instead of reporting clean.
    directory = f"directory {result.pandaid}-0"
    assert not outcome.clean, outcome
    assert outcome.cleanup_completed is False
    assert outcome.remaining == (directory,), outcome
    assert labelled(kube_cluster, queue_ns, result.release) == []
    assert svc.helm.release(result.release, queue_ns) is None
    # The record of the pending cleanup (a suspended Job: it runs nothing) keeps the verdict once
    # the release is gone: a later kill or sweep runs the cleanup again.
    record = json.loads(
        kube_cluster.kubectl_run(
            "get", "job", pending_cleanup_name(result.release), "-n", queue_ns, "-o", "json"
        ).stdout
    )
    assert record["spec"]["suspend"] is True
    assert not svc.sweep(result.release).clean
    # The site fixes the image: the recorded cleanup Job pulls now, and the sweep is clean.
    annotations = record["metadata"]["annotations"]
    recorded = json.loads(annotations[ANN_PENDING_JOB])
    recorded["spec"]["template"]["metadata"].setdefault("annotations", {}).pop(IMAGE_PULL, None)
    kube_cluster.kubectl_run(
        "annotate",
        "job",
        pending_cleanup_name(result.release),
        "-n",
        queue_ns,
        "--overwrite",
        f"{ANN_PENDING_JOB}={json.dumps(recorded)}",
    )
    final = svc.sweep(result.release)
    assert final.clean, final
    assert final.cleanup_completed is True
    assert (
        kube_cluster.kubectl_run(
            "get", "job", pending_cleanup_name(result.release), "-n", queue_ns, check=False
        ).returncode
        != 0
    )


def test_gc_removes_orphans_and_expired_releases(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, queue_ns, gc_grace_seconds=0.0)
    live = svc.submit(job(700), values_files=[values_file(tmp_path, "t", fast_timeouts(lifetime=600))])
    orphan = "dask-424242"
    labels = {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": orphan}
    kube_cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{orphan}-secret", "labels": labels},
                "stringData": {"x": "y"},
            },
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"{orphan}-left", "labels": labels},
                "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{orphan}-scheduler", "labels": labels},
                "spec": {"selector": labels, "ports": [{"port": 8786}]},
            },
        ],
        namespace=queue_ns,
    )
    planned = svc.gc(dry_run=True)
    assert [a.release for a in planned] == [orphan]
    assert len(labelled(kube_cluster, queue_ns, orphan)) >= 3  # dry run removed nothing
    # The directory gc Job is accepted by the API server and runs to its end (on kwok nothing
    # executes, so it reports no counts; the script itself runs in the unit tier), then goes.
    notes = planned.directory_notes
    assert not any("skipped" in n or "did not finish" in n for n in notes), notes
    assert planned.directories is not None or any("without reporting its counts" in n for n in notes), notes
    gc_job_left = kube_cluster.kubectl_run("get", "job", GC_JOB_NAME, "-n", queue_ns, check=False)
    assert gc_job_left.returncode != 0, gc_job_left.stdout
    done = svc.gc()
    assert [a.release for a in done] == [orphan]
    kube_cluster.wait_for("orphans gone", lambda: labelled(kube_cluster, queue_ns, orphan) == [], timeout=30)
    assert svc.helm.release(live.release, queue_ns) is not None  # a live release is left alone
    # Two days later the live release is past its lifetime: gc sweeps it.
    later = svc.clock() + timedelta(days=2)
    expired = svc.gc(now=later)
    assert [a.release for a in expired] == [live.release]
    assert svc.helm.release(live.release, queue_ns) is None
    kube_cluster.wait_for(
        "release swept", lambda: labelled(kube_cluster, queue_ns, live.release) == [], timeout=60
    )


def test_the_undo_of_a_failed_submit_runs_the_cleanup_step(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    """An install whose prepare hook cannot start fails; the undo removes the release and the lock
    and runs the cleanup step for the job's directory. That step cannot pull either (the same hook
    settings), so its failure is recorded, and a later sweep runs it again until it succeeds."""
    svc = service(kube_cluster, queue_ns, install_timeout=15.0, cleanup_timeout=10.0, verify_timeout=30.0)
    wedged = {**fast_timeouts(), "hooks": {"podAnnotations": {IMAGE_PULL: "fail"}}}
    with pytest.raises(DaskPandaSessionError):
        svc.submit(job(800), values_files=[values_file(tmp_path, "t", wedged)])
    release = "dask-800"
    assert svc.helm.release(release, queue_ns) is None
    assert labelled(kube_cluster, queue_ns, release) == []  # the lock, the hook, the cleanup Job
    record = json.loads(
        kube_cluster.kubectl_run("get", "job", pending_cleanup_name(release), "-n", queue_ns, "-o", "json").stdout
    )
    assert record["metadata"]["annotations"][ANN_PENDING_DIRECTORY] == "800-0"
    recorded = json.loads(record["metadata"]["annotations"][ANN_PENDING_JOB])
    assert recorded["metadata"]["name"] == f"{release}-cleanup"
    assert not svc.sweep(release).clean  # still failing: not clean, once the release is gone too
    recorded["spec"]["template"]["metadata"]["annotations"].pop(IMAGE_PULL)
    kube_cluster.kubectl_run(
        "annotate",
        "job",
        pending_cleanup_name(release),
        "-n",
        queue_ns,
        "--overwrite",
        f"{ANN_PENDING_JOB}={json.dumps(recorded)}",
    )
    result = svc.sweep(release)
    assert result.clean, result
    assert result.cleanup_completed is True
