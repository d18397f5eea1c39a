"""A session ends by itself: the idle timeout from the values, or the loss of its scheduler.

Why: an abandoned session must not hold its nodes until the lifetime deadline. The chart turns
`timeouts.schedulerIdleSeconds` into the scheduler's `--idle-timeout`; the scheduler exits 0 and
its workers follow with exit 0, so under restartPolicy OnFailure no pod of the session is restarted.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.smoke.conftest import SMOKE_VENV, job_release, make_kubelet, new_panda_id, new_ports, render

# Long enough for a worker to start its nanny and finish the TLS handshake on a loaded 2-core
# machine before the idle scheduler ends (a worker that never registered waits for its death timeout).
IDLE_SECONDS = 20
DEATH_SECONDS = 10  # the schema's minimum for timeouts.workerDeathSeconds


@pytest.mark.parametrize("helm", ["helm", "helm3"], ids=["helm4", "helm3"])
def test_an_idle_session_ends_after_the_values_idle_timeout(
    tmp_path_factory: pytest.TempPathFactory, helm: str
) -> None:
    """Rendered by Helm 4 and by Helm 3: both renderings must run."""
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    ports = new_ports()
    job = job_release(tmp_path_factory, panda_id, "batch", ports)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "batch", "workers.replicas": "1", "timeouts.schedulerIdleSeconds": str(IDLE_SECONDS)},
        helm=helm,
        values_files=[job.values_file],
    )
    kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents, {job.secret_name: job.secret})
    try:
        scheduler = kubelet.start(f"{release}-scheduler")
        worker = kubelet.start(f"{release}-worker-0")
        kubelet.wait_for(lambda: scheduler.phase in {"Succeeded", "Failed"}, 90, "the idle scheduler to exit")
        main = scheduler.main
        assert main is not None
        assert main.ended is not None
        lived = main.ended - main.started
        log = main.log.read_text()
        assert scheduler.phase == "Succeeded", f"exit code {main.returncode}\n{log[-3000:]}"
        assert lived >= IDLE_SECONDS, f"the scheduler exited after {lived:.1f}s, before its idle timeout"
        assert lived < IDLE_SECONDS + 60
        assert "idle-timeout-exceeded" in log, log[-3000:]
        kubelet.wait_for(lambda: worker.phase in {"Succeeded", "Failed"}, 60, "the worker to follow")
        assert worker.phase == "Succeeded", (
            worker.main.log.read_text()[-3000:] if worker.main else worker.error
        )
    finally:
        kubelet.shutdown()


def test_workers_end_cleanly_when_their_scheduler_is_lost(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A killed scheduler (eviction, OOM) ends its workers with exit 0 within the death timeout.

    Worth knowing for the restart policies: the workers are not restarted (exit 0), so a restarted
    scheduler would come back without workers.
    """
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    ports = new_ports()
    job = job_release(tmp_path_factory, panda_id, "batch", ports)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "batch", "workers.replicas": "1", "timeouts.workerDeathSeconds": str(DEATH_SECONDS)},
        values_files=[job.values_file],
    )
    kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents, {job.secret_name: job.secret})
    try:
        scheduler = kubelet.start(f"{release}-scheduler")
        worker = kubelet.start(f"{release}-worker-0")
        kubelet.wait_for(lambda: worker.phase == "Running", 90, "the worker")
        kubelet.wait_for(
            lambda: (
                "Starting established connection" in worker.main.log.read_text() if worker.main else False
            ),
            60,
            "the worker to register",
        )
        assert scheduler.main is not None
        killed = time.monotonic()
        os.killpg(scheduler.main.process.pid, signal.SIGKILL)
        kubelet.wait_for(
            lambda: worker.phase in {"Succeeded", "Failed"}, DEATH_SECONDS + 60, "the worker to end"
        )
        assert worker.main is not None
        assert worker.main.ended is not None
        assert worker.phase == "Succeeded", worker.main.log.read_text()[-3000:]
        assert worker.main.ended - killed < DEATH_SECONDS + 30
    finally:
        kubelet.shutdown()
