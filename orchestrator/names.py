"""Every name the orchestrator and the chart agree on, in one place: object names, label and
annotation keys, components, and the kinds a session can leave in a namespace.

The chart builds the same names in ``templates/_helpers-names.tpl`` (and its labels in
``templates/_helpers.tpl``); a chart-tier test renders every object across the render matrix and
checks each name, label and kind against the constants here, so the two cannot drift apart. This
module imports nothing of the package: any module may import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# --- the application --------------------------------------------------------------------------

APP_NAME: Final = "dask-panda-session"
"""The value of ``app.kubernetes.io/name`` on every object of a session, and the chart's name."""
MANAGED_BY: Final = APP_NAME
"""``app.kubernetes.io/managed-by`` of the objects the orchestrator makes itself (helm writes ``Helm``)."""

RELEASE_PREFIX: Final = "dask"
"""Release names are ``<prefix>-<PandaID>`` (``-a<attempt>`` after a first attempt)."""
MAX_RELEASE_NAME: Final = 40
"""Release names stay short so that ``<release>-scheduler`` etc. remain valid 63-char labels."""

# --- label keys -------------------------------------------------------------------------------

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
VERSION_LABEL: Final = "app.kubernetes.io/version"
HELM_CHART_LABEL: Final = "helm.sh/chart"
PANDAID_LABEL: Final = "dask-panda-session/pandaid"
MODE_LABEL: Final = "dask-panda-session/mode"
QUEUE_LABEL: Final = "dask-panda-session/queue"
WORKER_ID_LABEL: Final = "dask-panda-session/worker-id"
PENDING_CLEANUP_LABEL: Final = "dask-panda-session/pending-cleanup-of"
"""Label of a pending-cleanup record: the release whose directory is still to be removed."""
GC_RUN_LABEL: Final = "dask-panda-session/gc-run"
"""Label of the pods of one directory gc run (the run's Job name)."""
PROBE_LABEL: Final = "dask-panda-session/netpol-probe"
"""Label of doctor's NetworkPolicy probe objects (the probe's run id), so they are always found."""

SELECTOR_LABELS: Final = (NAME_LABEL, INSTANCE_LABEL, COMPONENT_LABEL)
"""The labels that select one component of one release (``dps.selectorLabels``)."""
HELM_LABELS: Final = (PART_OF_LABEL, MANAGED_BY_LABEL, VERSION_LABEL, HELM_CHART_LABEL)
JOB_LABELS: Final = (PANDAID_LABEL, MODE_LABEL, QUEUE_LABEL, WORKER_ID_LABEL)
CHART_LABELS: Final = frozenset({*SELECTOR_LABELS, *HELM_LABELS, *JOB_LABELS})
"""The labels the chart puts on every object it makes (``dps.labels``); ``worker-id`` only when
the job has a Harvester worker id."""
PART_OF: Final = "panda"
"""The value of ``app.kubernetes.io/part-of``."""

# --- annotation keys --------------------------------------------------------------------------

ANN_SCHEDULER_ADDRESS: Final = "dask-panda-session/scheduler-address"
ANN_DASHBOARD_URL: Final = "dask-panda-session/dashboard-url"
ANN_JUPYTER_URL: Final = "dask-panda-session/jupyter-url"
ANN_WORKERS_WANTED: Final = "dask-panda-session/workers-wanted"
ANN_STARTUP_SECONDS: Final = "dask-panda-session/startup-seconds"
ANN_LEASE_SECONDS: Final = "dask-panda-session/lease-seconds"
ANN_LIFETIME_SECONDS: Final = "dask-panda-session/lifetime-seconds"
ADDRESS_ANNOTATIONS: Final = (ANN_SCHEDULER_ADDRESS, ANN_DASHBOARD_URL, ANN_JUPYTER_URL)
DEADLINE_ANNOTATIONS: Final = (
    ANN_WORKERS_WANTED,
    ANN_STARTUP_SECONDS,
    ANN_LEASE_SECONDS,
    ANN_LIFETIME_SECONDS,
)
SESSION_ANNOTATIONS: Final = frozenset({*ADDRESS_ANNOTATIONS, *DEADLINE_ANNOTATIONS})
"""The annotations the chart puts on every session pod (``dps.sessionAnnotations``); the
JupyterLab URL only in interactive mode."""

ANN_SUBMIT_ID: Final = "dask-panda-session/submit-id"
"""On the per-job Secret: the submit call that holds it as its lock."""
ANN_WORKER_ID: Final = "dask-panda-session/harvester-worker-id"
"""On the per-job Secret: the Harvester worker the submit is for."""
ANN_PENDING_DIRECTORY: Final = "dask-panda-session/directory"
ANN_PENDING_JOB: Final = "dask-panda-session/cleanup-job"
HELM_ANNOTATION_PREFIX: Final = "helm.sh/"
"""Helm's own annotations (hooks): removed from a hook Job the orchestrator runs itself."""
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
"""On a node simulated by kwok (value ``fake``): its pods never run, so nothing can be probed on it."""

# --- components (values of app.kubernetes.io/component) -----------------------------------------

SCHEDULER: Final = "scheduler"
WORKER: Final = "worker"
PILOT: Final = "pilot"
JUPYTERLAB: Final = "jupyterlab"
PREPARE: Final = "prepare"
CLEANUP: Final = "cleanup"
TEST: Final = "test"
SHARED_VOLUME: Final = "shared-volume"
EGRESS: Final = "egress"
SECRET_COMPONENT: Final = "secret"  # noqa: S105 - a component label, not a password
"""The per-job Secret the orchestrator makes (never the chart)."""
GC_COMPONENT: Final = "directory-gc"
PROBE_COMPONENT: Final = "netpol-probe"
ADDRESS_GATE: Final = "address-gate"
"""The pilot's address gate: its ServiceAccount, Role, RoleBinding and API-server egress policy,
rendered only when JupyterLab's URL is unknown before the install (a LoadBalancer without a
reserved IP, no Ingress)."""

CHART_COMPONENTS: Final = frozenset(
    {SCHEDULER, WORKER, PILOT, JUPYTERLAB, PREPARE, CLEANUP, TEST, SHARED_VOLUME, EGRESS, ADDRESS_GATE}
)
"""Every component label the chart can render."""

# --- object names -----------------------------------------------------------------------------


def object_name(release: str, suffix: str) -> str:
    """``<release>-<suffix>``: every object of a release is named so (the chart's ``dps.name``)."""
    return f"{release}-{suffix}"


def scheduler_name(release: str) -> str:
    """The scheduler's Pod, Service and ingress NetworkPolicy."""
    return object_name(release, SCHEDULER)


def jupyterlab_name(release: str) -> str:
    """JupyterLab's Pod, Service, Ingress and ingress NetworkPolicy."""
    return object_name(release, JUPYTERLAB)


def pilot_name(release: str) -> str:
    """The pilot's Pod and its ingress NetworkPolicy."""
    return object_name(release, PILOT)


def worker_name(release: str, index: int) -> str:
    """Dask worker ``index`` (from 0)."""
    return object_name(release, f"{WORKER}-{index}")


def workers_policy_name(release: str) -> str:
    """The ingress NetworkPolicy of all the workers."""
    return object_name(release, WORKER)


def egress_policy_name(release: str, component: str | None = None) -> str:
    """The egress NetworkPolicy of every pod (no component), or a component's own endpoints."""
    return object_name(release, f"{component}-{EGRESS}" if component else EGRESS)


def hook_job_name(release: str, hook: str) -> str:
    """The pre-install (``prepare``) or pre-delete (``cleanup``) Job."""
    return object_name(release, hook)


def helm_test_name(release: str) -> str:
    """The ``helm test`` pod."""
    return object_name(release, TEST)


def claim_name(release: str) -> str:
    """The shared claim the chart makes when ``sharedVolume.create.enabled`` (else the queue names one)."""
    return object_name(release, "shared")


def address_gate_name(release: str) -> str:
    """The address gate's ServiceAccount, Role, RoleBinding and API-server egress NetworkPolicy."""
    return object_name(release, ADDRESS_GATE)


def secret_name(release: str) -> str:
    """The per-job Secret's name; derived, so a sweep finds it without any stored state."""
    return object_name(release, "secret")


def pending_cleanup_name(release: str) -> str:
    """The pending-cleanup record of a release (``<release>-cleanup-pending``: at most 56
    characters, since release names are at most 40)."""
    return object_name(release, "cleanup-pending")


GC_RELEASE: Final = f"{RELEASE_PREFIX}-1"
"""The release name the directory gc Job is rendered for (only its cleanup Job's settings are used)."""
GC_JOB_NAME: Final = f"{APP_NAME}-directory-gc"
PROBE_NAME_PREFIX: Final = f"{APP_NAME}-netpol-probe"
"""doctor's probe objects are ``<prefix>-<run id>-server`` / ``-client`` (and the policy ``-deny``)."""

# --- label selectors --------------------------------------------------------------------------

APP_SELECTOR: Final = f"{NAME_LABEL}={APP_NAME}"
"""Every object of every session (and the orchestrator's own records)."""
JUPYTERLAB_SERVICE_SELECTOR: Final = f"{APP_SELECTOR},{COMPONENT_LABEL}={JUPYTERLAB}"
"""The JupyterLab Services of every release (one LIST)."""


def instance_selector(release: str) -> str:
    """Every object of one release."""
    return f"{APP_SELECTOR},{INSTANCE_LABEL}={release}"


# --- kinds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A namespaced kind the release or its hooks can create, addressed by its REST path."""

    name: str
    group_version: str  # "v1" for the core group, else "<group>/<version>"
    plural: str

    @property
    def group(self) -> str:
        """The API group ("" for the core group), as RBAC rules name it."""
        return "" if self.group_version == "v1" else self.group_version.split("/")[0]

    def path(self, namespace: str, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


POD: Final = Kind("Pod", "v1", "pods")
SERVICE: Final = Kind("Service", "v1", "services")
SECRET: Final = Kind("Secret", "v1", "secrets")
JOB: Final = Kind("Job", "batch/v1", "jobs")
PVC: Final = Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims")
EVENT: Final = Kind("Event", "v1", "events")
NETWORK_POLICY: Final = Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies")
INGRESS: Final = Kind("Ingress", "networking.k8s.io/v1", "ingresses")
SERVICE_ACCOUNT: Final = Kind("ServiceAccount", "v1", "serviceaccounts")
ROLE: Final = Kind("Role", "rbac.authorization.k8s.io/v1", "roles")
ROLE_BINDING: Final = Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings")

CHART_KINDS: Final = frozenset(
    {JOB, POD, SERVICE, NETWORK_POLICY, INGRESS, PVC, SERVICE_ACCOUNT, ROLE, ROLE_BINDING}
)
"""Every kind the chart can create (a chart-tier test renders every object and keeps this equal)."""
ORCHESTRATOR_KINDS: Final = frozenset({SECRET, JOB})
"""Kinds the orchestrator creates itself: the per-job Secret; the cleanup, gc and pending-cleanup Jobs."""

# Every kind a session can leave behind. Jobs come first so that their pods are deleted by their
# owner; the address gate's binding before its Role and ServiceAccount; claims last, once no pod
# uses them.
LEFTOVER_KINDS: Final[tuple[Kind, ...]] = (
    JOB,
    POD,
    SERVICE,
    SECRET,
    NETWORK_POLICY,
    INGRESS,
    ROLE_BINDING,
    ROLE,
    SERVICE_ACCOUNT,
    PVC,
)
