"""Values through `Helm.template` with the real Helm 4 and Helm 3: every character and integer arrives.

Two charts: the project's own (text put into `extraEnv` comes out in the pod specs intact) and a
one-template probe chart that returns the values it received as base64 JSON, so that whole ranges
of characters and the integer bound can be checked exactly against what was sent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import InputError
from orchestrator.helm import MAX_EXACT_INT, Helm, HelmUnavailable
from tests.chart.conftest import NAMESPACE, RELEASE, job_values, run_helm
from tests.conftest import VALUES_DIR

TEXT = "😀 𠮷野家 é ß Ω \u2028 \u2029 \ufeff \x01\x1f \" ' \\ {{ .Values }} $(rm -rf /) \U0010fffd"


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, later wins: what helm does with `-f queue.yaml -f job.yaml`."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def env_values(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """{object/container: value} of every env entry called name in the rendered pod specs."""
    found: dict[str, str] = {}
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj.get("kind") == "Job":
            spec = spec["template"]["spec"]
        for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            for env in container.get("env") or []:
                if env["name"] == name:
                    found[f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"] = env["value"]
    return found


def test_non_bmp_text_reaches_the_chart_intact(helm_bin: Path) -> None:
    queue = yaml.safe_load((VALUES_DIR / "GOOGLE_DASK.yaml").read_text(encoding="utf-8"))
    entry = [{"name": "DPS_TEXT", "value": TEXT}]
    values = merged(queue, job_values("batch", scheduler={"extraEnv": entry}, workers={"extraEnv": entry}))

    objects = Helm(executable=str(helm_bin)).template(RELEASE, NAMESPACE, values)

    found = env_values(objects, "DPS_TEXT")
    assert any(k.startswith("Pod/") and "scheduler" in k for k in found), found
    assert any("worker" in k for k in found), found
    assert set(found.values()) == {TEXT}


PROBE_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
data:
  values: {{ toJson .Values | b64enc | quote }}
  {{- with .Values.text }}
  yaml: {{ toYaml . | b64enc | quote }}
  {{- end }}
"""


@pytest.fixture
def probe(tmp_path: Path, helm_bin: Path) -> Helm:
    """A chart whose one object carries the values it received, as base64 JSON."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (tmp_path / "values.schema.json").write_text('{"type": "object"}\n')  # Helm 3 re-reads values for it
    (tmp_path / "templates" / "cm.yaml").write_text(PROBE_TEMPLATE)
    return Helm(executable=str(helm_bin), chart=tmp_path)


def received(helm: Helm, values: dict[str, Any]) -> Any:
    (obj,) = helm.template("probe", NAMESPACE, values)
    return json.loads(base64.b64decode(obj["data"]["values"]))


def test_every_character_helm_can_carry_round_trips(probe: Helm) -> None:
    refused = {*range(0x7F, 0xA0), 0xFFFE, 0xFFFF}
    codes = [
        c
        for c in [*range(1, 0x3000), *range(0xE000, 0x10000), 0x10000, 0x1F600, 0x20BB7, 0x10FFFF]
        if c not in refused and not 0xD800 <= c < 0xE000
    ]
    strings = [f"a {chr(c)} b" for c in codes]  # spaces: a line break would fold them away
    keys = {f"k{chr(c)}": c for c in codes[:3000]}
    got = received(probe, {"strings": strings, "keys": keys})
    wrong = [hex(c) for c, s, g in zip(codes, strings, got["strings"], strict=True) if s != g]
    assert wrong == []
    assert got["keys"] == keys


def test_integers_inside_the_bound_are_exact(probe: Helm) -> None:
    numbers = [MAX_EXACT_INT, -MAX_EXACT_INT, 2**31, 2**32 + 1, 0, -1, 1759473585]
    assert received(probe, {"n": numbers})["n"] == numbers


def test_integers_beyond_the_bound_are_refused(probe: Helm) -> None:
    with pytest.raises(InputError, match=r"values\.job\.definition\.big"):
        probe.template("probe", NAMESPACE, {"job": {"definition": {"big": MAX_EXACT_INT + 2}}})


def test_helm_itself_changes_integers_beyond_the_bound(probe: Helm, helm_bin: Path) -> None:
    """Why the bound: without it, helm silently changes the number (reading it as a float64)."""
    chart = probe.chart
    proc = run_helm(helm_bin, ["template", "probe", str(chart)], [{"n": 2**53 + 1}])
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(proc.stdout)["data"]["values"]
    assert json.loads(base64.b64decode(data))["n"] != 2**53 + 1


@pytest.mark.parametrize("char", ["\x7f", "\x85", "\x9f", "\uffff"])
def test_helm_itself_loses_the_refused_characters(probe: Helm, helm_bin: Path, char: str) -> None:
    """Why they are refused: helm's `toYaml` (which the chart uses for extraEnv and the like)
    loses text holding one, and Helm 3 refuses them in a chart with a values schema."""
    text = f"a {char} b"
    with pytest.raises(InputError, match=f"U\\+{ord(char):04X}"):
        probe.template("probe", NAMESPACE, {"text": text})
    proc = run_helm(helm_bin, ["template", "probe", str(probe.chart)], [{"text": text}])
    if proc.returncode != 0:
        assert "control characters are not allowed" in proc.stderr
        return
    data = yaml.safe_load(proc.stdout)["data"]
    assert json.loads(base64.b64decode(data["values"]))["text"] == text  # received ...
    assert yaml.safe_load(base64.b64decode(data["yaml"]).decode()) != text  # ... and lost by toYaml


UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users: [{name: u, user: {}}]
"""


def test_every_command_is_accepted_and_an_unreachable_cluster_is_temporary(
    tmp_path: Path, helm_bin: Path
) -> None:
    """The real helm parses each command's flags (an unknown flag would fail first, differently)
    and its "cluster unreachable" becomes HelmUnavailable, whichever major writes it."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    helm = Helm(executable=str(helm_bin), kubeconfig=kubeconfig, timeout=5)
    queue = yaml.safe_load((VALUES_DIR / "GOOGLE_DASK.yaml").read_text(encoding="utf-8"))
    calls: dict[str, Callable[[], object]] = {
        "status": lambda: helm.release(RELEASE, NAMESPACE),
        "install": lambda: helm.install(RELEASE, NAMESPACE, merged(queue, job_values("batch"))),
        "uninstall": lambda: helm.uninstall(RELEASE, NAMESPACE, no_hooks=True, wait=True),
        "get values": lambda: helm.get_values(RELEASE, NAMESPACE),
        "list": lambda: helm.list_releases(NAMESPACE),
    }
    for what, call in calls.items():
        with pytest.raises(HelmUnavailable, match="cluster unreachable") as info:
            call()
        assert "connection refused" in str(info.value), what
