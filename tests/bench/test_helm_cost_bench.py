"""Bench: where one job's helm CPU goes (each helm process on its own, CPU from its rusage).

One job's values are rendered by the orchestrator and its per-job Secret made, as a submit does;
then, for Helm 4 and Helm 3, each helm step runs alone (one process at a time, so the growth of
``RUSAGE_CHILDREN`` around it is that process' CPU) and the kube-apiserver's CPU is read around it:

* ``version`` (a bare start), ``status`` of a missing release (start + one API round trip);
* ``template`` (load, schema validation, rendering; no cluster): the chart directory or the chart
  packaged once as a ``.tgz``, with and without ``--skip-schema-validation``;
* ``install`` (no ``--wait``; the hooks are awaited) + ``uninstall --wait`` of the real release,
  with an empty helm/kube cache directory per process (what a process without a persistent
  ``HOME`` pays) and with one persistent cache directory, and the variants above, and with
  ``--disable-openapi-validation`` (what the orchestrator's install passes: helm's probe of the
  server's OpenAPI documents skipped).

Asserted: every helm step succeeded (never a timing). Results: ``tests/bench/results/helm_cost.json``.

    DPS_CLUSTER_STATE=... .venv/bin/python -m pytest -p no:cacheprovider -m bench tests/bench/test_helm_cost_bench.py -s
"""

from __future__ import annotations

import functools
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from tests.bench.conftest import write_results
from tests.bench.test_submit_bench import _apiserver_pid, _cpu_seconds
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, prepare_namespace, service, values_file
from tests.conftest import TOOLS_BIN

ROUNDS = int(os.environ.get("DPS_BENCH_HELM_ROUNDS", "3"))
COMMAND = (
    "DPS_CLUSTER_STATE=<state dir> .venv/bin/python -m pytest -p no:cacheprovider -m bench "
    "tests/bench/test_helm_cost_bench.py -s"
)


def _one(
    argv: list[str], env: dict[str, str], stdin: bytes | None, pid: int | None, *, missing: bool = False
) -> dict[str, float]:
    """Run one helm process alone: its CPU (user + system), wall time and the API server's CPU."""
    api_before = _cpu_seconds(pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    api_after = _cpu_seconds(pid)
    stderr = done.stderr.decode(errors="replace")
    if missing:  # the release must be reported missing, by helm's own words
        assert done.returncode != 0 and "not found" in stderr, (argv[1:3], stderr[-2000:])
    else:
        assert done.returncode == 0, (argv[1:3], stderr[-2000:])
    return {
        "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall": wall,
        "api": 0.0 if api_before is None or api_after is None else api_after - api_before,
    }


def _record(
    steps: dict[str, list[dict[str, float]]],
    exe: list[str],
    connection: list[str],
    env_for: Callable[[Path], dict[str, str]],
    persistent: Path,
    pid: int | None,
    step: str,
    argv: list[str],
    stdin: bytes | None = None,
    *,
    fresh: bool = False,
    missing: bool = False,
) -> None:
    """One helm step into `steps`; `fresh` gives it an empty cache directory of its own."""
    home = Path(tempfile.mkdtemp(dir=persistent.parent)) if fresh else persistent
    steps.setdefault(step, []).append(
        _one([*exe, *argv, *connection], env_for(home), stdin, pid, missing=missing)
    )


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


@pytest.mark.timeout(3600)
def test_helm_cost_per_step(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    tiny = {
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    }
    extra = values_file(
        tmp_path,
        "bench",
        {
            **fast_timeouts(startup=600, lifetime=7200),
            "tests": {"enabled": False},
            "scheduler": tiny,
            "workers": tiny,
            "pilot": tiny,
        },
    )
    svc = service(kube_cluster, namespace, values_files=(extra,))
    chart = svc.settings.chart or helm_mod.Helm().chart
    packaged = tmp_path / "pkg"
    subprocess.run(
        [str(TOOLS_BIN / "helm"), "package", str(chart), "-d", str(packaged)], check=True, capture_output=True
    )
    tgz = str(next(packaged.glob("*.tgz")))
    persistent = Path(tempfile.mkdtemp(prefix="helm-cache-", dir=tmp_path))
    pid = _apiserver_pid()
    figures: dict[str, Any] = {"rounds": ROUNDS, "load_average_at_start": os.getloadavg(), "helm": {}}

    def env_for(home: Path) -> dict[str, str]:
        env = dict(kube_cluster.env)
        env.update(helm_mod.cache_environment(home, environ={}))
        return env

    for binary in ("helm", "helm3"):
        steps: dict[str, list[dict[str, float]]] = {}
        record = functools.partial(
            _record,
            steps,
            [str(TOOLS_BIN / binary)],
            ["--kubeconfig", str(kube_cluster.kubeconfig)],
            env_for,
            persistent,
            pid,
        )
        pandaid = 7_100_000 if binary == "helm" else 7_200_000
        for round_ in range(ROUNDS):
            record("version", ["version", "--short"])
            record(
                "status_missing", ["status", "no-such-release", "-n", namespace, "-o", "json"], missing=True
            )
            _, rendered = svc.render(job(pandaid + round_ * 10))
            body = helm_mod.encode_values(rendered.values)
            for ref, ref_name in ((str(chart), "dir"), (tgz, "tgz")):
                record(f"template_{ref_name}", ["template", "x", ref, "-n", namespace, "--values", "-"], body)
                record(
                    f"template_{ref_name}_skip_schema",
                    ["template", "x", ref, "-n", namespace, "--values", "-", "--skip-schema-validation"],
                    body,
                )
            variants: list[tuple[str, list[str], bool]] = [
                ("install_dir_fresh_cache", [str(chart)], True),
                ("install_dir", [str(chart)], False),
                ("install_tgz", [tgz], False),
                ("install_tgz_skip_schema", [tgz, "--skip-schema-validation"], False),
                ("install_dir_no_openapi", [str(chart), "--disable-openapi-validation"], False),
                ("install_dir_no_openapi_fresh_cache", [str(chart), "--disable-openapi-validation"], True),
            ]
            for index, (step, ref_args, fresh) in enumerate(variants):
                _, rendered = svc.render(job(pandaid + round_ * 10 + index))
                assert rendered.secret_name
                svc.kube.create_secret(namespace, rendered.secret_name, rendered.secret.reveal(), {}, {})
                record(
                    step,
                    [
                        "install",
                        rendered.release,
                        *ref_args,
                        "-n",
                        namespace,
                        "-o",
                        "json",
                        "--timeout",
                        "120s",
                        "--values",
                        "-",
                    ],
                    helm_mod.encode_values(rendered.values),
                    fresh=fresh,
                )
                record(
                    step.replace("install", "uninstall"),
                    ["uninstall", rendered.release, "-n", namespace, "--wait", "--timeout", "60s"],
                    fresh=fresh,
                )
                svc.kube.delete(kube_mod.SECRET, namespace, rendered.secret_name)
        figures["helm"][binary] = {step: _median(runs) for step, runs in steps.items()}
        print(binary, json.dumps(figures["helm"][binary], indent=1), flush=True)
    figures["load_average_after"] = os.getloadavg()
    write_results("helm_cost", {"command": COMMAND, **figures})
