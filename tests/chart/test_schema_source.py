"""The values schema has one source: values.schema.yaml (anchors), generated into the JSON Helm reads.

Why: the JSON repeats whole blocks per component; edited by hand, one copy drifts from the
others. These tests keep the committed JSON equal to what the YAML source generates, and keep the
source out of the packaged chart (it would only grow every release record).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest

from tests.chart.conftest import run_helm
from tests.conftest import CHART, ROOT

GENERATOR = ROOT / "scripts" / "generate-schema.py"


def _generator() -> ModuleType:
    """scripts/generate-schema.py as a module (its file name is not an importable name)."""
    spec = importlib.util.spec_from_file_location("generate_schema", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_generated_from_the_yaml_source() -> None:
    source = (CHART / "values.schema.yaml").read_text(encoding="utf-8")
    committed = (CHART / "values.schema.json").read_text(encoding="utf-8")
    assert committed == _generator().generate(source), (
        "values.schema.json differs from values.schema.yaml: run scripts/generate-schema.py"
    )


def test_check_mode_agrees() -> None:
    """The command a maintainer runs says the same as the test above."""
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_aliases_expand_to_equal_blocks() -> None:
    """An alias yields the anchored block itself in the JSON, so both places validate alike."""
    source = (
        "type: object\n"
        "properties:\n"
        "  a: &block {type: object, required: [cpu], properties: {cpu: {type: string}}}\n"
        "  b: *block\n"
    )
    schema = json.loads(_generator().generate(source))
    assert (
        schema["properties"]["a"]
        == schema["properties"]["b"]
        == {
            "type": "object",
            "required": ["cpu"],
            "properties": {"cpu": {"type": "string"}},
        }
    )
    validator = jsonschema.Draft7Validator(schema)
    assert not list(validator.iter_errors({"a": {"cpu": "1"}, "b": {"cpu": "1"}}))
    assert [list(e.absolute_path) for e in validator.iter_errors({"b": {}})] == [["b"]]


def test_an_invalid_schema_is_refused() -> None:
    with pytest.raises(jsonschema.SchemaError):
        _generator().generate("type: object\nproperties:\n  a: {type: 5}\n")


def test_every_repeated_block_is_written_once_in_the_source() -> None:
    """Each component's resources, image, extraEnv and scheduling keys come from one anchor."""
    source = (CHART / "values.schema.yaml").read_text(encoding="utf-8")
    for anchor in (
        "image",
        "resourcesProperties",
        "extraEnv",
        "nodeSelector",
        "tolerations",
        "affinity",
        "podLabels",
        "podAnnotations",
    ):
        assert source.count(f"&{anchor}\n") == 1, anchor
        assert source.count(f"*{anchor}\n") >= 2, anchor


def test_the_source_is_not_packaged(helm_bin: Path, tmp_path: Path) -> None:
    """.helmignore keeps the YAML source and the README out of what Helm records for each
    release; the JSON and the scripts under files/ go in."""
    proc = run_helm(helm_bin, ["package", str(CHART), "--destination", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    (archive,) = tmp_path.glob("*.tgz")
    with tarfile.open(archive) as tar:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in tar.getnames()}
    assert "values.schema.json" in names
    assert "values.schema.yaml" not in names
    assert "README.md" not in names
    scripts = {p.relative_to(CHART).as_posix() for p in (CHART / "files").iterdir()}
    assert scripts and scripts <= names
