"""The scheduler's idle timeout, from the values (timeouts.schedulerIdleSeconds), ends a session.

Why: an abandoned session must not hold its nodes until the lifetime deadline; the chart turns
the queue's idle timeout into the scheduler's own `--idle-timeout`, and the scheduler pod ends
(restartPolicy OnFailure: a clean exit is not restarted).
"""

from __future__ import annotations

import time

import pytest

from tests.smoke.conftest import SMOKE_VENV, make_kubelet, new_panda_id, new_ports, render

IDLE_SECONDS = 5


@pytest.mark.parametrize("helm", ["helm", "helm3"], ids=["helm4", "helm3"])
def test_an_idle_scheduler_ends_after_the_values_idle_timeout(
    tmp_path_factory: pytest.TempPathFactory, helm: str
) -> None:
    """Rendered by Helm 4 and by Helm 3: both renderings must run."""
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    documents = render(
        release,
        panda_id,
        new_ports(),
        {"job.mode": "batch", "timeouts.schedulerIdleSeconds": str(IDLE_SECONDS)},
        helm=helm,
    )
    kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents)
    try:
        started = time.monotonic()
        run = kubelet.start(f"{release}-scheduler")
        kubelet.wait_for(lambda: run.phase in {"Succeeded", "Failed"}, 90, "the idle scheduler to exit")
        main = run.main
        assert main is not None
        assert main.ended is not None
        lived = main.ended - main.started
        assert run.phase == "Succeeded", f"exit code {main.returncode}\n{main.log.read_text()[-3000:]}"
        assert lived >= IDLE_SECONDS, f"the scheduler exited after {lived:.1f}s, before its idle timeout"
        assert lived < IDLE_SECONDS + 60
        log = main.log.read_text()
        assert "idle-timeout-exceeded" in log, log[-3000:]
        assert time.monotonic() - started < 90
    finally:
        kubelet.shutdown()
