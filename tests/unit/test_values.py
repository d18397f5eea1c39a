"""values: queue files by name or path, jinja2 templates of job fields, schema checks, secrets apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.job import parse_job
from orchestrator.values import PASSWORD_KEY, ValuesError, load_queue, render_values
from tests.conftest import ROOT

EXAMPLE = json.loads((ROOT / "tests" / "unit" / "data" / "harvester-example-pandaJobData.json").read_text())
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
    assert "secrets" not in values["job"]["definition"]
    assert values["job"]["definition"]["PandaID"] == 1759473585
    assert not rendered.secret
    assert rendered.secret_name is None


def test_render_interactive_keeps_the_password_out_of_the_values() -> None:
    queue = load_queue("GOOGLE_DASK")
    job = parse_job(interactive_job(), queue_limits=queue.limits)
    rendered = render_values(job, queue, namespace="panda")
    assert rendered.values["secrets"] == {
        "existingSecret": "dask-1759473585-secret",
        "create": False,
        "jupyterPassword": "",
    }
    assert rendered.secret_name == "dask-1759473585-secret"
    assert rendered.secret.reveal() == {PASSWORD_KEY: PASSWORD}
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
