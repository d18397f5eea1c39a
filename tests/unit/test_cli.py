"""The CLI as an adapter: exit statuses, JSON keys, secrets redacted, over fake helm and kube."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

import orchestrator
from orchestrator import cli
from orchestrator.errors import InputError
from orchestrator.helm import HelmError, HelmReleaseInfo, HelmRenderError
from orchestrator.kube import KubeUnavailable
from orchestrator.service import SessionService, Settings
from tests.conftest import ROOT
from tests.doubles import FakeHelm, FakeKube, session_pods

JOB = ROOT / "tests" / "data" / "harvester-example-pandaJobData.json"
PASSWORD = "sEcReT-9f3a-pass"
BOUND_CLAIM = {"metadata": {"name": "filestore-dask"}, "status": {"phase": "Bound"}}
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
        return SessionService(cli.CTX.settings, helm=helm, kube=kube, sleep=lambda _: None)

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
    assert "cannot reach the Kubernetes API server" in err and len(err.strip().splitlines()) == 1


def test_delete_reports_clean(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    helm, _ = fakes
    helm.releases[("ns", "dask-5")] = HelmReleaseInfo("dask-5", "ns", 1, "deployed", None)
    code, out, err = run(capsys, "delete", "dask-5")
    assert code == 0, err
    assert "nothing left" in out and "namespace ns" in out
    assert ("ns", "dask-5") not in helm.releases


def test_delete_of_an_unknown_release_is_not_found(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "delete", "dask-5")
    assert code == 1
    assert 'release "dask-5" not found in namespace ns' in err
    code, _out, err = run(capsys, "delete", "dask-5", "--ignore-not-found")
    assert code == 0, err


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
    assert "warning: clock" not in err  # (the NetworkPolicy probe cannot tell on the fakes: its own warning)


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
        "Service",
        {"metadata": {"name": "dask-3-x", "labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"}},
    )
    helm.fail_release["dask-3"] = HelmError("helm status ns/dask-3: boom")
    code, _out, err = run(capsys, "gc")
    assert code == 1
    assert "cannot collect dask-3" in err
    assert kube.find("ns", "Service", "dask-3-x") is not None  # unconfirmed: left alone


# -- kubectl and helm habits --------------------------------------------------------------------


def test_global_options_are_accepted_after_the_command() -> None:
    assert cli.hoist_global_options(["status", "-n", "x", "-o", "json", "--timeout=5", "-v"]) == [
        "-n",
        "x",
        "--timeout=5",
        "-v",
        "status",
        "-o",
        "json",
    ]
    assert cli.hoist_global_options(["status", "-nx", "--", "-n"]) == ["-nx", "status", "--", "-n"]
    # per-command options stay where they are
    assert cli.hoist_global_options(["render", "job.json", "-f", "a.yaml", "--queue", "Q"]) == [
        "--queue",
        "Q",
        "render",
        "job.json",
        "-f",
        "a.yaml",
    ]


def _pods(kube: FakeKube, namespace: str, *releases: str) -> None:
    for release in releases:
        for p in session_pods(release):
            kube.put(namespace, "Pod", p)


def test_namespace_after_the_command(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    _pods(kube, "other", "dask-7")
    code = cli.main(["status", "--namespace", "other", "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [d["release"] for d in json.loads(out)] == ["dask-7"]


def _kubeconfig(tmp_path: Path, namespace: str | None) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": context}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("flag", "env", "context", "expected"),
    [
        ("flagns", "envns", "ctxns", "flagns"),
        (None, "envns", "ctxns", "envns"),
        (None, None, "ctxns", "ctxns"),
        (None, None, None, "default"),
    ],
)
def test_namespace_precedence(
    fakes: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str | None,
    env: str | None,
    context: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("DPS_NAMESPACE", raising=False)
    if env:
        monkeypatch.setenv("DPS_NAMESPACE", env)
    args = ["--kubeconfig", str(_kubeconfig(tmp_path, context)), "status"]
    if flag:
        args += ["-n", flag]
    code = cli.main(args)
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert cli.CTX.settings.namespace == expected
    assert f"No sessions in namespace {expected}." in err


def test_help_shows_env_vars_defaults_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-h"]) == 0
    top = " ".join(capsys.readouterr().out.split())  # the terminal's width folds lines anywhere
    for needle in (
        "DPS_NAMESPACE",
        "DPS_QUEUE",
        "DPS_HELM",
        "DPS_CHART",
        "DPS_VALUES_DIR",
        "KUBECONFIG",
        "default: GOOGLE_DASK",
        "Examples:",
    ):
        assert needle in top, needle
    for command in ("render", "submit", "status", "delete", "gc", "enforce", "doctor", "version"):
        assert cli.main([command, "-h"]) == 0
        text = capsys.readouterr().out
        assert "Examples:" in text and f"dask-panda-session {command}" in text, command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dask-panda-session {orchestrator.__version__}"


def test_status_of_an_unknown_session_is_not_found(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    _pods(kube, "ns", "dask-1")
    code, out, err = run(capsys, "status", "dask-9", "dask-1")
    assert code == 1
    assert 'session "dask-9" not found in namespace ns' in err
    assert "dask-1" in out and "cancelled" not in out
    code, out, err = run(capsys, "status", "12345")  # a PandaID no session has
    assert code == 1 and "not found" in err


def test_status_by_pandaid(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    _pods(kube, "ns", "dask-1", "dask-2")
    code, out, err = run(capsys, "status", "2", "-o", "json")
    assert code == 0, err
    assert [d["release"] for d in json.loads(out)] == ["dask-2"]


def test_status_of_an_installed_session_without_pods_is_starting(
    fakes: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    helm, _ = fakes
    helm.releases[("ns", "dask-4")] = HelmReleaseInfo("dask-4", "ns", 1, "deployed", None)
    code, out, err = run(capsys, "status", "dask-4", "-o", "json")
    assert code == 0, err
    assert json.loads(out)[0]["phase"] == "starting"


def test_tables_are_narrow_and_never_fold(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, kube = fakes
    _pods(kube, "ns", "dask-1759473585")
    code, out, _ = run(capsys, "status")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "PANDAID", "MODE", "PHASE", "REASON", "WORKERS", "AGE"]
    assert row.split()[:6] == ["dask-1759473585", "1759473585", "batch", "running", "<none>", "2/2"]
    code, out, _ = run(capsys, "status", "-o", "wide")
    header, row = out.splitlines()
    assert header.split()[7:] == ["SCHEDULER", "DASHBOARD", "JUPYTERLAB", "MESSAGE"]
    assert "tcp://dask-1759473585-scheduler.ns.svc.cluster.local:8786" in row.split()


@pytest.mark.parametrize(
    "command", [["status"], ["delete", "dask-1", "--ignore-not-found"], ["gc"], ["enforce"], ["doctor"]]
)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_command_speaks_json_and_yaml(
    fakes: Any, capsys: pytest.CaptureFixture[str], command: list[str], fmt: str
) -> None:
    _, kube = fakes
    kube.server_now = datetime.now(UTC)
    kube.put("ns", "PersistentVolumeClaim", BOUND_CLAIM)
    code, out, err = run(capsys, *command, "-o", fmt)
    assert code == 0, err
    doc = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    assert isinstance(doc, list | dict)
    if isinstance(doc, dict):
        assert doc["namespace"] == "ns"


def test_nothing_messages_name_the_namespace(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "nothing to collect in namespace ns" in run(capsys, "gc")[1]
    assert "no session in namespace ns is past a deadline" in run(capsys, "enforce")[1]


def test_password_file_goes_to_the_secret_only(
    fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, kube = fakes
    data = json.loads(JOB.read_text())
    next(iter(data.values()))["daskMode"] = "interactive"
    job = tmp_path / "job.json"
    job.write_text(json.dumps(data))
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    code, out, err = run(capsys, "submit", str(job), "--password-file", str(pw), "-o", "json")
    assert code == 0, err
    assert PASSWORD not in out + err
    assert any(PASSWORD in v for w in kube.secrets_written for v in w.values())
    # without a password the interactive job is refused, naming the field
    code, _out, err = run(capsys, "render", str(job))
    assert code == 2 and "password" in err


def test_password_stdin(
    fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(JOB.read_text())
    next(iter(data.values()))["daskMode"] = "interactive"
    job = tmp_path / "job.json"
    job.write_text(json.dumps(data))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run(capsys, "render", str(job), "--password-stdin")
    assert code == 0, err
    assert "<redacted>" in out and PASSWORD not in out + err
    code, _out, err = run(capsys, "render", "-", "--password-stdin")
    assert code == 2 and "stdin" in err


def test_with_password_keeps_other_secrets() -> None:
    data = {"1": {"PandaID": 1, "secrets": json.dumps({"dask": '{"workers": 3}'})}}
    doc = cli.with_password(data, "pw-123456789")
    assert doc["1"]["secrets"] == {"dask": '{"workers": 3}', "password": "pw-123456789"}
    assert data["1"]["secrets"] == json.dumps({"dask": '{"workers": 3}'})  # the input is untouched


def test_parse_sets_is_typed_like_helm() -> None:
    assert cli.parse_sets(["workers.replicas=4", "a.b=true", "a.c=x,y", "job.name="]) == {
        "workers": {"replicas": 4},
        "a": {"b": True, "c": "x,y"},
        "job": {"name": ""},
    }
    with pytest.raises(InputError, match="KEY=VALUE"):
        cli.parse_sets(["workers.replicas"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        cli.parse_sets(["a..b=1"])


def test_set_reaches_the_values(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", str(JOB), "--set", "workers.replicas=3", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["values"]["workers"]["replicas"] == 3


def test_a_set_worker_count_that_loses_to_the_job_is_noted(
    fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(JOB.read_text())
    next(iter(data.values()))["secrets"] = {"dask": json.dumps({"workers": 2})}
    job = tmp_path / "job.json"
    job.write_text(json.dumps(data))
    code, out, err = run(capsys, "render", str(job), "--set", "workers.replicas=3", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["values"]["workers"]["replicas"] == 2
    assert "workers.replicas 3 from --set is not used" in " ".join(err.split())


def test_render_runs_the_charts_checks_for_every_output(
    fakes: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    helm, _ = fakes
    code, _out, err = run(capsys, "render", str(JOB), "-o", "values")
    assert code == 0, err
    assert helm.count("template") == 1
    helm.template = _raise_render_error
    code, _out, err = run(capsys, "render", str(JOB), "-o", "values")
    assert code == 2 and "workers.replicas" in err


def _raise_render_error(*_: Any, **__: Any) -> Any:
    raise HelmRenderError("execution error: workers.replicas must not exceed queue.maxWorkers")


def test_queue_is_shown_and_a_mismatch_warned(
    fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, "render", str(JOB))
    assert code == 0, err
    assert "queue GOOGLE_DASK" in err and "warning" not in err
    other = tmp_path / "other.yaml"
    other.write_text("queue:\n  name: OTHER_QUEUE\n")
    code, _out, err = run(capsys, "render", str(JOB), "-f", str(other))
    assert code == 0, err
    assert "warning" in err and "OTHER_QUEUE" in err


def test_missing_job_file_is_one_line_exit_2(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "submit", "no-such-job.json")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no-such-job.json" in err


def test_missing_kubeconfig_is_exit_2(fakes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--kubeconfig", "/nonexistent/kubeconfig", "status"])
    assert code == 2
    assert "kubeconfig /nonexistent/kubeconfig: no such file" in capsys.readouterr().err


def test_the_checkouts_pinned_helm_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helm = tmp_path / ".tools" / "bin" / "helm"
    helm.parent.mkdir(parents=True)
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr("sys.prefix", str(tmp_path / ".venv"))
    monkeypatch.setattr("sys.executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert cli.find_helm() == str(helm)
    helm.unlink()
    assert cli.find_helm() == "helm"  # nothing better: the error will say so


def test_one_line_for_an_unreachable_server() -> None:
    raw = (
        "GET /api/v1/namespaces/ns/pods: cluster unreachable: MaxRetryError: HTTPSConnectionPool("
        "host='10.0.0.1', port=6443): Max retries exceeded with url: /api/v1/namespaces/ns/pods "
        "(Caused by NewConnectionError(\"HTTPSConnection(host='10.0.0.1', port=6443): Failed to "
        'establish a new connection: [Errno 111] Connection refused"))'
    )
    line = cli.one_line(KubeUnavailable(raw))
    assert line.startswith("cannot reach the Kubernetes API server at 10.0.0.1:6443 (Connection refused)")
    assert "MaxRetryError" not in line


def test_progress_shows_the_steps_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=200))
    with cli.progress("deleting ns/dask-1"):
        logging.getLogger("orchestrator.helm").debug("running helm uninstall dask-1 --wait")
    assert "deleting ns/dask-1: running helm uninstall dask-1 --wait" in screen.getvalue()
    assert logging.getLogger("orchestrator").level == logging.NOTSET  # restored


def test_no_spinner_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with cli.progress("deleting ns/dask-1"):
        logging.getLogger("orchestrator.helm").debug("running helm uninstall dask-1 --wait")
    assert capsys.readouterr().err == ""
