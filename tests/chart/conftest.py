"""Helpers of the chart tier: render the chart with the real helm binaries, parse the manifests."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CHART, VALUES_DIR

RELEASE = "dask-1759473585"
NAMESPACE = "panda-jobs"
PANDA_ID = "1759473585"
QUEUE_FILES = sorted(p.name for p in VALUES_DIR.glob("*.yaml"))
MODES = ("batch", "interactive")


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template` run, with the command's output kept for messages."""

    objects: list[dict[str, Any]]
    stdout: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no {kind} {name} in {[o['metadata']['name'] for o in self.of_kind(kind)]}")

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod spec: bare Pods and the templates of Jobs."""
        for obj in self.objects:
            if obj["kind"] == "Pod":
                yield obj["metadata"]["name"], obj["spec"]
            elif obj["kind"] == "Job":
                yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def definition_file(mode: str) -> bytes:
    """A pandaJobData.out as the orchestrator puts it into the per-job Secret (never into values)."""
    definition = {
        "PandaID": int(PANDA_ID),
        "jobName": "user.test.$(rm -rf /) {{ .Values }}",
        "realDatasets": "user.test.interactive" if mode == "interactive" else "user.test",
    }
    return json.dumps({PANDA_ID: definition}, ensure_ascii=False).encode()


def job_values(mode: str, **extra: Any) -> dict[str, Any]:
    """The per-job values the orchestrator supplies: the definition and the password stay in the
    existing per-job Secret; the values carry its name and the definition's checksum only."""
    values: dict[str, Any] = {
        "job": {
            "pandaId": PANDA_ID,
            "attempt": 2,
            "harvesterWorkerId": "4242",
            "mode": mode,
            "definitionSha256": hashlib.sha256(definition_file(mode)).hexdigest(),
        },
        "secrets": {"existingSecret": f"{RELEASE}-secret"},
    }
    for key, value in extra.items():
        values[key] = value
    return values


def run_helm(
    helm: Path,
    args: Sequence[str],
    values: Sequence[dict[str, Any]] = (),
    files: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """Run helm; values dicts go through temporary JSON files (JSON is YAML), after the files."""
    cmd = [str(helm), *args]
    for f in files:
        cmd += ["-f", str(f)]
    tmp_files = []
    for v in values:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tmp:
            json.dump(v, tmp)
        tmp_files.append(Path(tmp.name))
        cmd += ["-f", tmp.name]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    finally:
        for p in tmp_files:
            p.unlink(missing_ok=True)


def render(
    helm: Path,
    values: Sequence[dict[str, Any]] = (),
    files: Sequence[Path] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    """`helm template` the chart (hooks and tests included); fail the test with helm's stderr."""
    proc = run_helm(
        helm,
        ["template", release, str(CHART), "--namespace", namespace, "--kube-version", "1.35.0"],
        values,
        files,
    )
    if proc.returncode != 0:
        pytest.fail(f"helm template failed:\n{proc.stderr}")
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return Rendered(objects=objects, stdout=proc.stdout)
