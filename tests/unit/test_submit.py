"""submit under races and retries: the per-job Secret as the lock, over shared fakes.

Racing submitters run in real threads, each with its own SessionService (as separate Harvester
threads or processes would), against one FakeHelm and one FakeKube that behave like helm and the
API server on the points that matter: a second create of the Secret is a 409, a second install
of the release is `HelmReleaseExists`, deletes honour uid preconditions, and ages come from the
server's clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.helm import HelmError, HelmReleaseInfo, HelmTimeout, HelmUnavailable
from orchestrator.kube import KubeUnavailable
from orchestrator.service import SessionService, Settings, SubmitBusy, SubmitResult, is_temporary
from orchestrator.submit_lock import ANN_SUBMIT_ID, ANN_WORKER_ID, STALE_MARGIN_SECONDS
from orchestrator.tls import TLS_KEYS
from orchestrator.values import DEFINITION_KEY
from tests.conftest import ROOT
from tests.doubles import SERVER_NOW, FakeHelm, FakeKube

EXAMPLE = json.loads((ROOT / "tests" / "data" / "harvester-example-pandaJobData.json").read_text())
RELEASE = "dask-1759473585"
SECRET = f"{RELEASE}-secret"
KEY = ("ns", RELEASE)
PASSWORD = "n0t-in-any-log-9x"
INSTALL_TIMEOUT = 300.0
STALE = INSTALL_TIMEOUT + STALE_MARGIN_SECONDS + 1  # seconds: an abandoned lock


def service(
    helm: FakeHelm,
    kube: FakeKube,
    *,
    sleep: Callable[[float], None] = lambda _: None,
    clock: Callable[[], datetime] = lambda: SERVER_NOW,
    **settings: Any,
) -> SessionService:
    return SessionService(
        Settings(namespace="ns", install_timeout=INSTALL_TIMEOUT, **settings),
        helm=helm,
        kube=kube,
        clock=clock,
        sleep=sleep,
    )


def interactive() -> dict[str, Any]:
    params = dict(next(iter(EXAMPLE.values())))
    params["daskMode"] = "interactive"
    params["secrets"] = {"jl": json.dumps({"username": "u", "password": PASSWORD})}
    return params


def deployed(status: str = "deployed", *, worker: str = "") -> tuple[HelmReleaseInfo, dict[str, Any]]:
    info = HelmReleaseInfo(RELEASE, "ns", 1, status, SERVER_NOW - timedelta(hours=1))
    return info, {"job": {"pandaId": "1759473585", "harvesterWorkerId": worker}}


def lock_of(kube: FakeKube) -> dict[str, Any]:
    secret = kube.find("ns", "Secret", SECRET)
    assert secret is not None, "the job's Secret is missing"
    return dict(secret["metadata"])


# -- racing submitters ----------------------------------------------------------------------------


def race(
    n: int, helm: FakeHelm, kube: FakeKube, job: Any = EXAMPLE
) -> tuple[list[SubmitResult], list[Exception]]:
    """n submits of one job at once, in real threads, each with its own service."""
    barrier = threading.Barrier(n)
    results: list[SubmitResult] = []
    errors: list[Exception] = []
    guard = threading.Lock()

    def one() -> None:
        svc = service(helm, kube, sleep=time.sleep, submit_poll_seconds=0.005)
        barrier.wait()
        try:
            result = svc.submit(job)
        except Exception as err:  # collected and asserted below
            with guard:
                errors.append(err)
            return
        with guard:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a submitter never returned"
    return results, errors


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_submits_make_exactly_one_release(n: int) -> None:
    helm, kube = FakeHelm(install_delay=0.05), FakeKube()
    results, errors = race(n, helm, kube, interactive())
    assert errors == []
    assert len(results) == n
    assert helm.count("install") == 1
    assert sum(r.created for r in results) == 1
    assert {(r.namespace, r.release) for r in results} == {KEY}
    assert helm.releases[KEY].status == "deployed"
    # No undo of the winner: no uninstall, and the winner's Secret (the one made) is still there.
    assert helm.count("uninstall") == helm.count("uninstall-no-hooks") == 0
    # one Secret made (keys only: a failure must never print the password)
    assert [sorted(data) for data in kube.secrets_written] == [
        sorted(["jupyter-password", DEFINITION_KEY, *TLS_KEYS])
    ]
    assert ("Secret", SECRET, None) not in kube.deleted
    assert lock_of(kube)["annotations"][ANN_SUBMIT_ID]


def test_losers_whose_install_fails_leave_the_winner_alone() -> None:
    """Two submits, the release made by someone else between the check and the install."""
    helm, kube = FakeHelm(), FakeKube()
    svc = service(helm, kube)

    def someone_else_installs(namespace: str, name: str) -> None:
        helm.on_install = None
        helm.releases[(namespace, name)] = HelmReleaseInfo(name, namespace, 1, "deployed", SERVER_NOW)

    helm.on_install = someone_else_installs
    result = svc.submit(EXAMPLE)
    assert result.created is False  # HelmReleaseExists: adopted, never undone
    assert helm.releases[KEY].status == "deployed"
    assert helm.count("uninstall") == helm.count("uninstall-no-hooks") == 0
    assert kube.find("ns", "Secret", SECRET) is not None


def test_a_failed_install_never_deletes_a_lock_taken_over_meanwhile() -> None:
    """This call's lock was taken over (judged stale) during its install, which then fails:
    its undo must touch neither the new holder's Secret nor the new holder's release."""
    helm, kube = FakeHelm(), FakeKube()
    svc = service(helm, kube)
    winner: dict[str, Any] = {}

    def taken_over_then_fail(namespace: str, name: str) -> None:
        kube.objects[namespace].pop(("Secret", SECRET))
        winner.update(kube.plant_lock(namespace, name, age=0, submit_id="the-winner"))
        helm.releases[(namespace, name)] = HelmReleaseInfo(name, namespace, 1, "deployed", SERVER_NOW)
        raise HelmTimeout("helm install: no answer within 330 s")

    helm.on_install = taken_over_then_fail
    with pytest.raises(HelmTimeout):
        svc.submit(EXAMPLE)
    assert helm.releases[KEY].status == "deployed"
    assert helm.count("uninstall") == helm.count("uninstall-no-hooks") == 0
    assert lock_of(kube)["uid"] == winner["uid"]


def test_a_failed_install_undoes_exactly_what_this_call_made() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.fail_install = HelmError("helm install: pre-install hook failed: BackoffLimitExceeded")
    helm.fail_install_leaves = "failed"
    svc = service(helm, kube)
    with pytest.raises(HelmError):
        svc.submit(interactive())
    assert KEY not in helm.releases
    assert ("uninstall-no-hooks", "ns", RELEASE) in helm.calls
    assert kube.objects.get("ns", {}) == {}
    made = [d for d in kube.deleted if d[0] == "Secret"]
    assert kube.secrets_written and made and all(uid is not None for _, _, uid in made)  # deleted by uid, never by name only


# -- what a submit finds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "lock_age"), [("failed", None), ("failed", STALE), ("uninstalling", None)]
)
def test_a_dead_release_is_swept_and_installed_again(status: str, lock_age: float | None) -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed(status)
    if lock_age is not None:
        old = kube.plant_lock("ns", RELEASE, age=lock_age)
    result = service(helm, kube).submit(EXAMPLE)
    assert result.created is True
    assert helm.count("install") == 1
    assert helm.count("uninstall-no-hooks") == 1  # a dead release's hooks are skipped
    assert helm.releases[KEY].status == "deployed"
    if lock_age is not None:
        assert ("Secret", SECRET, old["uid"]) in kube.deleted  # taken over by uid
    assert lock_of(kube)["annotations"][ANN_SUBMIT_ID] != "someone-else"


def test_a_stale_pending_install_is_swept_and_installed_again() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed("pending-install")
    old = kube.plant_lock("ns", RELEASE, age=STALE)
    result = service(helm, kube).submit(EXAMPLE)
    assert result.created is True
    assert ("Secret", SECRET, old["uid"]) in kube.deleted
    assert helm.count("uninstall-no-hooks") == 1 and helm.count("install") == 1
    assert helm.releases[KEY].status == "deployed"


def test_a_deployed_release_of_the_same_worker_is_adopted() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed(worker="7")
    held = kube.plant_lock("ns", RELEASE, age=3600, worker="7")
    result = service(helm, kube).submit(EXAMPLE, harvester_worker_id=7)
    assert result.created is False
    assert helm.count("install") == 0 and helm.count("uninstall") == 0
    assert lock_of(kube) == held  # untouched


def test_a_deployed_release_of_a_previous_worker_is_replaced() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed(worker="7")
    kube.plant_lock("ns", RELEASE, age=3600, worker="7")
    result = service(helm, kube).submit(EXAMPLE, harvester_worker_id=8)
    assert result.created is True
    assert helm.count("uninstall") == 1 and helm.count("install") == 1
    assert helm.values[KEY]["job"]["harvesterWorkerId"] == "8"
    assert lock_of(kube)["annotations"][ANN_WORKER_ID] == "8"


def test_a_deployed_release_without_a_lock_is_adopted_and_keeps_the_new_lock() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed(worker="7")
    result = service(helm, kube).submit(EXAMPLE, harvester_worker_id=7)
    assert result.created is False
    assert helm.count("install") == 0
    assert lock_of(kube)["annotations"][ANN_WORKER_ID] == "7"


def test_a_stale_lock_without_a_release_is_taken_over() -> None:
    helm, kube = FakeHelm(), FakeKube()
    old = kube.plant_lock("ns", RELEASE, age=STALE)
    result = service(helm, kube).submit(EXAMPLE)
    assert result.created is True
    assert ("Secret", SECRET, old["uid"]) in kube.deleted
    assert lock_of(kube)["uid"] != old["uid"]
    assert helm.count("uninstall") + helm.count("uninstall-no-hooks") == 0


def test_a_young_lock_without_a_release_is_waited_for_then_adopted() -> None:
    helm, kube = FakeHelm(), FakeKube()
    held = kube.plant_lock("ns", RELEASE, age=10)
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the other submitter's install lands after three polls
        naps.append(seconds)
        kube.server_now += timedelta(seconds=seconds)
        if len(naps) == 3:
            helm.releases[KEY] = HelmReleaseInfo(RELEASE, "ns", 1, "deployed", SERVER_NOW)

    result = service(helm, kube, sleep=nap).submit(EXAMPLE)
    assert result.created is False
    assert len(naps) == 3
    assert helm.count("install") == 0
    assert lock_of(kube) == held


def test_a_young_pending_install_is_waited_for_then_adopted() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed("pending-install")
    kube.plant_lock("ns", RELEASE, age=30)

    def nap(_seconds: float) -> None:
        helm.releases[KEY] = HelmReleaseInfo(RELEASE, "ns", 1, "deployed", SERVER_NOW)

    result = service(helm, kube, sleep=nap).submit(EXAMPLE)
    assert result.created is False
    assert helm.count("install") == 0 and helm.count("uninstall-no-hooks") == 0


def test_a_lock_released_by_its_holder_is_taken_and_the_job_installed() -> None:
    """A young lock over a failed release: its holder is undoing; then this call installs."""
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed("failed")
    kube.plant_lock("ns", RELEASE, age=5)

    def holder_undoes(_seconds: float) -> None:
        helm.releases.pop(KEY, None)
        kube.objects["ns"].pop(("Secret", SECRET), None)

    result = service(helm, kube, sleep=holder_undoes).submit(EXAMPLE)
    assert result.created is True
    assert helm.count("install") == 1 and helm.count("uninstall-no-hooks") == 0


def test_another_submitter_at_work_too_long_is_a_temporary_error_and_nothing_is_touched() -> None:
    helm, kube = FakeHelm(), FakeKube()
    held = kube.plant_lock("ns", RELEASE, age=10)
    naps: list[float] = []
    with pytest.raises(SubmitBusy) as err:
        service(helm, kube, sleep=naps.append).submit(EXAMPLE)
    assert is_temporary(err.value)
    assert sum(naps) >= INSTALL_TIMEOUT  # bounded by the install timeout, polled
    assert lock_of(kube) == held
    assert helm.count("install") == 0


@pytest.mark.parametrize("host_offset", [timedelta(hours=1), timedelta(hours=-1)])
def test_lock_ages_are_measured_on_the_server_clock(host_offset: timedelta) -> None:
    """A young lock stays young whatever the host clock says, and an old one stays old."""
    helm, kube = FakeHelm(), FakeKube()
    held = kube.plant_lock("ns", RELEASE, age=10)
    skewed = service(helm, kube, clock=lambda: SERVER_NOW + host_offset)
    with pytest.raises(SubmitBusy):
        skewed.submit(EXAMPLE)
    assert lock_of(kube) == held
    kube.server_now += timedelta(seconds=STALE)
    assert skewed.submit(EXAMPLE).created is True


def test_an_unreachable_api_server_is_temporary_and_nothing_is_installed() -> None:
    helm, kube = FakeHelm(), FakeKube()
    kube.unavailable = True
    with pytest.raises(KubeUnavailable) as err:
        service(helm, kube).submit(EXAMPLE)
    assert is_temporary(err.value)
    assert helm.calls == []


def test_the_secret_never_reaches_a_log_or_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    helm, kube = FakeHelm(), FakeKube()
    helm.releases[KEY], helm.values[KEY] = deployed("failed")
    kube.plant_lock("ns", RELEASE, age=STALE)
    helm.fail_install = HelmError("helm install: pre-install hook failed")
    with pytest.raises(HelmError) as err:
        service(helm, kube).submit(interactive())
    assert PASSWORD not in caplog.text
    assert PASSWORD not in str(err.value)
    assert "taking the job's lock over" in caplog.text  # the path was logged, without the value


def test_the_lock_records_the_call_and_the_worker() -> None:
    helm, kube = FakeHelm(), FakeKube()
    service(helm, kube).submit(EXAMPLE, harvester_worker_id=42)
    meta = lock_of(kube)
    assert meta["annotations"][ANN_WORKER_ID] == "42"
    assert len(meta["annotations"][ANN_SUBMIT_ID]) == 32  # a uuid4, fresh per call
    assert meta["creationTimestamp"] == SERVER_NOW.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_failure_before_the_install_releases_this_calls_lock() -> None:
    helm, kube = FakeHelm(), FakeKube()
    helm.fail_release[RELEASE] = HelmUnavailable("helm status ns/dask-1759473585: cluster unreachable")
    with pytest.raises(HelmUnavailable) as err:
        service(helm, kube).submit(EXAMPLE)
    assert is_temporary(err.value)
    assert kube.find("ns", "Secret", SECRET) is None  # a retry need not wait for a stale lock
    assert helm.count("install") == 0
