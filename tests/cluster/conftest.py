"""Fixtures for the `cluster` test tier: a real kube-apiserver with kwok nodes.

The cluster is managed by ``scripts/test-cluster.sh`` (see its header).  The
session fixture ``kube_cluster`` uses a running cluster when there is one, or
starts it (building the binaries first if the cache is cold; that takes
minutes) and stops it again at the end unless ``DPS_KEEP_CLUSTER=1``.

The tier is skipped only when the binaries are not cached and cannot be
built here: no ``go`` on PATH, or the Go module proxy cannot resolve the
pinned Kubernetes module.  Any other failure to bring the cluster up is an
error, not a skip.

Nothing here dials a pod or Service IP: nodes and pods are simulated, only
the API is real.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test-cluster.sh"
KUBE_VERSION = "v1.35.4"


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.25,
) -> Any:
    """Poll ``probe`` until it returns a truthy value; return that value.

    Exceptions from the probe count as "not yet" until the deadline, then
    the last one is reported with ``what``.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # reported at the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class KubeCluster:
    """Handle on the running test cluster, with a few helpers."""

    kubeconfig: Path
    kubectl: Path
    script: Path
    status: dict[str, str] = field(default_factory=dict)
    started_here: bool = False
    _client: k8s.ApiClient | None = field(default=None, repr=False)
    # Namespaces deleted by tests: the namespace controller takes about 5 s for each, so the
    # tier waits for all of them once, at its end, instead of once per test.
    deleting: list[str] = field(default_factory=list, repr=False)

    def delete_namespace(self, name: str) -> None:
        """Delete a test namespace now; ``wait_namespaces_gone`` (at the tier's end) checks that
        it really went, so a namespace that cannot be deleted still fails the run."""
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self.deleting.append(name)

    def namespace_gone(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    def wait_namespaces_gone(self, timeout: float = 180) -> None:
        pending = list(self.deleting)
        wait_for(
            f"namespaces {pending} to be deleted",
            lambda: all(self.namespace_gone(n) for n in pending),
            timeout=timeout,
            interval=0.5,
        )
        self.deleting.clear()

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (helm, kubectl): private kubeconfig,
        our tools first on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.kubectl.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl_run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
            timeout=timeout,
            env=self.env,
        )

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl_run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | list[Any] | str, namespace: str | None = None) -> str:
        """``kubectl apply -f -`` a manifest (dict, list of dicts, or YAML/JSON text)."""
        if not isinstance(manifest, str):
            items = manifest if isinstance(manifest, list) else [manifest]
            manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        ns = ["-n", namespace] if namespace else []
        return self.kubectl_run("apply", *ns, "-f", "-", input=manifest).stdout

    def api_client(self) -> k8s.ApiClient:
        """One shared client for the session (urllib3 pools are thread-safe)."""
        if self._client is None:
            self._client = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._client

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client())

    @property
    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.api_client())

    @property
    def etcd_url(self) -> str:
        """Client URL of etcd on loopback (from ``test-cluster.sh status``)."""
        m = re.search(r"\((http://127\.0\.0\.1:\d+)\)", self.status.get("etcd", ""))
        if not m:
            raise RuntimeError(f"no etcd URL in status: {self.status!r}")
        return m.group(1)

    def etcd_version(self) -> str:
        # etcd_url is always http://127.0.0.1:<port> (checked in etcd_url).
        with urllib.request.urlopen(f"{self.etcd_url}/version", timeout=5) as resp:  # noqa: S310
            return str(json.load(resp)["etcdserver"])

    wait_for = staticmethod(wait_for)
    KUBE_VERSION = KUBE_VERSION


def _script(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], text=True, capture_output=True, timeout=timeout)


def _parse_status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _cannot_build_reason() -> str | None:
    """Why the binaries cannot be built here, or None if they can."""
    go = shutil.which("go")
    if go is None:
        return "Go is not installed"
    try:
        probe = subprocess.run(
            [go, "list", "-m", "-json", f"k8s.io/kubernetes@{KUBE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    except subprocess.TimeoutExpired:
        return "the Go module proxy did not answer within 60s"
    if probe.returncode != 0:
        return f"the Go module proxy cannot resolve k8s.io/kubernetes@{KUBE_VERSION}: {probe.stderr.strip()[-300:]}"
    return None


def _lock_path() -> Path:
    state = os.environ.get("DPS_CLUSTER_STATE", "/tmp/dask-panda-session-cluster")
    # Not the script's own "<state>.lock": the script takes that one itself.
    return Path(state.rstrip("/") + ".pytest.lock")


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    started_here = False
    # Serialise `up` between concurrent pytest processes (e.g. xdist workers).
    with open(_lock_path(), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = _script("status", timeout=60)
        if status.returncode != 0:
            if "binaries: not built" in status.stdout:
                reason = _cannot_build_reason()
                if reason:
                    pytest.skip(f"cluster tier skipped: {reason}, and no cached cluster binaries")
            # Cold cache: `up` builds first (15-30 min on 2 cores).
            up = _script("up", timeout=3600)
            if up.returncode != 0:
                pytest.fail(
                    f"scripts/test-cluster.sh up failed (exit {up.returncode}):\n{up.stderr[-4000:]}",
                    pytrace=False,
                )
            started_here = True
            status = _script("status", timeout=60)
            if status.returncode != 0:
                pytest.fail(f"cluster not healthy after up:\n{status.stdout}", pytrace=False)
    info = _parse_status(status.stdout)
    cluster = KubeCluster(
        kubeconfig=Path(info["kubeconfig"]),
        kubectl=Path(info["kubectl"]),
        script=SCRIPT,
        status=info,
        started_here=started_here,
    )
    yield cluster
    cluster.wait_namespaces_gone()
    if started_here and os.environ.get("DPS_KEEP_CLUSTER") != "1":
        down = _script("down", timeout=300)
        if down.returncode != 0:
            pytest.fail(f"scripts/test-cluster.sh down failed:\n{down.stderr[-4000:]}", pytrace=False)


def _namespace_name(test_name: str) -> str:
    """A DNS-1123 label from the test name, unique per call, <= 63 chars."""
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-") or "test"
    suffix = os.urandom(3).hex()
    return f"{base[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


def create_namespace(cluster: KubeCluster, name: str) -> str:
    """Create a namespace and wait until pods can be made in it (kube-controller-manager makes
    its `default` ServiceAccount first); returns the name."""
    cluster.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    wait_for(
        f"ServiceAccount default in {name}",
        lambda: cluster.core.read_namespaced_service_account("default", name),
        timeout=30,
    )
    return name


def create_shared_pv(
    cluster: KubeCluster,
    namespace: str,
    claim_name: str,
    size: str = "10Gi",
    server: str = "10.0.0.2",
    path: str = "/vol1",
) -> str:
    """A static RWX NFS-style PersistentVolume pre-bound to ``<namespace>/<claim_name>``
    (nothing is ever mounted: kwok runs no containers); the real PV controller then binds the
    claim. Returns the PV's name, ``<namespace>-<claim_name>``; the caller deletes it."""
    pv_name = f"{namespace}-{claim_name}"[:253]
    cluster.core.create_persistent_volume(
        k8s.V1PersistentVolume(
            metadata=k8s.V1ObjectMeta(name=pv_name, labels={"dask-panda-session/test-namespace": namespace}),
            spec=k8s.V1PersistentVolumeSpec(
                capacity={"storage": size},
                access_modes=["ReadWriteMany"],
                persistent_volume_reclaim_policy="Retain",
                storage_class_name="",
                nfs=k8s.V1NFSVolumeSource(server=server, path=path),
                claim_ref=k8s.V1ObjectReference(
                    api_version="v1", kind="PersistentVolumeClaim", namespace=namespace, name=claim_name
                ),
            ),
        )
    )
    return pv_name


def delete_pvs(cluster: KubeCluster, names: list[str]) -> None:
    for name in names:
        try:
            cluster.core.delete_persistent_volume(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the tier waits for it at its end)."""
    name = create_namespace(kube_cluster, _namespace_name(request.node.name))
    yield name
    kube_cluster.delete_namespace(name)


@pytest.fixture
def shared_pv(kube_cluster: KubeCluster, namespace: str) -> Iterator[Callable[..., str]]:
    """Factory for static PersistentVolumes pre-bound to a claim in ``namespace``
    (``create_shared_pv``): ``shared_pv("claim-name")`` returns the PV name. The PVs are deleted
    at teardown."""
    created: list[str] = []

    def make(claim_name: str, size: str = "10Gi", server: str = "10.0.0.2", path: str = "/vol1") -> str:
        created.append(create_shared_pv(kube_cluster, namespace, claim_name, size, server, path))
        return created[-1]

    yield make
    delete_pvs(kube_cluster, created)
