"""The CLI as an adapter: exit statuses, JSON keys, secrets redacted, over fake helm and kube."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import cli
from orchestrator.helm import HelmError, HelmReleaseInfo
from orchestrator.service import SessionService, Settings
from tests.conftest import ROOT
from tests.unit.fakes import FakeHelm, FakeKube, session_pods

JOB = ROOT / "tests" / "unit" / "data" / "harvester-example-pandaJobData.json"
PASSWORD = "sEcReT-9f3a-pass"
STATE_KEYS = {
    "release",
    "namespace",
    "pandaid",
    "mode",
    "phase",
    "reason",
    "workers_ready",
    "workers_wanted",
    "scheduler_address",
    "dashboard_url",
    "jupyter_url",
    "timings",
}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeHelm, FakeKube]:
    helm, kube = FakeHelm(), FakeKube()

    def service() -> SessionService:
        return SessionService(cli.CTX.settings, helm=helm, kube=kube, sleep=lambda _: None)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "service", service)
    cli.CTX.settings = Settings()
    return helm, kube


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--namespace", "ns", *args])
    out, err = capsys.readouterr()
    return code, out, err


def interactive_job(tmp_path: Path) -> str:
    data = json.loads(JOB.read_text())
    params = next(iter(data.values()))
    params["daskMode"] = "interactive"
    params["secrets"] = {"jl": json.dumps({"username": "u", "password": PASSWORD})}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_render_redacts_the_secret(fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", interactive_job(tmp_path))
    assert code == 0, err
    assert "<redacted>" in out
    assert PASSWORD not in out + err
    assert "existingSecret: dask-1759473585-secret" in out


@pytest.mark.parametrize(
    ("content", "needle"),
    [('{"PandaID": "x"}', "PandaID"), ("[1, 2]", "job"), ("{oops", "JSON")],
)
def test_bad_job_is_exit_2(
    fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    helm, kube = fakes
    code, _out, err = run(capsys, "submit", str(path))
    assert code == 2
    assert needle in err
    assert helm.calls == [] and kube.requests == 0


def test_submit_json_has_the_contract_keys(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "submit", str(JOB), "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= STATE_KEYS
    assert doc["release"] == "dask-1759473585"
    assert doc["created"] is True


def test_status_json_lists_every_session(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    for release in ("dask-1", "dask-2"):
        for p in session_pods(release):
            kube.put("ns", "Pod", p)
    code, out, err = run(capsys, "status", "-o", "json")
    assert code == 0, err
    docs = json.loads(out)
    assert [d["release"] for d in docs] == ["dask-1", "dask-2"]
    assert all(set(d) >= STATE_KEYS for d in docs)
    assert kube.requests == 1


def test_unreachable_cluster_is_exit_1(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    kube.unavailable = True
    code, _out, err = run(capsys, "status")
    assert code == 1
    assert "unreachable" in err


def test_delete_reports_clean(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "delete", "dask-5")
    assert code == 0, err
    assert "nothing left" in out


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", "--no-such-option"]) == 2


def test_doctor_warns_about_clock_skew(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    kube.server_now = datetime.now(UTC) - timedelta(minutes=5)  # the host is 5 min ahead
    _code, out, err = run(capsys, "doctor")
    assert "clock" in out and "warn" in out
    assert "ahead of the API server" in " ".join(err.split())


def test_doctor_clock_in_sync_is_fine(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    kube.server_now = datetime.now(UTC)
    _code, out, err = run(capsys, "doctor")
    assert "clock" in out
    assert "warning" not in err


def test_enforce_failures_are_shown_and_exit_1(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    helm, kube = fakes
    kube.server_now = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    for release in ("dask-1", "dask-2"):
        for p in session_pods(release, created="2026-11-26T10:00:00Z"):
            kube.put("ns", "Pod", p)
        helm.releases[("ns", release)] = HelmReleaseInfo(release, "ns", 1, "deployed", None)
    helm.fail_release["dask-2"] = HelmError("helm status ns/dask-2: boom")
    code, out, err = run(capsys, "enforce")
    assert code == 1
    assert "ended dask-1: DeadlineExceeded" in out
    assert "cannot end dask-2" in err and "boom" in err


def test_gc_failures_are_shown_and_exit_1(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    helm, kube = fakes
    labels = {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": "dask-3"}
    kube.put(
        "ns",
        "ConfigMap",
        {"metadata": {"name": "dask-3-x", "labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"}},
    )
    helm.fail_release["dask-3"] = HelmError("helm status ns/dask-3: boom")
    code, _out, err = run(capsys, "gc")
    assert code == 1
    assert "cannot collect dask-3" in err
    assert kube.find("ns", "ConfigMap", "dask-3-x") is not None  # unconfirmed: left alone
