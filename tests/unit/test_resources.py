"""Where the chart, the queue values and the Role are found, and the options that name others.

The wheel itself is built and installed by the chart tier (tests/chart/test_packaging.py); these
tests keep pyproject.toml's package list and data mapping in step with the tree and check the
look-up order without building anything.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from orchestrator import cli, resources
from orchestrator.harvester import queue_params
from orchestrator.service import SessionService, Settings
from orchestrator.values import ValuesError
from tests.conftest import CHART, ROOT, VALUES_DIR
from tests.doubles import FakeHelm, FakeKube

pytestmark = pytest.mark.unit

JOB = ROOT / "tests" / "data" / "harvester-example-pandaJobData.json"
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_the_wheel_lists_every_python_package_of_the_tree() -> None:
    """package-dir rules out packages.find: a new subpackage must be named in pyproject.toml."""
    packages = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "orchestrator").rglob("__init__.py")
    }
    listed = {p for p in SETUPTOOLS["packages"] if not p.startswith("orchestrator._data.")}
    assert listed == packages


def test_the_wheel_maps_the_chart_values_and_role_in() -> None:
    mapping = SETUPTOOLS["package-dir"]
    assert (ROOT / mapping["orchestrator._data.charts"] / resources.CHART_NAME) == CHART
    assert (ROOT / mapping["orchestrator._data.values"]) == VALUES_DIR
    role = ROOT / mapping["orchestrator._data.deploy"] / "orchestrator-rbac.yaml"
    assert role.is_file()
    assert SETUPTOOLS["package-data"]["orchestrator._data.deploy"] == [role.name]
    # Data directories hold no Python package of their own (they are not code).
    for target in mapping.values():
        assert not (ROOT / target / "__init__.py").exists()


def test_a_checkout_uses_the_repositorys_own_files() -> None:
    assert resources.chart_dir() == CHART
    assert resources.values_dir() == VALUES_DIR
    assert resources.role_file() == ROOT / "deploy" / "orchestrator-rbac.yaml"


def test_an_installed_package_uses_its_packaged_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "orchestrator"
    (package / "_data" / "charts" / resources.CHART_NAME).mkdir(parents=True)
    (package / "_data" / "values").mkdir()
    monkeypatch.setattr(resources, "files", lambda _name: package)
    assert resources.chart_dir() == package / "_data" / "charts" / resources.CHART_NAME
    assert resources.values_dir() == package / "_data" / "values"
    # What the package does not carry still comes from the checkout.
    assert resources.role_file() == ROOT / "deploy" / "orchestrator-rbac.yaml"


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    """A site's own values directory (queue SITE_QUEUE) and a copy of the chart with a new default."""
    values = tmp_path / "values"
    values.mkdir()
    queue = yaml.safe_load((VALUES_DIR / "GOOGLE_DASK.yaml").read_text(encoding="utf-8"))
    queue.setdefault("queue", {})["name"] = "SITE_QUEUE"
    (values / "SITE_QUEUE.yaml").write_text(yaml.safe_dump(queue), encoding="utf-8")
    chart = tmp_path / "chart"
    chart.mkdir()
    for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
        (chart / name).write_bytes((CHART / name).read_bytes())
    return values, chart


def test_settings_name_the_values_dir_and_the_chart(site: tuple[Path, Path]) -> None:
    values, chart = site
    service = SessionService(Settings(values_dir=values, chart=chart), helm=FakeHelm(), kube=FakeKube())
    config = service.queue("SITE_QUEUE")
    assert config.name == "SITE_QUEUE"
    assert config.files == (values / "SITE_QUEUE.yaml",)
    assert config.chart == chart.resolve()
    with pytest.raises(ValuesError, match=r"no values file GOOGLE_DASK\.yaml under .*known: SITE_QUEUE"):
        service.queue("GOOGLE_DASK")


def test_the_values_are_checked_against_the_named_charts_schema(site: tuple[Path, Path]) -> None:
    """A site's chart with a stricter schema refuses what the packaged chart would take."""
    values, chart = site
    schema = yaml.safe_load((chart / "values.schema.json").read_text(encoding="utf-8"))
    schema["properties"]["queue"]["properties"]["name"]["enum"] = ["ONLY_THIS"]
    (chart / "values.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    service = SessionService(Settings(values_dir=values, chart=chart), helm=FakeHelm(), kube=FakeKube())
    with pytest.raises(ValuesError, match=r"queue\.name"):
        service.render(yaml.safe_load(JOB.read_text(encoding="utf-8")), queue="SITE_QUEUE")
    SessionService(Settings(values_dir=values), helm=FakeHelm(), kube=FakeKube()).render(
        yaml.safe_load(JOB.read_text(encoding="utf-8")), queue="SITE_QUEUE"
    )


def test_queue_parameters_name_a_values_dir_and_a_chart() -> None:
    settings = queue_params.settings_from_params({"valuesDir": "/etc/dps/values", "chart": "/etc/dps/chart"})
    assert settings.values_dir == Path("/etc/dps/values")
    assert settings.chart == Path("/etc/dps/chart")
    assert queue_params.settings_from_params({}).values_dir is None


@pytest.mark.parametrize(
    ("option", "message"),
    [("--chart", "not a chart directory (no Chart.yaml)"), ("--values-dir", "no such directory")],
)
def test_cli_refuses_a_missing_chart_or_values_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, message: str
) -> None:
    code = cli.main(["render", str(JOB), option, str(tmp_path / "nope")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_renders_with_a_values_dir_and_chart_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, site: tuple[Path, Path]
) -> None:
    values, chart = site
    seen: list[Settings] = []

    def service() -> SessionService:
        seen.append(cli.CTX.settings)
        return SessionService(cli.CTX.settings, helm=FakeHelm(), kube=FakeKube())

    monkeypatch.setattr(cli, "service", service)
    monkeypatch.setenv("DPS_VALUES_DIR", str(values))
    monkeypatch.setenv("DPS_CHART", str(chart))
    code = cli.main(["render", str(JOB), "-q", "SITE_QUEUE", "-o", "values"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert yaml.safe_load(out)["values"]["queue"]["name"] == "SITE_QUEUE"
    assert seen and seen[0].values_dir == values and seen[0].chart == chart


@pytest.mark.parametrize("command", ["render", "submit", "status", "delete"])
def test_help_names_arguments_without_python_types(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert cli.main([command, "-h"]) == 0
    text = capsys.readouterr().out
    assert "<str>" not in text and "list[" not in text
