"""The only module that talks to the Kubernetes API (the official `kubernetes` client).

Requests go through one raw-call method, so that (a) the monitor's hot path can skip the client's
model objects (it lists pods as plain JSON: thousands of pods per cycle), (b) every request is
counted (the benchmarks and tests check that observation costs one LIST per namespace), and
(c) errors are translated once: an unreachable cluster is `KubeUnavailable` (temporary, Harvester
must not cancel anything), anything else `KubeError`.

Secrets are written here and nowhere else; their values are never logged or put in an error.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from orchestrator.errors import DaskPandaSessionError

__all__ = [
    "APP_SELECTOR",
    "LEFTOVER_KINDS",
    "Kind",
    "Kube",
    "KubeError",
    "KubeUnavailable",
    "instance_selector",
]

log = logging.getLogger(__name__)

APP_SELECTOR: Final = "app.kubernetes.io/name=dask-panda-session"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"


class KubeError(DaskPandaSessionError):
    """The API refused a request (the message says which and why)."""


class KubeUnavailable(KubeError):
    """The API could not be reached or answered 5xx: temporary, try again next cycle."""


@dataclass(frozen=True)
class Kind:
    """A namespaced kind the release or its hooks can create, addressed by its REST path."""

    name: str
    group_version: str  # "v1" for the core group, else "<group>/<version>"
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


POD: Final = Kind("Pod", "v1", "pods")
SECRET: Final = Kind("Secret", "v1", "secrets")
JOB: Final = Kind("Job", "batch/v1", "jobs")
PVC: Final = Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims")
EVENT: Final = Kind("Event", "v1", "events")

# Every kind the chart, its hooks and the orchestrator can leave behind. Jobs come first so that
# their pods are deleted by their owner; claims last, once no pod uses them.
LEFTOVER_KINDS: Final[tuple[Kind, ...]] = (
    JOB,
    POD,
    Kind("Service", "v1", "services"),
    Kind("ConfigMap", "v1", "configmaps"),
    SECRET,
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies"),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses"),
    Kind("ServiceAccount", "v1", "serviceaccounts"),
    Kind("Role", "rbac.authorization.k8s.io/v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets"),
    PVC,
)


def instance_selector(release: str) -> str:
    return f"{APP_SELECTOR},{INSTANCE_LABEL}={release}"


class Kube:
    """A thin, counted, JSON-level client for the few API calls the orchestrator makes."""

    def __init__(
        self,
        *,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        request_timeout: tuple[float, float] = (5.0, 30.0),
        api_client: Any = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig) if kubeconfig else None
        self.context = context
        self.request_timeout = request_timeout
        self._api = api_client
        self._lock = threading.Lock()
        self.requests = 0  # every API request made through this object

    @property
    def api(self) -> Any:
        """The kubernetes ApiClient, made on first use (kubeconfig file, else in-cluster)."""
        with self._lock:
            return self._make_api()

    def _make_api(self) -> Any:
        if self._api is None:
            from kubernetes import config

            try:
                if self.kubeconfig or not _in_cluster():
                    self._api = config.new_client_from_config(
                        config_file=self.kubeconfig, context=self.context
                    )
                else:
                    config.load_incluster_config()
                    from kubernetes import client

                    self._api = client.ApiClient()
            except (config.ConfigException, OSError, TypeError) as err:
                raise KubeUnavailable(f"no usable Kubernetes configuration: {err}") from None
        return self._api

    # -- the one raw call --------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any:
        """One API request; returns the decoded JSON (None for a tolerated 404)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self._lock:
            self.requests += 1
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return None
            if err.status == 0 or err.status >= 500 or err.status == 429:
                raise KubeUnavailable(
                    f"{method} {path}: the API answered {err.status} {err.reason}"
                ) from None
            raise KubeError(f"{method} {path}: {err.status} {err.reason}: {_api_message(err)}") from None
        except (HTTPError, OSError) as err:
            raise KubeUnavailable(
                f"{method} {path}: cluster unreachable: {type(err).__name__}: {err}"
            ) from None
        raw = response[0].data if isinstance(response, tuple) else response.data
        return json.loads(raw) if raw else None

    # -- observation (hot path) ----------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str = APP_SELECTOR) -> list[dict[str, Any]]:
        """ONE LIST of every session pod of the namespace, as plain API JSON."""
        data = self.request("GET", POD.path(namespace), query={"labelSelector": selector})
        return list(data.get("items", [])) if data else []

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]:
        """The events of one release's pods: asked only for a session that is failing."""
        data = self.request("GET", EVENT.path(namespace), query={"fieldSelector": "involvedObject.kind=Pod"})
        prefix = f"{release}-"
        return [
            e
            for e in (data or {}).get("items", [])
            if e.get("involvedObject", {}).get("name", "").startswith(prefix)
        ]

    # -- the per-job Secret ----------------------------------------------------------------------
    def create_secret(
        self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        """Create (or replace) the per-job Secret. The values go in the request body only."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": dict(labels)},
            "type": "Opaque",
            "stringData": dict(data),
        }
        try:
            self.request("POST", SECRET.path(namespace), body=body)
        except KubeError as err:
            if "409" not in str(err):
                raise
            self.request("PUT", SECRET.path(namespace, name), body=body)

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        result = self.request(
            "DELETE",
            kind.path(namespace, name),
            body={"propagationPolicy": "Background"},
            missing_ok=True,
        )
        return result is not None

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        result = self.request("GET", kind.path(namespace, name), missing_ok=True)
        return dict(result) if result else None

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", kind.path(namespace), body=dict(body)))

    # -- verified cleanup ------------------------------------------------------------------------
    def list_labelled(
        self, namespace: str, selector: str, kinds: Sequence[Kind] = LEFTOVER_KINDS
    ) -> list[tuple[Kind, dict[str, Any]]]:
        """Every object of the given kinds carrying the selector (metadata only, as JSON)."""
        found: list[tuple[Kind, dict[str, Any]]] = []
        for kind in kinds:
            data = self.request(
                "GET", kind.path(namespace), query={"labelSelector": selector}, missing_ok=True
            )
            for item in (data or {}).get("items", []):
                found.append((kind, item))
        return found

    def delete_labelled(self, namespace: str, selector: str, kinds: Sequence[Kind] = LEFTOVER_KINDS) -> int:
        """Delete every object of the given kinds carrying the selector; returns how many were asked.

        One by one rather than DELETE-collection: not every kind supports the latter, and a
        release leaves a handful of objects at most.
        """
        found = self.list_labelled(namespace, selector, kinds)
        for kind, item in found:
            meta = item.get("metadata", {})
            if not meta.get("deletionTimestamp"):
                self.delete(kind, namespace, str(meta.get("name")))
        return len(found)

    # -- doctor ------------------------------------------------------------------------------
    def version(self) -> str:
        data = self.request("GET", "/version")
        return str(data.get("gitVersion", "?"))

    def can_i(self, namespace: str, verb: str, resource: str, group: str = "") -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "resource": resource,
                    "group": group,
                }
            },
        }
        data = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
        return bool(data.get("status", {}).get("allowed"))

    def exists(self, path: str) -> bool:
        return self.request("GET", path, missing_ok=True) is not None


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message", ""))[:500]
    except (TypeError, ValueError, AttributeError):
        return ""


def names(objects: Iterable[tuple[Kind, Mapping[str, Any]]]) -> list[str]:
    """`Kind/name` of listed objects, for messages."""
    return [f"{kind.name}/{obj.get('metadata', {}).get('name')}" for kind, obj in objects]
