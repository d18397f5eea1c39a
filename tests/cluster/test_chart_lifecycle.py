"""The chart's whole lifecycle with plain helm (4 and 3) on the real API server, no orchestrator:
hook order, pods Running on kwok nodes, Services, NetworkPolicies, Secrets, `helm test`,
an uninstall that leaves nothing, and the recovery from a failing pre-delete hook. The per-job
Secret (the definition, the password) is made by hand as the chart README shows; the release
record stays small whatever the definition's size, and two attempts of one job live side by side."""

from __future__ import annotations

import base64
import gzip
import hashlib
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

from tests.chart.jobs import job_with_input_files
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


def job_secret(
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
    release: str,
    params: dict[str, Any],
    mode: str,
) -> str:
    """The per-job Secret made by hand (chart README): pandaJobData.out without its secrets, and
    in interactive mode the password, from files in a private directory. Returns the sha256."""
    params = {k: v for k, v in params.items() if k != "secrets"}
    private = tmp_path / f"{release}-secret"
    private.mkdir(mode=0o700)
    definition = private / "pandaJobData.out"
    definition.write_bytes(json.dumps({str(params["PandaID"]): params}, ensure_ascii=False).encode())
    files = ["--from-file", f"pandaJobData.out={definition}"]
    if mode == "interactive":
        files += ["--from-file", f"jupyter-password={_password_file(private)}"]
    cluster.kubectl_run("create", "secret", "generic", f"{release}-secret", "-n", namespace, *files)
    cluster.kubectl_run(
        "label", "secret", f"{release}-secret", "-n", namespace, f"app.kubernetes.io/instance={release}"
    )
    return hashlib.sha256(definition.read_bytes()).hexdigest()


def job_values(
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
    pandaid: int,
    mode: str,
    *,
    attempt: int = 0,
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """A per-job values file as an operator writes it for a manual install, after making the
    per-job Secret: the Secret's name and the definition's checksum, never the definition."""
    release = f"dask-{pandaid}" + (f"-a{attempt}" if attempt else "")
    definition = params if params is not None else next(iter(job(pandaid, mode=mode).values()))
    checksum = job_secret(cluster, namespace, tmp_path, release, definition, mode)
    values: dict[str, Any] = {
        "job": {"pandaId": str(pandaid), "attempt": attempt, "mode": mode, "definitionSha256": checksum},
        "workers": {"replicas": 2},
        "tests": {"podAnnotations": {EXIT_CODE: "0", EXIT_AFTER: "2"}},
        "timeouts": {"startupSeconds": 60, "hookSeconds": 60, "testSeconds": 60},
        "secrets": {"existingSecret": f"{release}-secret"},
    }
    values.update(extra)
    path = tmp_path / f"job-{release}.yaml"
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


EPHEMERAL_STORAGE = "1Ti"


def ensure_nodes_have_ephemeral_storage(cluster: KubeCluster) -> None:
    """Every container of the chart requests ephemeral storage; kwok's default node template has
    none, and a node without it can schedule no such pod. Give each simulated node some, as a
    real node's kubelet reports it (idempotent; the cluster script's nodes should have it)."""
    patch = json.dumps(
        {"status": {"capacity": {"ephemeral-storage": EPHEMERAL_STORAGE},
                    "allocatable": {"ephemeral-storage": EPHEMERAL_STORAGE}}}
    )  # fmt: skip
    for node in cluster.core.list_node().items:
        if "ephemeral-storage" not in (node.status.allocatable or {}):
            cluster.kubectl_run(
                "patch", "node", node.metadata.name, "--subresource=status", "--type=merge", "-p", patch
            )


@pytest.fixture
def queue_ns(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> str:
    ensure_nodes_have_ephemeral_storage(kube_cluster)
    prepare_namespace(kube_cluster, namespace, shared_pv)
    return namespace


@pytest.mark.parametrize("binary", ["helm", "helm3"])
@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_install_test_uninstall(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path, binary: str, mode: str
) -> None:
    pandaid = 7100 + (1 if mode == "interactive" else 0) + (2 if binary == "helm3" else 0)
    release = f"dask-{pandaid}"
    values = job_values(kube_cluster, queue_ns, tmp_path, pandaid, mode)
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
    assert f"tls://{release}-scheduler.{queue_ns}.svc.cluster.local:8786" in install.stdout
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
    # ingress: scheduler, workers, pilot (+ JupyterLab); egress: the release's own, plus the pilot's
    # (+ JupyterLab's) endpoints that values/GOOGLE_DASK.yaml lists
    names = {p["metadata"]["name"] for p in policies}
    assert {f"{release}-egress", f"{release}-pilot-egress"} <= names, names
    assert (f"{release}-jupyterlab-egress" in names) == (mode == "interactive"), names
    assert len(policies) == (7 if mode == "interactive" else 5), names

    test = helm(kube_cluster, binary, "test", release, "-n", queue_ns, "--timeout", "90s")
    assert test.returncode == 0, test.stdout + test.stderr
    assert "Succeeded" in test.stdout

    started = time.monotonic()
    uninstall = helm(kube_cluster, binary, "uninstall", release, "-n", queue_ns, "--timeout", "90s")
    assert uninstall.returncode == 0, uninstall.stderr
    # the per-job Secret is the orchestrator's (here: ours) to delete
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
    ensure_nodes_have_ephemeral_storage(kube_cluster)
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
        kube_cluster,
        namespace,
        tmp_path,
        7200,
        "batch",
        sharedVolume={**claim, "mountPath": "/mnt/dask", "jobsDirectory": ""},
    )
    install = install_chart(kube_cluster, "helm", release, namespace, values)
    assert install.returncode == 0, install.stderr
    pvc = kube_cluster.kubectl_json("get", "pvc", f"{release}-shared", "-n", namespace)
    assert pvc["status"]["phase"] == "Bound"
    uninstall = helm(kube_cluster, "helm", "uninstall", release, "-n", namespace, "--timeout", "90s")
    assert uninstall.returncode == 0, uninstall.stderr
    kube_cluster.kubectl_run("delete", "secret", f"{release}-secret", "-n", namespace)
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
    values = job_values(
        kube_cluster, queue_ns, tmp_path, 7300, "batch", hooks={"podAnnotations": {}, "keepFailed": False}
    )
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
    kube_cluster.kubectl_run("delete", "secret", f"{release}-secret", "-n", queue_ns)
    kube_cluster.wait_for(
        "nothing labelled left",
        lambda: labelled(kube_cluster, queue_ns, release) == [],
        timeout=60,
        interval=1,
    )


def _release_record_bytes(cluster: KubeCluster, namespace: str, release: str) -> int:
    """Bytes of Helm's release record (the Secret sh.helm.release.v1.<release>.v1, as stored)."""
    record = cluster.core.read_namespaced_secret(f"sh.helm.release.v1.{release}.v1", namespace)
    return sum(len(base64.b64decode(value)) for value in record.data.values())


def _release_json(cluster: KubeCluster, namespace: str, release: str) -> str:
    record = cluster.core.read_namespaced_secret(f"sh.helm.release.v1.{release}.v1", namespace)
    return gzip.decompress(base64.b64decode(base64.b64decode(record.data["release"]))).decode()


@pytest.mark.parametrize("binary", ["helm", "helm3"])
def test_release_record_stays_small_whatever_the_definition(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path, binary: str
) -> None:
    """A 1,000-file job and a 2-file job give release records of about the same size: the
    definition is in the per-job Secret only, never in the values or a manifest Helm records."""
    sizes = {}
    for files, pandaid in ((2, 7400), (1000, 7401)):
        pandaid += 10 if binary == "helm3" else 0
        release = f"dask-{pandaid}"
        params = job_with_input_files(files, pandaid=pandaid)
        values = job_values(kube_cluster, queue_ns, tmp_path, pandaid, "batch", params=params)
        install = install_chart(kube_cluster, binary, release, queue_ns, values)
        assert install.returncode == 0, install.stderr
        sizes[files] = _release_record_bytes(kube_cluster, queue_ns, release)
        recorded = _release_json(kube_cluster, queue_ns, release)
        assert "EVNT.153937._000001.pool.root.1" not in recorded
        secret = kube_cluster.core.read_namespaced_secret(f"{release}-secret", queue_ns)
        stored = base64.b64decode(secret.data["pandaJobData.out"])
        assert json.loads(stored)[str(pandaid)]["inFiles"].count(",") == files - 1
        uninstall = helm(kube_cluster, binary, "uninstall", release, "-n", queue_ns, "--timeout", "90s")
        assert uninstall.returncode == 0, uninstall.stderr
        kube_cluster.kubectl_run("delete", "secret", f"{release}-secret", "-n", queue_ns)
    print(f"release record bytes ({binary}): {sizes}")
    assert abs(sizes[1000] - sizes[2]) < 1024, sizes
    # the record holds the chart itself (templates, schema), compressed: bounded, whatever the job
    assert sizes[1000] < 96 * 1024, sizes


def test_two_attempts_of_one_job_live_side_by_side(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    """Attempt 1 and attempt 2 of one PandaID: two releases, two Secrets, two job directories; the
    end of one leaves the other running and its directory untouched (its mounts never name it)."""
    pandaid = 7500
    releases = {attempt: f"dask-{pandaid}-a{attempt}" for attempt in (1, 2)}
    for attempt, release in releases.items():
        values = job_values(kube_cluster, queue_ns, tmp_path, pandaid, "batch", attempt=attempt)
        install = install_chart(kube_cluster, "helm", release, queue_ns, values)
        assert install.returncode == 0, install.stderr
    sub_paths: dict[int, set[str]] = {}
    for attempt, release in releases.items():
        pods = kube_cluster.core.list_namespaced_pod(
            queue_ns, label_selector=f"app.kubernetes.io/instance={release}"
        ).items
        sub_paths[attempt] = {
            m.sub_path.split("/")[0]
            for p in pods
            for c in p.spec.containers + (p.spec.init_containers or [])
            for m in c.volume_mounts or []
            if m.name == "shared" and m.sub_path
        }
    assert sub_paths == {1: {f"{pandaid}-1"}, 2: {f"{pandaid}-2"}}
    uninstall = helm(kube_cluster, "helm", "uninstall", releases[1], "-n", queue_ns, "--timeout", "90s")
    assert uninstall.returncode == 0, uninstall.stderr
    kube_cluster.kubectl_run("delete", "secret", f"{releases[1]}-secret", "-n", queue_ns)
    kube_cluster.wait_for(
        "attempt 1 gone", lambda: labelled(kube_cluster, queue_ns, releases[1]) == [], timeout=60, interval=1
    )
    phases = _phases(kube_cluster, queue_ns, releases[2])
    assert phases and set(phases.values()) == {"Running"}, phases
    helm(kube_cluster, "helm", "uninstall", releases[2], "-n", queue_ns, "--timeout", "90s")
    kube_cluster.kubectl_run("delete", "secret", f"{releases[2]}-secret", "-n", queue_ns)


def _phases(cluster: KubeCluster, namespace: str, release: str) -> dict[str, str]:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={release}"
    ).items
    return {
        p.metadata.name: p.status.phase
        for p in pods
        if p.metadata.labels.get("app.kubernetes.io/component") not in ("prepare", "cleanup", "test")
    }


def _password_file(directory: Path) -> Path:
    path = directory / "pw"
    path.touch(mode=0o600)
    path.write_text(PASSWORD)
    return path
