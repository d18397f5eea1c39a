"""values: queue files by name or path, jinja2 templates of job fields, schema checks, secrets apart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import InputError
from orchestrator.job import MAX_DEFINITION_BYTES, parse_job
from orchestrator.tls import CA_KEY, CERT_KEY, KEY_KEY, TLS_KEYS
from orchestrator.values import (
    DEFINITION_KEY,
    PASSWORD_KEY,
    ValuesError,
    job_directory,
    load_queue,
    render_values,
    session_addresses,
)
from tests.chart.jobs import job_with_input_files
from tests.conftest import ROOT

EXAMPLE = json.loads((ROOT / "tests" / "data" / "harvester-example-pandaJobData.json").read_text())
PASSWORD = "Tr0ub4dor&3-horse"


def write(tmp_path: Path, name: str, values: Any) -> Path:
    path = tmp_path / name
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values))
    return path


def interactive_job(**extra: Any) -> dict[str, Any]:
    params = dict(next(iter(EXAMPLE.values())))
    params.update(
        {
            "daskMode": "interactive",
            "secrets": {"jl": json.dumps({"username": "u", "password": PASSWORD})},
            **extra,
        }
    )
    return params


def test_queue_by_name_gives_limits_from_the_file() -> None:
    queue = load_queue("GOOGLE_DASK")
    assert queue.name == "GOOGLE_DASK"
    assert (queue.limits.min_workers, queue.limits.max_workers, queue.limits.default_workers) == (1, 10, 3)
    assert queue.files[0].name == "GOOGLE_DASK.yaml"


def test_unknown_queue_names_the_known_ones() -> None:
    with pytest.raises(ValuesError, match=r"NO_SUCH_QUEUE.*known: .*GOOGLE_DASK"):
        load_queue("NO_SUCH_QUEUE")


def test_queue_by_path_and_extra_files_merge(tmp_path: Path) -> None:
    extra = write(tmp_path, "more.yaml", {"workers": {"replicas": 5}, "queue": {"maxWorkers": 6}})
    queue = load_queue(str(ROOT / "values" / "example.yaml"), [extra])
    assert queue.limits.default_workers == 5
    assert queue.limits.max_workers == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("workers: [unclosed", "not valid YAML"),
        ("- a list\n- at the top\n", "must hold a mapping"),
        ({"queue": {"maxWorkers": "ten"}}, "queue.maxWorkers: must be an integer"),
    ],
)
def test_bad_values_files_are_named(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path, "bad.yaml", content)
    with pytest.raises(ValuesError, match=message) as err:
        load_queue("GOOGLE_DASK", [path])
    assert "bad.yaml" in str(err.value) or "queue.maxWorkers" in str(err.value)


def test_render_batch_values() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(EXAMPLE, queue_limits=queue.limits, harvester_worker_id=77)
    rendered = render_values(job, queue, namespace="panda")
    values = rendered.values
    assert rendered.release == "dask-1759473585"
    assert values["job"]["pandaId"] == "1759473585"
    assert values["job"]["harvesterWorkerId"] == "77"
    assert values["job"]["mode"] == "batch"
    assert values["workers"]["replicas"] == 3
    assert values["job"]["attempt"] == 0
    # the definition is never a value: the Secret holds it, the values its checksum and the name
    assert "definition" not in values["job"]
    data = rendered.secret.reveal()
    assert set(data) == {DEFINITION_KEY, *TLS_KEYS}
    definition = data[DEFINITION_KEY].encode()
    assert values["job"]["definitionSha256"] == hashlib.sha256(definition).hexdigest()
    assert json.loads(definition) == {"1759473585": next(iter(EXAMPLE.values()))}
    # batch mode: no session addresses in the definition (the pilot would run the payload twice)
    assert "scheduler_ip" not in json.loads(definition)["1759473585"]
    assert rendered.secret_name == values["secrets"]["existingSecret"] == "dask-1759473585-secret"


def test_render_interactive_keeps_the_password_out_of_the_values() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(interactive_job(), queue_limits=queue.limits)
    rendered = render_values(job, queue, namespace="panda")
    assert rendered.values["secrets"] == {"existingSecret": "dask-1759473585-secret"}
    assert rendered.secret_name == "dask-1759473585-secret"
    data = rendered.secret.reveal()
    assert set(data) == {PASSWORD_KEY, DEFINITION_KEY, *TLS_KEYS}
    assert data[PASSWORD_KEY] == PASSWORD
    assert PASSWORD not in data[DEFINITION_KEY]
    assert rendered.secret.values_to_scrub() == [PASSWORD, data[KEY_KEY]]
    # the session's TLS material: only in the Secret, the key never in the values or a repr
    assert "PRIVATE KEY" in data[KEY_KEY] and "BEGIN CERTIFICATE" in data[CERT_KEY]
    assert rendered.values["job"]["mode"] == "interactive"
    for pem in (data[KEY_KEY], data[CERT_KEY], data[CA_KEY]):
        assert pem not in json.dumps(rendered.values)
    assert data[KEY_KEY] not in repr(rendered) + str(rendered.secret)
    assert PASSWORD not in json.dumps(rendered.values)
    assert PASSWORD not in repr(rendered) + str(rendered.secret)


def test_templates_of_job_fields(tmp_path: Path) -> None:
    extra = write(
        tmp_path,
        "t.yaml",
        {"commonPodLabels": {"panda-task": "t{{ job.pandaid % 1000 }}", "owner": "{{ queue }}"}},
    )
    queue = load_queue("GOOGLE_DASK", [extra])
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    values = render_values(job, queue, namespace="panda").values
    assert values["commonPodLabels"] == {"panda-task": "t585", "owner": "GOOGLE_DASK"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ job.no_such_field }}", "commonPodLabels.x: template"),
        ("{{ undefined_name }}", "undefined"),
        ("{{ ''.__class__.__mro__ }}", "commonPodLabels.x: template"),
    ],
)
def test_bad_templates_fail_with_the_field(tmp_path: Path, template: str, message: str) -> None:
    extra = write(tmp_path, "t.yaml", {"commonPodLabels": {"x": template}})
    queue = load_queue("GOOGLE_DASK", [extra])
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    with pytest.raises(ValuesError, match=message):
        render_values(job, queue, namespace="panda")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"scheduler": {"port": 0}}, "scheduler.port"),
        ({"workers": {"dashboardPort": "x"}}, "workers.dashboardPort"),
        ({"jupyterlab": {"service": {"type": "NodePort"}}}, "jupyterlab.service.type"),
        ({"sharedVolume": {"jobsDirectory": "../x"}}, "sharedVolume.jobsDirectory"),
        ({"surprise": 1}, "surprise"),
        ({"images": {"dask": {"digest": "md5:1"}}}, "images.dask.digest"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, override: dict[str, Any], field: str) -> None:
    queue = load_queue("GOOGLE_DASK", [write(tmp_path, "o.yaml", override)])
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    with pytest.raises(ValuesError) as err:
        render_values(job, queue, namespace="panda")
    assert field in str(err.value)


def test_bad_namespace() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    with pytest.raises(ValuesError, match="namespace"):
        render_values(job, queue, namespace="Not_A_Namespace")


# ---------------------------------------------------------------------------------------------
# the job definition in the Secret


def definition_of(rendered: Any) -> dict[str, Any]:
    return json.loads(rendered.secret.reveal()[DEFINITION_KEY])  # type: ignore[no-any-return]


def test_interactive_definition_carries_the_addresses_the_chart_uses() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(interactive_job(), queue_limits=queue.limits)
    rendered = render_values(job, queue, namespace="panda")
    params = definition_of(rendered)["1759473585"]
    assert params["scheduler_ip"] == "tls://dask-1759473585-scheduler.panda.svc.cluster.local:8786"
    assert params["session_ip"] == "http://dask-1759473585-jupyterlab.panda.svc.cluster.local:80/"
    assert "secrets" not in params


@pytest.mark.parametrize(
    ("jupyterlab", "url"),
    [
        ({"ingress": {"enabled": True, "host": "j.example.org", "path": "/s/", "tlsSecretName": "t"}},
         "https://j.example.org/s/"),
        ({"ingress": {"enabled": True, "host": "j.example.org", "path": "/", "tlsSecretName": ""}},
         "http://j.example.org/"),
        ({"ingress": {"enabled": False}, "service": {"type": "LoadBalancer", "loadBalancerIP": "10.1.2.3", "port": 8080}},
         "http://10.1.2.3:8080/"),
        ({"ingress": {"enabled": False}, "service": {"type": "ClusterIP", "port": 81}},
         "http://r-jupyterlab.ns.svc.example.local:81/"),
    ],
)  # fmt: skip
def test_session_addresses(jupyterlab: dict[str, Any], url: str) -> None:
    values = {"clusterDomain": "example.local", "scheduler": {"port": 9999}, "jupyterlab": jupyterlab}
    assert session_addresses(values, "r", "ns") == {
        "scheduler_ip": "tcp://r-scheduler.ns.svc.example.local:9999",
        "session_ip": url,
    }


def test_big_ints_and_non_bmp_characters_are_exact_in_the_secret() -> None:
    queue = load_queue("GOOGLE_DASK")
    big = 2**53 + 1
    huge = 12345678901234567890123456789
    job = parse_job(
        {
            **next(iter(EXAMPLE.values())),
            "jobName": "user.\U0001f600.\U00020bb7 é",
            "nEvents": big,
            "x": [huge],
        },
        queue_limits=queue.limits,
    )
    text = render_values(job, queue, namespace="panda").secret.reveal()[DEFINITION_KEY]
    assert f'"nEvents":{big}' in text
    assert f"[{huge}]" in text
    assert "user.\U0001f600.\U00020bb7 é" in text  # the characters themselves, no escapes
    assert "\\u" not in text
    assert json.loads(text)["1759473585"]["nEvents"] == big


def test_a_job_with_1000_input_files_fits_and_stays_out_of_the_values() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(job_with_input_files(1000), queue_limits=queue.limits)
    rendered = render_values(job, queue, namespace="panda")
    definition = rendered.secret.reveal()[DEFINITION_KEY]
    assert len(definition.encode()) > 128 * 1024  # more than exec's limit for one env string
    assert len(definition.encode()) <= MAX_DEFINITION_BYTES
    assert len(json.dumps(rendered.values)) < 16 * 1024
    assert "EVNT.153937._000999.pool.root.1" not in json.dumps(rendered.values)


def test_job_directory_is_one_per_release() -> None:
    assert job_directory(1759473585, 0) == "1759473585-0"
    assert job_directory(1759473585, 2) != job_directory(1759473585, 3)


# ---------------------------------------------------------------------------------------------
# admin templates meeting odd job fields


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("{{ job.core_count + 1 }}", "job.core_count=None"),
        ("{{ job.max_walltime // 60 }}", "job.max_walltime=None"),
        ("{{ '%05d' % job.taskid }}", "job.taskid=None"),
        ("{{ job.pandaid ** job.pandaid ** 9 }}", "job.pandaid=1759473585"),
        ("{{ job.user.split('/')[9] }}", "job.user="),
        ("{{ 10 / (job.attempt) }}", "job.attempt=0"),
        ("{{ job['core_count'] * 2.0 }}", "job.core_count=None"),
    ],
)
def test_templates_meeting_null_fields_name_the_key_and_the_field(
    tmp_path: Path, template: str, field: str
) -> None:
    extra = write(tmp_path, "t.yaml", {"commonPodAnnotations": {"site/cost": template}})
    queue = load_queue("GOOGLE_DASK", [extra])
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    with pytest.raises(InputError) as err:
        render_values(job, queue, namespace="panda")
    message = str(err.value)
    assert "commonPodAnnotations.site/cost" in message
    assert field in message


def test_tls_disabled_leaves_the_secret_without_certificates_and_the_address_tcp() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(interactive_job(), queue_limits=queue.limits)
    rendered = render_values(job, queue, namespace="panda", overrides={"tls": {"enabled": False}})
    assert not set(TLS_KEYS) & set(rendered.secret.keys())
    params = definition_of(rendered)["1759473585"]
    assert params["scheduler_ip"].startswith("tcp://")


def test_each_job_gets_its_own_certificate_authority() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(EXAMPLE, queue_limits=queue.limits)
    first = render_values(job, queue, namespace="panda").secret.reveal()
    second = render_values(job, queue, namespace="panda").secret.reveal()
    assert first[CA_KEY] != second[CA_KEY]
    assert first[KEY_KEY] != second[KEY_KEY]
