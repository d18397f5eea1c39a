"""The pinned PanDA pilot runs the chart's jobs against the stub PanDA server.

Four jobs at once (the pilot mostly waits; together they fit the tier's budget): a batch payload
that computes with the session's dask and exits 0, one that exits 3, one that PanDA kills with a
``tobekilled`` reply, and an interactive session whose first update must carry the session's
addresses in ``jobMetrics`` (it is then ended: the pinned pilot would report it ``failed`` about
four minutes later, see docs/harvester.md). Assertions are on the stub's records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.harvester.base import ErrorCodes, error_code
from orchestrator.session import Phase, Reason, derive_session
from tests.pilot.conftest import NAMESPACE, PilotCase
from tests.pilot.stub_apiserver import EXTERNAL_IP, StubApiServer
from tests.pilot.stub_panda import StubPanda
from tests.smoke.kubelet import PodRun

pytestmark = pytest.mark.pilot


def summary(stub: StubPanda, case: PilotCase) -> str:
    """What the stub saw of one job (for assertion messages), plus the pilot's log tail."""
    keys = (
        "state",
        "transExitCode",
        "pilotErrorCode",
        "pilotErrorDiag",
        "jobMetrics",
        "batchID",
        "schedulerID",
    )
    updates = [{k: u.get(k) for k in keys if k in u} for u in stub.updates(case.panda_id)]
    tails = case.kubelet.log_tails(25) if case.kubelet is not None else ""
    return f"{case.name}: error={case.error!r} updates={json.dumps(updates)}\n{tails[-4000:]}"


def pilot_exit_code(case: PilotCase) -> int | None:
    assert case.kubelet is not None
    run = case.kubelet.pods[case.name_of("pilot")]
    return None if run.main is None else run.main.returncode


def as_pod(run: PodRun) -> dict[str, Any]:
    """A kubelet run as the API would list it: labels and the main container's state."""
    main = run.main
    now = datetime.now(UTC).isoformat()
    if main is None or main.returncode is None:
        state: dict[str, Any] = {"running": {"startedAt": now}}
        phase = "Running" if main is not None else "Pending"
    else:
        reason = "Completed" if main.returncode == 0 else "Error"
        state = {"terminated": {"exitCode": main.returncode, "reason": reason, "finishedAt": now}}
        phase = "Succeeded" if main.returncode == 0 else "Failed"
    container = run.manifest["spec"]["containers"][0]["name"]
    return {
        "metadata": run.manifest["metadata"],
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if phase == "Running" else "False",
                    "lastTransitionTime": now,
                }
            ],
            "containerStatuses": [{"name": container, "ready": phase == "Running", "state": state}],
        },
    }


def test_the_pilot_is_refused_without_its_confinement() -> None:
    from tests.pilot.harness import UnconfinedPilotError, confinement_prefix

    with pytest.raises(UnconfinedPilotError, match="PILOT_NOKILL=1"):
        confinement_prefix({"PILOT_NOKILL": "0"})
    with pytest.raises(UnconfinedPilotError, match="PILOT_NOKILL=1"):
        confinement_prefix({})
    prefix = confinement_prefix({"PILOT_NOKILL": "1"})
    assert prefix[1:] == [
        "--wait",
        prefix[2],
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
    ]


def test_batch_payload_finishes_once_with_the_pods_scheduler_address(
    cases: dict[str, PilotCase], stub: StubPanda
) -> None:
    case = cases["finished"]
    assert not case.error, summary(stub, case)
    assert stub.states(case.panda_id) == ["starting", "running", "finished"], summary(stub, case)
    final = stub.updates(case.panda_id)[-1]
    assert final["transExitCode"] == "0" and final["pilotErrorCode"] == "0", summary(stub, case)
    runs = stub.payload_runs(case.panda_id)
    assert len(runs) == 1, f"the payload ran {len(runs)} times"
    address = f"tls://{case.release}-scheduler.{NAMESPACE}.svc.cluster.local:"
    assert str(runs[0]["DASK_SCHEDULER_ADDRESS"]).startswith(address)
    assert runs[0]["DASK_SCHEDULER_IP"] == runs[0]["DASK_SCHEDULER_ADDRESS"]
    assert runs[0]["result"] == sum(range(1000)) and runs[0]["workers"] == 1
    assert pilot_exit_code(case) == 0


def test_payload_exit_code_3_fails_the_job_in_panda_the_orchestrator_and_harvester(
    cases: dict[str, PilotCase], stub: StubPanda
) -> None:
    case = cases["exit3"]
    assert not case.error, summary(stub, case)
    states = stub.states(case.panda_id)
    assert states[-1] == "failed", summary(stub, case)
    # The pinned pilot marks the job failed as soon as the payload ends and its job monitor may send
    # the final update before the payload's exit code is read: transExitCode is then "0".
    assert stub.updates(case.panda_id)[-1]["transExitCode"] in ("3", "0"), summary(stub, case)
    assert len(stub.payload_runs(case.panda_id)) == 1
    # the pilot container (the chart's pilot-wrapper.sh) exits with the payload's exit code
    assert pilot_exit_code(case) == 3, summary(stub, case)
    # what the orchestrator makes of the pilot pod, and what Harvester then gets
    assert case.kubelet is not None
    pods = [as_pod(run) for run in case.kubelet.pods.values() if not run.name.endswith("-prepare")]
    state = derive_session(case.release, NAMESPACE, pods, now=datetime.now(UTC))
    assert state.phase == Phase.FAILED, (state, pilot_exit_code(case))
    assert state.reason == Reason.PILOT_EXIT_CODE
    assert state.pilot_exit_code == pilot_exit_code(case) != 0
    error = error_code(state)
    assert error is not None and error[0] == ErrorCodes.PILOT_EXIT_CODE
    assert error[1].startswith("pilot exit code 3")


def test_tobekilled_ends_the_payload(cases: dict[str, PilotCase], stub: StubPanda) -> None:
    case = cases["killed"]
    assert not case.error, summary(stub, case)
    states = stub.states(case.panda_id)
    assert "running" in states, summary(stub, case)
    assert len(stub.payload_runs(case.panda_id)) == 1
    # the payload would sleep 600 s: the pilot ended it because PanDA said so
    final = stub.updates(case.panda_id)[-1]
    assert final["state"] == "failed" and final["pilotErrorCode"] == "1144", summary(stub, case)
    assert pilot_exit_code(case) is not None, "the pilot did not end after tobekilled"
    assert pilot_exit_code(case) != 0, "a killed job is a failed job: the pilot container must fail"


def test_interactive_update_carries_the_session_addresses(
    cases: dict[str, PilotCase], stub: StubPanda, api_server: StubApiServer
) -> None:
    """GOOGLE_DASK's JupyterLab is a LoadBalancer whose address the cloud assigns: the pilot's
    address gate read it (from the stub API server, with the gate's own token) and wrote it into
    the definition, so the real pilot reports the external URL as sessionIP."""
    case = cases["interactive"]
    assert not case.error, summary(stub, case)
    first = next((u for u in stub.updates(case.panda_id) if "jobMetrics" in u), None)
    assert first is not None, summary(stub, case)
    metrics = str(first["jobMetrics"])
    scheduler = f"tls://{case.release}-scheduler.{NAMESPACE}.svc.cluster.local:"
    assert f"schedulerIP={scheduler}" in metrics, metrics
    assert f"sessionIP=http://{EXTERNAL_IP}/" in metrics, metrics  # GOOGLE_DASK's Service port is 80
    assert (f"/api/v1/namespaces/{NAMESPACE}/services/{case.release}-jupyterlab", 200) in api_server.requests
    assert first["state"] in ("starting", "running"), summary(stub, case)


def test_no_secret_reaches_panda(cases: dict[str, PilotCase], stub: StubPanda) -> None:
    received = stub.everything_received()
    password = cases["interactive"].password
    assert password and password.encode() not in received
    assert b"PRIVATE KEY" not in received
