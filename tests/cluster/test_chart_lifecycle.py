"""The chart's whole lifecycle with plain helm (4 and 3) on the real API server, no orchestrator:
hook order, pods Running on kwok nodes, Services, NetworkPolicies, Secrets, `helm test`,
an uninstall that leaves nothing, and the recovery from a failing pre-delete hook."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import watch

from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import EXIT_AFTER, EXIT_CODE, IMAGE_PULL, job, labelled, prepare_namespace
from tests.conftest import CHART, TOOLS_BIN, VALUES_DIR

PASSWORD = "lifecycle-test-pw-1"


def helm(
    cluster: KubeCluster, binary: str, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOLS_BIN / binary), *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=timeout,
        check=False,
    )


def install_chart(
    cluster: KubeCluster, binary: str, release: str, namespace: str, values: Path
) -> subprocess.CompletedProcess[str]:
    """`helm install` by hand, as an operator debugging a session does: queue file + job file."""
    return helm(
        cluster,
        binary,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "-f",
        str(VALUES_DIR / "GOOGLE_DASK.yaml"),
        "-f",
        str(values),
    )


def job_values(tmp_path: Path, pandaid: int, mode: str, **extra: Any) -> Path:
    """A per-job values file as an operator writes it for a manual install."""
    definition = next(iter(job(pandaid, mode=mode).values()))
    definition.pop("secrets", None)
    values: dict[str, Any] = {
        "job": {"pandaId": str(pandaid), "mode": mode, "definition": definition},
        "workers": {"replicas": 2},
        "tests": {"podAnnotations": {EXIT_CODE: "0", EXIT_AFTER: "2"}},
        "timeouts": {"startupSeconds": 60, "hookSeconds": 60, "testSeconds": 60},
    }
    if mode == "interactive":
        values["secrets"] = {"existingSecret": f"dask-{pandaid}-secret"}
    values.update(extra)
    path = tmp_path / f"job-{pandaid}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


class Recorder:
    """Watches Jobs and Pods of a namespace and records (resourceVersion, kind, name, what)."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.events: list[tuple[int, str, str, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(cluster.batch.list_namespaced_job, namespace, "Job"), daemon=True
            ),
            threading.Thread(
                target=self._run, args=(cluster.core.list_namespaced_pod, namespace, "Pod"), daemon=True
            ),
        ]

    def _run(self, lister: Callable[..., Any], namespace: str, kind: str) -> None:
        w = watch.Watch()
        while not self._stop.is_set():
            for event in w.stream(lister, namespace, timeout_seconds=2):
                obj = event["object"]
                rv = int(obj.metadata.resource_version)
                what = event["type"]
                if kind == "Job" and obj.status and obj.status.succeeded:
                    what = "Complete"
                self.events.append((rv, kind, obj.metadata.name, what))

    def __enter__(self) -> Recorder:
        for t in self._threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


@pytest.fixture
def queue_ns(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> str:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    return namespace


@pytest.mark.parametrize("binary", ["helm", "helm3"])
@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_install_test_uninstall(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path, binary: str, mode: str
) -> None:
    pandaid = 7100 + (1 if mode == "interactive" else 0) + (2 if binary == "helm3" else 0)
    release = f"dask-{pandaid}"
    if mode == "interactive":
        kube_cluster.kubectl_run(
            "create",
            "secret",
            "generic",
            f"{release}-secret",
            "-n",
            queue_ns,
            "--from-file",
            f"jupyter-password={_password_file(tmp_path)}",
        )
        kube_cluster.kubectl_run(
            "label", "secret", f"{release}-secret", "-n", queue_ns, f"app.kubernetes.io/instance={release}"
        )
    values = job_values(tmp_path, pandaid, mode)
    with Recorder(kube_cluster, queue_ns) as recorder:
        install = install_chart(kube_cluster, binary, release, queue_ns, values)
        assert install.returncode == 0, install.stderr
        kube_cluster.wait_for(
            "every pod Running",
            lambda: (
                _phases(kube_cluster, queue_ns, release)
                and set(_phases(kube_cluster, queue_ns, release).values()) == {"Running"}
            ),
            timeout=60,
        )
    # The pre-install hook completed before any session object was created.
    completed = [
        rv
        for rv, kind, name, what in recorder.events
        if kind == "Job" and name == f"{release}-prepare" and what == "Complete"
    ]
    created = [
        rv
        for rv, kind, name, what in recorder.events
        if kind == "Pod" and what == "ADDED" and not name.endswith("-prepare") and "-prepare-" not in name
    ]
    assert completed, recorder.events
    assert created, recorder.events
    assert min(completed) < min(created), recorder.events
    # NOTES name the addresses and never the password.
    assert f"tcp://{release}-scheduler.{queue_ns}.svc.cluster.local:8786" in install.stdout
    assert PASSWORD not in install.stdout

    pods = _phases(kube_cluster, queue_ns, release)
    expected = {f"{release}-scheduler", f"{release}-pilot", f"{release}-worker-0", f"{release}-worker-1"}
    if mode == "interactive":
        expected.add(f"{release}-jupyterlab")
    assert set(pods) == expected
    services = kube_cluster.kubectl_json(
        "get", "services", "-n", queue_ns, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    assert all(s["spec"]["clusterIP"] not in ("", "None") for s in services)
    if mode == "interactive":
        lb = next(s for s in services if s["metadata"]["name"].endswith("-jupyterlab"))
        kube_cluster.wait_for(
            "LoadBalancer address",
            lambda: (
                kube_cluster.kubectl_json("get", "service", lb["metadata"]["name"], "-n", queue_ns)["status"]
                .get("loadBalancer", {})
                .get("ingress")
            ),
            timeout=30,
        )
    policies = kube_cluster.kubectl_json(
        "get", "networkpolicies", "-n", queue_ns, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    assert len(policies) == (4 if mode == "interactive" else 3)

    test = helm(kube_cluster, binary, "test", release, "-n", queue_ns, "--timeout", "90s")
    assert test.returncode == 0, test.stdout + test.stderr
    assert "Succeeded" in test.stdout

    started = time.monotonic()
    uninstall = helm(kube_cluster, binary, "uninstall", release, "-n", queue_ns, "--timeout", "90s")
    assert uninstall.returncode == 0, uninstall.stderr
    if mode == "interactive":  # the per-job Secret is the orchestrator's (here: ours) to delete
        kube_cluster.kubectl_run("delete", "secret", f"{release}-secret", "-n", queue_ns)
    kube_cluster.wait_for(
        "nothing labelled left",
        lambda: labelled(kube_cluster, queue_ns, release) == [],
        timeout=60,
        interval=1,
    )
    assert time.monotonic() - started < 120


def test_chart_made_claim_goes_with_the_release(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    release = "dask-7200"
    shared_pv(f"{release}-shared")
    kube_cluster.kubectl_run(
        "create",
        "secret",
        "generic",
        "proxy-secret",
        "-n",
        namespace,
        "--from-literal",
        "x509up_u25606_prod=x",
    )
    claim = {
        "existingClaim": "",
        "create": {"enabled": True, "volumeName": f"{namespace}-{release}-shared", "size": "10Gi"},
    }
    values = job_values(
        tmp_path, 7200, "batch", sharedVolume={**claim, "mountPath": "/mnt/dask", "jobsDirectory": ""}
    )
    install = install_chart(kube_cluster, "helm", release, namespace, values)
    assert install.returncode == 0, install.stderr
    pvc = kube_cluster.kubectl_json("get", "pvc", f"{release}-shared", "-n", namespace)
    assert pvc["status"]["phase"] == "Bound"
    uninstall = helm(kube_cluster, "helm", "uninstall", release, "-n", namespace, "--timeout", "90s")
    assert uninstall.returncode == 0, uninstall.stderr
    kube_cluster.wait_for(
        "nothing labelled left",
        lambda: labelled(kube_cluster, namespace, release) == [],
        timeout=90,
        interval=1,
    )


def test_failing_pre_delete_hook_and_its_recovery(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    """A pre-delete hook that cannot run makes `helm uninstall` fail (after its --timeout) and
    leaves the release in `uninstalling`; `helm uninstall --no-hooks` ends it, and a
    label-selected delete removes anything left. (The orchestrator's sweep automates exactly
    this, and also runs the cleanup step itself; see test_orchestrator.)"""
    release = "dask-7300"
    values = job_values(tmp_path, 7300, "batch", hooks={"podAnnotations": {}, "keepFailed": False})
    install = install_chart(kube_cluster, "helm", release, queue_ns, values)
    assert install.returncode == 0, install.stderr
    wedge = helm(
        kube_cluster,
        "helm",
        "upgrade",
        release,
        str(CHART),
        "-n",
        queue_ns,
        "--reuse-values",
        "--set-json",
        f'hooks.podAnnotations={{"{IMAGE_PULL}": "fail"}}',
    )
    assert wedge.returncode == 0, wedge.stderr
    stuck = helm(kube_cluster, "helm", "uninstall", release, "-n", queue_ns, "--timeout", "15s")
    assert stuck.returncode != 0
    status = json.loads(helm(kube_cluster, "helm", "status", release, "-n", queue_ns, "-o", "json").stdout)
    assert status["info"]["status"] == "uninstalling"
    recovered = helm(
        kube_cluster, "helm", "uninstall", release, "-n", queue_ns, "--no-hooks", "--timeout", "60s"
    )
    assert recovered.returncode == 0, recovered.stderr
    assert helm(kube_cluster, "helm", "status", release, "-n", queue_ns).returncode != 0
    # The failed hook's Job went with it (its delete policy includes hook-failed); whatever the
    # release had is gone, or going, by its label.
    kube_cluster.kubectl_run(
        "delete", "jobs,pods", "-n", queue_ns, "-l", f"app.kubernetes.io/instance={release}", "--wait=false"
    )
    kube_cluster.wait_for(
        "nothing labelled left",
        lambda: labelled(kube_cluster, queue_ns, release) == [],
        timeout=60,
        interval=1,
    )


def _phases(cluster: KubeCluster, namespace: str, release: str) -> dict[str, str]:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={release}"
    ).items
    return {
        p.metadata.name: p.status.phase
        for p in pods
        if p.metadata.labels.get("app.kubernetes.io/component") not in ("prepare", "cleanup", "test")
    }


def _password_file(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_text(PASSWORD)
    return path
