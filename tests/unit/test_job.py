"""Unit tests of orchestrator.job: real, odd and hostile PanDA jobs."""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.job import (
    MAX_DEFINITION_BYTES,
    MAX_JOB_FILE_BYTES,
    MAX_NESTING,
    JobError,
    Mode,
    PandaJob,
    QueueLimits,
    SecretStr,
    definition_bytes,
    load_job_file,
    parse_job,
    parse_release_name,
    release_name,
)
from tests.chart.jobs import job_with_input_files
from tests.doubles import example_params

DATA = Path(__file__).parents[1] / "data"
EXAMPLE = DATA / "harvester-example-pandaJobData.json"
PANDAID = 1759473585
PASSWORD = "S3cr3t-Pa55w0rd-xyzzy"
LIMITS = QueueLimits(min_workers=1, max_workers=10, default_workers=3, default_mode=Mode.BATCH)


def example_job() -> dict[str, Any]:
    """The bare job dict of the shared example (a fresh copy per test)."""
    return example_params()


def job(**fields: Any) -> dict[str, Any]:
    """The example job with fields replaced (None removes a field)."""
    return example_params(**fields)


def interactive(**fields: Any) -> dict[str, Any]:
    return job(daskMode="interactive", secrets={"password": PASSWORD}, **fields)


def error_of(data: Any, **kwargs: Any) -> JobError:
    with pytest.raises(JobError) as info:
        parse_job(data, **kwargs)
    return info.value


def everything_printed(parsed: PandaJob) -> str:
    return (
        repr(parsed) + str(parsed) + repr(parsed.password) + str(parsed.user_secrets) + f"{parsed.password}"
    )


# ---------------------------------------------------------------------------------------------
# shapes and the shared example


def test_example_file_parses() -> None:
    parsed = parse_job(load_job_file(str(EXAMPLE)), queue_limits=LIMITS)
    assert parsed.pandaid == PANDAID
    assert parsed.mode is Mode.BATCH
    assert parsed.mode_source == "queue default"
    assert (parsed.workers, parsed.workers_source) == (3, "queue default")
    assert parsed.attempt == 0
    assert parsed.taskid is None  # "NULL"
    assert parsed.core_count is None  # "NULL"
    assert parsed.max_walltime is None  # "NULL"
    assert parsed.min_ram_count == 0
    assert parsed.user == "/DC=org/DC=example/OU=Users/CN=exampleuser/CN=proxy"
    assert parsed.transformation == "AtlasG4_trf.py"
    assert parsed.password is None
    assert parsed.user_secrets is None
    assert parsed.adjustments == ()
    assert parsed.release == "dask-1759473585"
    assert parsed.job_data() == json.loads(EXAMPLE.read_text())


@pytest.mark.parametrize("shape", ["wrapped", "bare", "jobspec"])
def test_three_shapes_give_the_same_job(shape: str) -> None:
    params = example_job()
    data: Any = {
        "wrapped": {str(PANDAID): params},
        "bare": params,
        "jobspec": SimpleNamespace(PandaID=PANDAID, jobParams=params, taskID=None, attemptNr=0),
    }[shape]
    assert parse_job(data, queue_limits=LIMITS) == parse_job(example_job(), queue_limits=LIMITS)


def test_jobspec_attributes_fill_null_fields() -> None:
    spec = SimpleNamespace(
        PandaID=PANDAID, jobParams=job(taskID="NULL", attemptNr=None), taskID=42, attemptNr=2
    )
    parsed = parse_job(spec)
    assert (parsed.taskid, parsed.attempt, parsed.release) == (42, 2, "dask-1759473585-a2")


def test_wrapped_without_inner_pandaid_takes_the_key() -> None:
    params = job(PandaID=None)
    parsed = parse_job({"123": params})
    assert parsed.pandaid == 123
    assert parsed.definition["PandaID"] == 123
    assert "PandaID" not in params  # the caller's dict is untouched


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({}, "PandaID", "missing"),
        ({"jobName": "x", "transformation": "y"}, "PandaID", "missing"),
        ({"1": {"PandaID": 1}, "2": {"PandaID": 2}}, "PandaID", "exactly one job, got 2"),
        ({"123": {"PandaID": 124}}, "PandaID", "differs"),
        ({"abc": {"jobName": "x"}}, "PandaID", "must be a positive integer, got 'abc'"),
        ({"PandaID": "12a"}, "PandaID", "must be a positive integer, got '12a'"),
        ({"PandaID": 0}, "PandaID", "must be a positive integer, got 0"),
        ({"PandaID": -5}, "PandaID", "must be a positive integer"),
        ({"PandaID": 10**16}, "PandaID", "at most"),
        ({"PandaID": True}, "PandaID", "boolean"),
        ({"PandaID": 1.5}, "PandaID", "got 1.5"),
        ({"PandaID": "NULL"}, "PandaID", "positive integer"),
        ({"PandaID": "\u0663"}, "PandaID", "positive integer"),  # a non-ASCII digit
        ([1, 2], "", "expected a job mapping"),
        ("1759473585", "", "expected a job mapping"),
        (SimpleNamespace(PandaID=None, jobParams={}), "PandaID", "missing"),
        (SimpleNamespace(PandaID=5, jobParams={"PandaID": 6}), "PandaID", "differs"),
        (SimpleNamespace(PandaID=5, jobParams="{}"), "jobParams", "must be a mapping"),
    ],
)
def test_bad_identity_is_rejected(data: Any, field: str, fragment: str) -> None:
    err = error_of(data)
    assert err.field == field
    assert fragment in err.reason
    assert "\n" not in str(err)


def test_error_message_format() -> None:
    err = error_of({"PandaID": "12a"})
    assert str(err) == "job field 'PandaID': must be a positive integer, got '12a'"
    assert isinstance(err, ValueError)
    assert isinstance(err, InputError)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"taskID": "x1"}, "taskID"),
        ({"taskID": 0}, "taskID"),
        ({"attemptNr": "-1"}, "attemptNr"),
        ({"attemptNr": 5000}, "attemptNr"),
        ({"coreCount": "many"}, "coreCount"),
        ({"coreCount": -1}, "coreCount"),
        ({"minRamCount": 1.5}, "minRamCount"),
        ({"transformation": ["a"]}, "transformation"),
        ({"transformation": "x" * 5000}, "transformation"),
    ],
)
def test_bad_optional_fields_name_the_field(fields: dict[str, Any], field: str) -> None:
    assert error_of(job(**fields)).field == field


def test_bad_harvester_worker_id() -> None:
    assert error_of(job(), harvester_worker_id=0).field == "workerID"
    assert parse_job(job(), harvester_worker_id=77).harvester_worker_id == 77


@pytest.mark.parametrize("null", ["NULL", "", None])
def test_nulls_and_strings_are_normalised(null: Any) -> None:
    params = job(taskID="4", attemptNr="1", coreCount=null, maxWalltime=" 3600 ", container_name=null)
    parsed = parse_job(params)
    assert parsed.taskid == 4
    assert parsed.attempt == 1
    assert parsed.core_count is None
    assert parsed.max_walltime == 3600
    assert parsed.container_name is None


# ---------------------------------------------------------------------------------------------
# the job definition


def test_definition_is_a_copy_without_secrets_and_caller_is_untouched() -> None:
    params = interactive(scheduler_ip="tcp://evil:8786", extra={"nested": [1, 2]})
    before = copy.deepcopy(params)
    parsed = parse_job(params)
    assert params == before
    assert "secrets" not in parsed.definition
    assert "scheduler_ip" not in parsed.definition
    assert any("scheduler_ip" in note for note in parsed.adjustments)
    params["extra"]["nested"].append(3)
    assert parsed.definition["extra"] == {"nested": [1, 2]}
    with pytest.raises(TypeError):
        parsed.definition["jobName"] = "changed"  # type: ignore[index]
    data = parsed.job_data()
    data[str(PANDAID)]["jobName"] = "mine"
    assert parsed.definition["jobName"] != "mine"
    assert PASSWORD not in json.dumps(data)


def test_definition_must_be_json() -> None:
    assert error_of(job(weird=object())).field == "jobParams.weird"
    assert error_of(job(weird=float("nan"))).field == "jobParams.weird"


def test_job_survives_pickle_and_deepcopy() -> None:
    parsed = parse_job(interactive(extra={"nested": [1]}))
    for clone in (pickle.loads(pickle.dumps(parsed)), copy.deepcopy(parsed), copy.copy(parsed)):  # noqa: S301
        assert clone == parsed
        assert clone.password is not None
        assert clone.password.get() == PASSWORD
        assert isinstance(clone.definition, MappingProxyType)
    err = error_of({"PandaID": "12a"})
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert (again.field, again.reason, str(again)) == (err.field, err.reason, str(err))


def test_directly_built_job_gets_a_frozen_copy_of_its_definition() -> None:
    definition: dict[str, Any] = {"PandaID": 5, "jobPars": ["a"]}
    built = PandaJob(
        pandaid=5, mode=Mode.BATCH, workers=1, mode_source="x", workers_source="y", definition=definition
    )
    definition["jobPars"].append("b")
    assert built.definition["jobPars"] == ["a"]
    assert isinstance(built.definition, MappingProxyType)


def test_job_is_immutable_and_hashable() -> None:
    parsed = parse_job(interactive())
    with pytest.raises(AttributeError):
        parsed.workers = 5  # type: ignore[misc]
    assert hash(parsed) == hash(parse_job(interactive()))


# ---------------------------------------------------------------------------------------------
# hostile strings


HOSTILE = [
    "$(rm -rf /)",
    "`reboot`",
    "{{ .Values.secret }}",
    "a: b\nc: d",
    "--- !!python/object/apply:os.system ['id']",
    "'; DROP TABLE jobs; --",
    "x" * 300,
    "\u00e9t\u00e9 \u2603",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("field", ["jobPars", "jobName", "realDatasetsIn", "homepackage"])
def test_free_text_fields_are_kept_as_data(field: str, text: str) -> None:
    parsed = parse_job(job(**{field: text}))
    assert parsed.definition[field] == text
    assert parsed.job_data()[str(PANDAID)][field] == text


@pytest.mark.parametrize(
    "text", ["$(rm -rf /)", "{{ x }}", "img\nname", "a: b", "x" * 300, "\u00e9t\u00e9", "img name"]
)
def test_container_name_is_a_name(text: str) -> None:
    err = error_of(job(container_name=text))
    assert err.field == "container_name"
    assert "\n" not in str(err)
    assert len(str(err)) < 250


@pytest.mark.parametrize(
    "name", ["pilot-ml", "docker://atlas/athena:22.0.6", "registry.example/x/y@sha256:abc"]
)
def test_container_name_accepts_image_references(name: str) -> None:
    assert parse_job(job(container_name=name)).container_name == name


@pytest.mark.parametrize(
    ("text", "ok"), [("x" * 300, False), ("a\nb", False), ("J\u00f6rg M\u00fcller", True)]
)
def test_user_is_bounded(text: str, ok: bool) -> None:
    if ok:
        assert parse_job(job(prodUserName=text)).user == text
    else:
        assert error_of(job(prodUserName=text)).field == "prodUserName"


def test_prod_user_name_preferred_over_dn() -> None:
    assert parse_job(job(prodUserName="exampleuser")).user == "exampleuser"


# ---------------------------------------------------------------------------------------------
# mode and workers: every precedence level


@pytest.mark.parametrize(
    ("fields", "mode", "source"),
    [
        # 1. explicit job field beats everything below
        (
            {
                "daskMode": "batch",
                "secrets": {"dask": {"mode": "interactive"}},
                "realDatasets": "user.interactive",
            },
            Mode.BATCH,
            "daskMode",
        ),
        ({"daskMode": "Interactive ", "secrets": {"password": PASSWORD}}, Mode.INTERACTIVE, "daskMode"),
        ({"daskMode": "non-interactive"}, Mode.BATCH, "daskMode"),
        ({"daskMode": "NULL", "realDatasets": "x.interactive"}, Mode.INTERACTIVE, "realDatasets"),
        # 2. the dask secrets entry, as a dict, a JSON string, or inside a JSON-string secrets field
        (
            {
                "secrets": {"dask": {"mode": "interactive"}, "password": PASSWORD},
                "realDatasets": "x.non_interactive",
            },
            Mode.INTERACTIVE,
            "secrets.dask.mode",
        ),
        (
            {"secrets": {"dask": '{"mode": "batch"}'}, "realDatasets": "x.interactive"},
            Mode.BATCH,
            "secrets.dask.mode",
        ),
        (
            {"secrets": json.dumps({"dask": json.dumps({"mode": "interactive"}), "password": PASSWORD})},
            Mode.INTERACTIVE,
            "secrets.dask.mode",
        ),
        (
            {"secrets": {"dask": {"workers": 2}, "password": PASSWORD}, "realDatasets": "x.interactive"},
            Mode.INTERACTIVE,
            "realDatasets",
        ),
        # 3. legacy realDatasets convention
        ({"realDatasets": "user.someone.interactive.v1"}, Mode.INTERACTIVE, "realDatasets"),
        ({"realDatasets": "user.someone.non_interactive.v1"}, Mode.BATCH, "realDatasets"),
        ({"realDatasets": "user.someone.non-interactive.v1"}, Mode.BATCH, "realDatasets"),
        # 4. the queue default
        ({"realDatasets": "panda.destDB.x"}, Mode.BATCH, "queue default"),
    ],
)
def test_mode_precedence(fields: dict[str, Any], mode: Mode, source: str) -> None:
    params = job(**fields)
    if mode is Mode.INTERACTIVE and "secrets" not in fields:
        params["secrets"] = {"password": PASSWORD}
    parsed = parse_job(params, queue_limits=LIMITS)
    assert (parsed.mode, parsed.mode_source) == (mode, source)


def test_queue_default_mode_interactive() -> None:
    limits = QueueLimits(default_mode=Mode.INTERACTIVE)
    parsed = parse_job(job(secrets={"password": PASSWORD}), queue_limits=limits)
    assert (parsed.mode, parsed.mode_source) == (Mode.INTERACTIVE, "queue default")
    assert QueueLimits(default_mode="interactive").default_mode is Mode.INTERACTIVE  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"daskMode": "turbo"}, "daskMode"),
        ({"daskMode": 1}, "daskMode"),
        ({"secrets": {"dask": {"mode": "interactiv"}}}, "secrets.dask.mode"),
        ({"secrets": {"dask": "not json"}}, "secrets.dask"),
        ({"secrets": {"dask": [1, 2]}}, "secrets.dask"),
        ({"secrets": {"dask": {"mode": "batch", "worker": 3}}}, "secrets.dask"),
    ],
)
def test_unknown_mode_names_its_field(fields: dict[str, Any], field: str) -> None:
    assert error_of(job(**fields)).field == field


@pytest.mark.parametrize(
    ("fields", "workers", "source"),
    [
        ({"daskWorkers": 4, "secrets": {"dask": {"workers": 7}}}, 4, "daskWorkers"),
        ({"daskWorkers": "5"}, 5, "daskWorkers"),
        ({"daskWorkers": "NULL", "secrets": {"dask": {"workers": 7}}}, 7, "secrets.dask.workers"),
        ({"secrets": {"dask": '{"workers": "6"}'}}, 6, "secrets.dask.workers"),
        ({"secrets": {"dask": {"mode": "batch"}}}, 3, "queue default"),
        ({}, 3, "queue default"),
    ],
)
def test_worker_precedence(fields: dict[str, Any], workers: int, source: str) -> None:
    parsed = parse_job(job(**fields), queue_limits=LIMITS)
    assert (parsed.workers, parsed.workers_source, parsed.adjustments) == (workers, source, ())


@pytest.mark.parametrize(
    ("value", "workers", "note"),
    [
        (500, 10, "workers 500 clamped to the queue maximum 10"),
        (10**9, 10, "workers 1000000000 clamped to the queue maximum 10"),
        (10**100, 10, "clamped to the queue maximum 10"),
        ("-3", 1, "workers -3 raised to the queue minimum 1"),
        (0, 1, "workers 0 raised to the queue minimum 1"),
        (10, 10, None),
        (1, 1, None),
    ],
)
def test_worker_clamp_is_reported(value: Any, workers: int, note: str | None) -> None:
    parsed = parse_job(job(daskWorkers=value), queue_limits=LIMITS)
    assert parsed.workers == workers
    if note is None:
        assert parsed.adjustments == ()
    else:
        assert len(parsed.adjustments) == 1
        assert note in parsed.adjustments[0]


def test_zero_workers_allowed_when_queue_minimum_is_zero() -> None:
    limits = QueueLimits(min_workers=0, max_workers=4, default_workers=0)
    parsed = parse_job(job(daskWorkers=0), queue_limits=limits)
    assert (parsed.workers, parsed.adjustments) == (0, ())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"daskWorkers": True}, "daskWorkers"),
        ({"daskWorkers": 2.5}, "daskWorkers"),
        ({"daskWorkers": 4.0}, "daskWorkers"),
        ({"daskWorkers": "four"}, "daskWorkers"),
        ({"daskWorkers": "9" * 40}, "daskWorkers"),
        ({"daskWorkers": [4]}, "daskWorkers"),
        ({"secrets": {"dask": {"workers": False}}}, "secrets.dask.workers"),
        ({"secrets": {"dask": {"workers": "3.5"}}}, "secrets.dask.workers"),
    ],
)
def test_absurd_worker_values_are_errors(fields: dict[str, Any], field: str) -> None:
    assert error_of(job(**fields), queue_limits=LIMITS).field == field


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_workers": 5, "default_workers": 2},
        {"max_workers": 10**6},
        {"min_workers": -1},
        {"default_workers": True},
        {"default_mode": "turbo"},
    ],
)
def test_queue_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        QueueLimits(**kwargs)


# ---------------------------------------------------------------------------------------------
# secrets and the password


@pytest.mark.parametrize(
    ("secrets", "field_expected"),
    [
        ({"password": PASSWORD}, "secrets.password"),
        ({"password": json.dumps({"username": "u", "password": PASSWORD})}, "secrets.password"),
        (
            {"jupyter": PASSWORD, "other": json.dumps({"username": "u", "password": "not-this-one"})},
            "secrets.jupyter",
        ),
        ({"jupyter": {"password": PASSWORD}}, "secrets.jupyter"),
        ({"mysecret": json.dumps({"username": "u", "password": PASSWORD})}, "secrets.mysecret"),
        (
            {
                "dask": {"mode": "interactive"},
                "first": json.dumps({"username": "u", "password": PASSWORD}),
                "second": json.dumps({"username": "v", "password": "second-password"}),
            },
            "secrets.first",
        ),
        ({"token": "just-a-token", "login": {"username": "u", "password": PASSWORD}}, "secrets.login"),
    ],
)
@pytest.mark.parametrize("as_string", [False, True], ids=["dict", "json-string"])
def test_password_extraction(secrets: dict[str, Any], field_expected: str, as_string: bool) -> None:
    params = job(daskMode="interactive", secrets=json.dumps(secrets) if as_string else secrets)
    parsed = parse_job(params)
    assert parsed.password is not None
    assert parsed.password.get() == PASSWORD
    assert parsed.user_secrets is not None
    assert json.loads(parsed.user_secrets.get()) == secrets
    assert PASSWORD not in everything_printed(parsed)
    del field_expected  # the source of the password is not part of the API; the value is


def test_interactive_without_password_is_rejected() -> None:
    for secrets in (None, {}, {"token": "abc"}, {"dask": {"mode": "interactive"}}, "NULL"):
        err = error_of(job(daskMode="interactive", secrets=secrets))
        assert err.field == "secrets"
        assert "an interactive job needs a JupyterLab password" in err.reason
        assert "no default password" in err.reason


def test_batch_job_ignores_password() -> None:
    parsed = parse_job(job(secrets={"password": "short"}))
    assert parsed.password is None
    assert parsed.user_secrets is not None


@pytest.mark.parametrize(
    ("secret_value", "field"),
    [
        ("short", "secrets.password"),
        ("p" * 257, "secrets.password"),
        ("line1-long\nline2-long", "secrets.password"),
        ("tab\there-long-enough", "secrets.password"),
        (12345678, "secrets.password"),
    ],
)
def test_bad_password_is_rejected_without_showing_it(secret_value: Any, field: str) -> None:
    err = error_of(job(daskMode="interactive", secrets={"password": secret_value}))
    assert err.field == field
    text = str(err) + repr(err) + err.reason
    assert str(secret_value) not in text


def test_bad_password_inside_json_entry() -> None:
    secret = json.dumps({"username": "u", "password": "tiny"})
    err = error_of(job(daskMode="interactive", secrets={"creds": secret}))
    assert err.field == "secrets.creds.password"
    assert "tiny" not in str(err)


@pytest.mark.parametrize(
    "secrets",
    ['{"password": "' + PASSWORD + '"', "[1, 2]", 42, ["password", PASSWORD]],
)
def test_bad_secrets_field(secrets: Any) -> None:
    err = error_of(job(daskMode="interactive", secrets=secrets))
    assert err.field == "secrets"
    assert PASSWORD not in str(err)
    assert PASSWORD not in repr(err)
    # the JSON decoder's exception (which holds the whole text) is not chained
    assert err.__cause__ is None
    assert err.__context__ is None or PASSWORD not in repr(err.__context__)


def test_secret_values_never_in_errors_about_secrets() -> None:
    hidden = "hidden-mode-value-123"
    err = error_of(job(secrets={"dask": {"mode": hidden}}))
    assert err.field == "secrets.dask.mode"
    assert hidden not in str(err)


def test_password_not_in_repr_when_printed_anywhere() -> None:
    parsed = parse_job(interactive())
    text = everything_printed(parsed) + repr(parsed.__dict__) + f"{parsed!r}{parsed!s}"
    assert PASSWORD not in text
    assert "<redacted>" in repr(parsed)


def test_secret_str() -> None:
    secret = SecretStr(PASSWORD)
    assert repr(secret) == str(secret) == f"{secret}" == "<redacted>"
    assert secret.get() == PASSWORD
    assert secret == SecretStr(PASSWORD)
    assert secret != SecretStr("other-value")
    assert not hasattr(secret, "__dict__")
    with pytest.raises(TypeError):
        SecretStr(123)  # type: ignore[arg-type]


def test_mutating_secrets_after_parse_does_not_change_the_job() -> None:
    secrets = {"password": PASSWORD}
    params = job(daskMode="interactive", secrets=secrets)
    parsed = parse_job(params)
    secrets["password"] = "changed-password"
    assert parsed.password is not None
    assert parsed.password.get() == PASSWORD
    assert params["secrets"] is secrets  # not removed from the caller's dict


# ---------------------------------------------------------------------------------------------
# load_job_file


def test_load_job_file_errors(tmp_path: Path) -> None:
    cases: dict[str, tuple[str | bytes, str]] = {
        "bad.json": ('{"PandaID": 1,', "not valid JSON"),
        "list.json": ("[1, 2]", "must hold a JSON object, got list"),
        "latin1.json": (b"\xff\xfe{}", "not UTF-8"),
        "big.json": ('{"a": "' + "x" * MAX_JOB_FILE_BYTES + '"}', "larger than"),
    }
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(JobError) as info:
            load_job_file(str(path))
        assert info.value.field == ""
        assert fragment in str(info.value)
        assert str(info.value).startswith("job: ")
    with pytest.raises(JobError, match="cannot read"):
        load_job_file(str(tmp_path / "missing.json"))


def test_load_job_file_json_error_does_not_echo_content(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text('{"secrets": {"password": "' + PASSWORD + '"}, oops}')
    with pytest.raises(JobError) as info:
        load_job_file(str(path))
    assert PASSWORD not in str(info.value)
    assert re.search(r"line 1 column \d+", str(info.value))


def test_load_job_file_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = EXAMPLE.read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(payload)))
    assert parse_job(load_job_file("-")).pandaid == PANDAID
    monkeypatch.setattr("sys.stdin", io.StringIO("42"))
    with pytest.raises(JobError, match="standard input must hold a JSON object"):
        load_job_file("-")


# ---------------------------------------------------------------------------------------------
# release names


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((1759473585,), "dask-1759473585"),
        ((1759473585, 2), "dask-1759473585-a2"),
        ((10**15, 999), "dask-1000000000000000-a999"),
        ((7, 0, "sess"), "sess-7"),
        ((10**15, 999, "a" * 18), "a" * 18 + "-1000000000000000-a999"),
    ],
)
def test_release_name(args: tuple[Any, ...], name: str) -> None:
    result = release_name(*args)
    assert result == name
    assert len(result) <= 40
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", result)
    prefix = args[2] if len(args) > 2 else "dask"
    assert parse_release_name(result, prefix) == (args[0], args[1] if len(args) > 1 else 0)


@pytest.mark.parametrize(
    "args",
    [
        (0,),
        (10**16,),
        ("12",),
        (True,),
        (5, -1),
        (5, 1000),
        (5, True),
        (5, 0, "Dask"),
        (5, 0, "1dask"),
        (5, 0, "dask-"),
        (5, 0, "d" * 19),
        (5, 0, "dä"),
        (5, 0, ""),
    ],
)
def test_release_name_rejects(args: tuple[Any, ...]) -> None:
    with pytest.raises(InputError):
        release_name(*args)


@pytest.mark.parametrize(
    "name", ["dask-0", "dask-01", "dask-5-a0", "dask-5-a01", "other-5", "dask-5-x", "dask-"]
)
def test_parse_release_name_rejects_foreign_names(name: str) -> None:
    assert parse_release_name(name) is None


# ---------------------------------------------------------------------------------------------
# bounds: size, nesting, Unicode, exact numbers


def _big_params(size: int) -> dict[str, Any]:
    return job(jobPars="x" * size)


@pytest.mark.parametrize("shape", ["wrapped", "bare", "jobspec"])
def test_definition_size_limit_on_every_input_path(shape: str) -> None:
    params = _big_params(MAX_DEFINITION_BYTES)
    data: Any = {
        "wrapped": {str(PANDAID): params},
        "bare": params,
        "jobspec": SimpleNamespace(PandaID=PANDAID, jobParams=params),
    }[shape]
    err = error_of(data)
    assert err.field == "jobParams"
    assert str(MAX_DEFINITION_BYTES) in str(err)
    size = int(re.search(r"is (\d+) bytes", str(err)).group(1))  # type: ignore[union-attr]
    assert size > MAX_DEFINITION_BYTES


def test_definition_size_limit_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({str(PANDAID): _big_params(MAX_DEFINITION_BYTES)}))
    with pytest.raises(JobError, match=f"above the limit of {MAX_DEFINITION_BYTES} bytes"):
        parse_job(load_job_file(str(path)))


def test_definition_just_under_the_limit_is_accepted() -> None:
    params = job()
    overhead = len(definition_bytes(PANDAID, {**params, "jobPars": ""}))
    parsed = parse_job(job(jobPars="y" * (MAX_DEFINITION_BYTES - overhead)))
    assert len(parsed.job_data_bytes()) == MAX_DEFINITION_BYTES


def test_multibyte_characters_count_as_bytes() -> None:
    # 300k characters of 3 bytes each: under the limit in characters, above it in bytes
    err = error_of(job(jobPars="€" * 300_000))
    assert "bytes" in str(err) and err.field == "jobParams"


def _nested(depth: int) -> Any:
    node: Any = "leaf"
    for _ in range(depth):
        node = {"a": node}
    return node


@pytest.mark.parametrize("depth", [MAX_NESTING, 100, 100_000])
def test_deep_nesting_in_the_definition_is_an_input_error(depth: int) -> None:
    err = error_of(job(extra=_nested(depth)))
    assert err.field.startswith("jobParams.extra")
    assert f"deeper than {MAX_NESTING} levels" in str(err)


def test_nesting_within_the_bound_is_accepted() -> None:
    parsed = parse_job(job(extra=_nested(MAX_NESTING - 2)))
    assert "extra" in parsed.definition


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_in_the_secrets_is_an_input_error(depth: int) -> None:
    as_dict = error_of(job(daskMode="interactive", secrets={"password": PASSWORD, "deep": _nested(depth)}))
    assert as_dict.field.startswith("secrets")
    as_string = error_of(
        job(
            daskMode="interactive",
            secrets=json.dumps({"password": PASSWORD, "deep": _nested(min(depth, 500))}),
        )
    )
    assert as_string.field.startswith("secrets")
    deep_text = "[" * depth + "]" * depth
    inside = error_of(job(daskMode="interactive", secrets={"password": PASSWORD, "dask": deep_text}))
    assert inside.field == "secrets.dask"
    for err in (as_dict, as_string, inside):
        assert "deeper than" in str(err) or "nests" in str(err)
        assert PASSWORD not in str(err)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_in_the_file_is_an_input_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text(
        json.dumps({str(PANDAID): {"PandaID": PANDAID}})[:-2] + ', "x": ' + "[" * depth + "]" * depth + "}}"
    )
    with pytest.raises(JobError, match=r"deeper than|nests"):
        parse_job(load_job_file(str(path)))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"jobName": "bad \ud800 name"}, "jobParams.jobName"),
        ({"extra": {"list": ["ok", "\udfff"]}}, "jobParams.extra.list[1]"),
        ({"bad\ud83d": 1}, "jobParams"),
    ],
)
def test_lone_surrogates_in_the_definition_name_the_field(fields: dict[str, Any], field: str) -> None:
    err = error_of(job(**fields))
    assert err.field == field
    assert "surrogate" in str(err)


def test_lone_surrogates_in_the_secrets_name_the_field_not_the_value() -> None:
    err = error_of(job(daskMode="interactive", secrets={"password": PASSWORD, "other": "x\udc80y"}))
    assert err.field == "secrets.other"
    assert "surrogate" in str(err)
    err = error_of(job(secrets='{"password": "abc\\ud800defghij"}', daskMode="interactive"))
    assert err.field.startswith("secrets")


def test_lone_surrogate_from_a_file_escape(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(f'{{"{PANDAID}": {{"PandaID": {PANDAID}, "jobName": "a\\ud800b"}}}}')
    with pytest.raises(JobError) as err:
        parse_job(load_job_file(str(path)))
    assert err.value.field == "jobParams.jobName"


def test_non_bmp_characters_and_big_numbers_are_exact() -> None:
    big = 2**53 + 1
    parsed = parse_job(job(jobName="user.😀.𠮷", nEvents=big, huge=-(10**30)))
    data = parsed.job_data_bytes()
    assert "user.😀.𠮷".encode() in data
    assert f'"nEvents":{big}'.encode() in data
    assert f'"huge":{-(10**30)}'.encode() in data
    assert json.loads(data)[str(PANDAID)]["nEvents"] == big


def test_huge_integer_literal_in_a_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text(f'{{"{PANDAID}": {{"PandaID": {PANDAID}, "n": {"9" * 5000}}}}}')
    with pytest.raises(JobError):
        load_job_file(str(path))


def test_a_job_with_1000_input_files_is_accepted() -> None:
    parsed = parse_job(job_with_input_files(1000))
    size = len(parsed.job_data_bytes())
    assert 128 * 1024 < size < MAX_DEFINITION_BYTES
    assert parsed.definition["inFiles"].count(",") == 999
