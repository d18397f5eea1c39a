"""The test cluster itself: versions, kwok stages, controllers, watches.

These pin down what the chart and orchestrator tests rely on; see
scripts/cluster/stages/ for the annotation-selected stages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.cluster.conftest import KubeCluster

pytestmark = pytest.mark.cluster

# Annotations understood by our kwok stages (scripts/cluster/stages/).
EXIT_CODE = "kwok.dask-panda-session/exit-code"
EXIT_AFTER = "kwok.dask-panda-session/exit-after"
IMAGE_PULL = "kwok.dask-panda-session/image-pull"
# No node carries this label, so the real kube-scheduler keeps such a pod
# Pending with PodScheduled=False, reason Unschedulable.
UNSCHEDULABLE_SELECTOR = {"dask-panda-session/unschedulable": "true"}


def make_pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, annotations=annotations or {}),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="main", image="registry.invalid/dps/test:1")],
            restart_policy=spec.pop("restart_policy", "Never"),
            termination_grace_period_seconds=0,
            **spec,
        ),
    )


def condition(obj: Any, type_: str) -> Any:
    for cond in obj.status.conditions or []:
        if cond.type == type_:
            return cond
    return None


def pod_in_phase(core: k8s.CoreV1Api, ns: str, name: str, *phases: str) -> Callable[[], Any]:
    def probe() -> Any:
        pod = core.read_namespaced_pod(name, ns)
        return pod if pod.status.phase in phases else None

    return probe


def test_version_is_pinned(kube_cluster: KubeCluster) -> None:
    info = k8s.VersionApi(kube_cluster.api_client()).get_code()
    assert info.git_version == kube_cluster.KUBE_VERSION
    assert (info.major, info.minor) == ("1", "35")
    assert info.git_tree_state == "clean"


def test_etcd_is_3_6_or_newer(kube_cluster: KubeCluster) -> None:
    # Older etcd breaks watches on 1.35 (RequestWatchProgress); see test_watch.
    version = kube_cluster.etcd_version()
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (3, 6), version


def test_nodes_are_kwok_and_ready(kube_cluster: KubeCluster) -> None:
    nodes = kube_cluster.core.list_node().items
    assert len(nodes) >= 2
    for node in nodes:
        assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake"
        assert condition(node, "Ready").status == "True"


def test_plain_pod_runs_ready_forever(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("plain"))
    pod = kube_cluster.wait_for("pod Running", pod_in_phase(core, namespace, "plain", "Running"))
    node_names = {n.metadata.name for n in core.list_node().items}
    assert pod.spec.node_name in node_names
    assert condition(pod, "Ready").status == "True"
    assert pod.status.pod_ip
    # No annotation: nothing ever ends it.
    time.sleep(3)
    pod = core.read_namespaced_pod("plain", namespace)
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].state.running is not None


def _terminated(pod: k8s.V1Pod) -> k8s.V1ContainerStateTerminated:
    state = pod.status.container_statuses[0].state
    assert state.terminated is not None, state
    return state.terminated


def test_exit_code_zero_succeeds(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("ok", {EXIT_CODE: "0", EXIT_AFTER: "2"}))
    kube_cluster.wait_for("pod Running", pod_in_phase(core, namespace, "ok", "Running"))
    pod = kube_cluster.wait_for(
        "pod Succeeded", pod_in_phase(core, namespace, "ok", "Succeeded", "Failed"), timeout=30
    )
    assert pod.status.phase == "Succeeded"
    term = _terminated(pod)
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert condition(pod, "Ready").status == "False"


def test_exit_code_nonzero_fails_after_delay(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("fail", {EXIT_CODE: "3", EXIT_AFTER: "4"}))
    kube_cluster.wait_for("pod Running", pod_in_phase(core, namespace, "fail", "Running"))
    running_seen = time.monotonic()
    time.sleep(1)
    assert core.read_namespaced_pod("fail", namespace).status.phase == "Running"
    pod = kube_cluster.wait_for(
        "pod Failed", pod_in_phase(core, namespace, "fail", "Succeeded", "Failed"), timeout=30
    )
    assert pod.status.phase == "Failed"
    assert time.monotonic() - running_seen >= 2.5
    term = _terminated(pod)
    assert (term.exit_code, term.reason) == (3, "Error")
    # Timestamps have second resolution; the delay is 4s.
    assert term.finished_at - term.started_at >= timedelta(seconds=3)


def test_image_pull_failure_stays_pending(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("nopull", {IMAGE_PULL: "fail"}))

    def waiting_reason(*reasons: str) -> Callable[[], Any]:
        def probe() -> Any:
            pod = core.read_namespaced_pod("nopull", namespace)
            statuses = pod.status.container_statuses or []
            if statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason in reasons:
                return pod
            return None

        return probe

    pod = kube_cluster.wait_for("ErrImagePull", waiting_reason("ErrImagePull", "ImagePullBackOff"))
    assert pod.spec.node_name  # scheduled, it is the pull that fails
    pod = kube_cluster.wait_for("ImagePullBackOff", waiting_reason("ImagePullBackOff"), timeout=15)
    waiting = pod.status.container_statuses[0].state.waiting
    assert "registry.invalid/dps/test:1" in waiting.message
    assert pod.status.phase == "Pending"
    assert condition(pod, "Ready").status == "False"
    time.sleep(3)
    pod = core.read_namespaced_pod("nopull", namespace)
    assert pod.status.phase == "Pending"
    assert condition(pod, "Ready").status == "False"


def test_unschedulable_pod_stays_pending(kube_cluster: KubeCluster, namespace: str) -> None:
    # The real kube-scheduler: no node has the label, so no node fits.
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("nowhere", node_selector=UNSCHEDULABLE_SELECTOR))

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("nowhere", namespace)
        cond = condition(pod, "PodScheduled")
        return pod if cond and cond.status == "False" else None

    pod = kube_cluster.wait_for("PodScheduled=False", unschedulable)
    assert condition(pod, "PodScheduled").reason == "Unschedulable"
    assert pod.spec.node_name is None
    assert pod.status.phase == "Pending"


def test_loadbalancer_service_gets_ingress(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_service(
        namespace,
        k8s.V1Service(
            metadata=k8s.V1ObjectMeta(name="lb"),
            spec=k8s.V1ServiceSpec(
                type="LoadBalancer",
                selector={"app": "lb"},
                ports=[k8s.V1ServicePort(port=8786, target_port=8786)],
            ),
        ),
    )

    def ingress() -> Any:
        svc = core.read_namespaced_service("lb", namespace)
        lb = svc.status.load_balancer
        return svc if lb and lb.ingress else None

    svc = kube_cluster.wait_for("LoadBalancer ingress", ingress)
    ip = svc.status.load_balancer.ingress[0].ip
    assert ip.startswith("192.0.2."), ip
    assert svc.spec.cluster_ip


def test_job_completes(kube_cluster: KubeCluster, namespace: str) -> None:
    batch = kube_cluster.batch
    batch.create_namespaced_job(
        namespace,
        k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name="hook"),
            spec=k8s.V1JobSpec(
                backoff_limit=0,
                template=k8s.V1PodTemplateSpec(spec=make_pod("unused").spec),
            ),
        ),
    )

    def complete() -> Any:
        job = batch.read_namespaced_job("hook", namespace)
        cond = condition(job, "Complete")
        return job if cond and cond.status == "True" else None

    job = kube_cluster.wait_for("Job Complete", complete, timeout=60)
    assert job.status.succeeded == 1


def test_deleted_pod_goes_away(kube_cluster: KubeCluster, namespace: str) -> None:
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("doomed"))
    kube_cluster.wait_for("pod Running", pod_in_phase(core, namespace, "doomed", "Running"))
    core.delete_namespaced_pod("doomed", namespace)

    def gone() -> Any:
        try:
            core.read_namespaced_pod("doomed", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    kube_cluster.wait_for("pod deleted", gone, timeout=30)


def test_watch(kube_cluster: KubeCluster, namespace: str) -> None:
    """Watches work (they fail inside the stream with too old an etcd)."""
    core = kube_cluster.core
    core.create_namespaced_pod(namespace, make_pod("first"))
    kube_cluster.wait_for("pod Running", pod_in_phase(core, namespace, "first", "Running"))

    # 1. A watch without resourceVersion: the initial state comes as ADDED.
    w = watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_pod, namespace, timeout_seconds=10):
        assert event["type"] != "ERROR", event
        seen.append((event["type"], event["object"].metadata.name))
        if seen[-1] == ("ADDED", "first"):
            w.stop()
    assert ("ADDED", "first") in seen

    # 2. A watch from a list's resourceVersion sees a new pod come and run.
    rv = core.list_namespaced_pod(namespace).metadata.resource_version
    events: list[tuple[str, str, str | None]] = []
    done = threading.Event()

    def consume() -> Any:
        w2 = watch.Watch()
        for event in w2.stream(core.list_namespaced_pod, namespace, resource_version=rv, timeout_seconds=30):
            obj = event["object"]
            events.append((event["type"], obj.metadata.name, obj.status.phase))
            if (event["type"], obj.metadata.name, obj.status.phase) == ("MODIFIED", "second", "Running"):
                w2.stop()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    core.create_namespaced_pod(namespace, make_pod("second"))
    assert done.wait(35), events
    assert any(e[:2] == ("ADDED", "second") for e in events), events
    assert ("MODIFIED", "second", "Running") in events
    assert all(e[0] != "ERROR" for e in events), events


def test_static_pv_binds_claim(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> None:
    core = kube_cluster.core
    pv_name = shared_pv("shared")
    core.create_namespaced_persistent_volume_claim(
        namespace,
        k8s.V1PersistentVolumeClaim(
            metadata=k8s.V1ObjectMeta(name="shared"),
            spec=k8s.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteMany"],
                storage_class_name="",
                resources=k8s.V1VolumeResourceRequirements(requests={"storage": "10Gi"}),
            ),
        ),
    )

    def bound() -> Any:
        pvc = core.read_namespaced_persistent_volume_claim("shared", namespace)
        return pvc if pvc.status.phase == "Bound" else None

    pvc = kube_cluster.wait_for("claim Bound", bound, timeout=60)
    assert pvc.spec.volume_name == pv_name
    assert core.read_persistent_volume(pv_name).status.phase == "Bound"


def test_job_pod_with_exit_code_fails_the_job(kube_cluster: KubeCluster, namespace: str) -> None:
    # How a failing Helm hook is simulated: the annotation beats pod-complete.
    batch = kube_cluster.batch
    template = make_pod("unused", {EXIT_CODE: "1"})
    batch.create_namespaced_job(
        namespace,
        k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name="bad-hook"),
            spec=k8s.V1JobSpec(
                backoff_limit=0,
                template=k8s.V1PodTemplateSpec(metadata=template.metadata, spec=template.spec),
            ),
        ),
    )

    def failed() -> Any:
        job = batch.read_namespaced_job("bad-hook", namespace)
        cond = condition(job, "Failed")
        return job if cond and cond.status == "True" else None

    job = kube_cluster.wait_for("Job Failed", failed, timeout=60)
    assert not job.status.succeeded
    pods = kube_cluster.core.list_namespaced_pod(namespace, label_selector="job-name=bad-hook").items
    assert [p.status.container_statuses[0].state.terminated.exit_code for p in pods] == [1]
