"""The only module that talks to the Kubernetes API (the official `kubernetes` client).

Requests go through one raw-call method, so that (a) the monitor's hot path can skip the client's
model objects (it lists pods as plain JSON: thousands of pods per cycle), (b) every request is
counted (the benchmarks and tests check that observation costs one LIST per namespace), and
(c) errors are translated once: an unreachable cluster is `KubeUnavailable` (temporary, Harvester
must not cancel anything), anything else `KubeError`.

Secrets are written here and nowhere else; their values are never logged or put in an error, and
they are never read back (the per-job Secret is read as metadata only).

Decoding: answers are decoded by msgspec (a well-kept, fast JSON decoder), with the garbage
collector paused for the duration: a decoded JSON tree holds no reference cycles, yet building
one of tens of thousands of pods (millions of containers) makes the collector rescan the growing
tree again and again, which costs more than the decoding itself. The pod LISTs ask for
``resourceVersion=0``: the API server answers from its watch cache instead of reading every pod
from etcd, so a monitor cycle is cheap for the server too (the answer may lag the latest write by
the cache's delay, well under a monitor period). :meth:`Kube.list_pod_states_at` decodes the
whole PodList in one typed call, each pod straight into a compact :class:`PodRecord` (typed
msgspec Structs of the fields observation reads, which the rules then read directly), skipping
``spec``, ``managedFields``, images, IDs, mounts and every label and annotation the rules do not
read without building them, and decoding the timestamps into datetimes on the way: about a
fifth of the decoding time of the full pods as dicts, and a quarter of their memory.

Time: every API answer carries the server's `Date` header. The calls whose callers reason about
ages (the pod LIST of observe, the Secret that serves as a submit's lock) return it, so ages are
measured on the API server's clock, never the host's.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

import msgspec

from orchestrator import names as vocabulary
from orchestrator.errors import DaskPandaSessionError
from orchestrator.names import (  # re-exported: the kinds are addressed through this module
    APP_SELECTOR,
    EVENT,
    INGRESS,
    JOB,
    LEFTOVER_KINDS,
    NETWORK_POLICY,
    POD,
    PVC,
    SECRET,
    SERVICE,
    Kind,
    instance_selector,
    object_name,
)

__all__ = [
    "APP_SELECTOR",
    "EVENT",
    "INGRESS",
    "JOB",
    "LEFTOVER_KINDS",
    "NETWORK_POLICY",
    "POD",
    "PVC",
    "SECRET",
    "SERVICE",
    "Kind",
    "Kube",
    "KubeConflict",
    "KubeError",
    "KubeUnavailable",
    "instance_selector",
]

log = logging.getLogger(__name__)


class KubeError(DaskPandaSessionError):
    """The API refused a request (the message says which and why)."""


class KubeUnavailable(KubeError):
    """The API could not be reached or answered 5xx: temporary, try again next cycle."""


class KubeConflict(KubeError):
    """409: the object exists already, or a precondition (its uid) no longer holds."""


# The pod LISTs are answered from the API server's watch cache, not from etcd.
_FROM_WATCH_CACHE: Final = {"resourceVersion": "0"}

# Asks for an object's metadata only (no `data` of a Secret ever travels back).
_METADATA_ONLY: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


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
        return self.request_at(
            method, path, query=query, body=body, content_type=content_type, missing_ok=missing_ok
        )[0]

    def request_at(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        missing_ok: bool = False,
        decoder: Decodes | None = None,
    ) -> tuple[Any, datetime | None]:
        """One API request: (decoded JSON or None for a tolerated 404, the server's Date or None).

        `decoder` (a ``msgspec.json.Decoder`` or anything with its ``decode``) decodes the body
        into a typed shape (default: plain JSON values). An answer that is not JSON (a truncated body, a proxy's error page) is `KubeUnavailable`.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self._lock:
            self.requests += 1
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": accept, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return None, _date(getattr(err, "headers", None))
            if err.status == 0 or err.status >= 500 or err.status == 429:
                raise KubeUnavailable(
                    f"{method} {path}: the API answered {err.status} {err.reason}"
                ) from None
            message = f"{method} {path}: {err.status} {err.reason}: {_api_message(err)}"
            if err.status == 409:
                raise KubeConflict(message) from None
            raise KubeError(message) from None
        except (HTTPError, OSError) as err:
            raise KubeUnavailable(
                f"{method} {path}: cluster unreachable: {type(err).__name__}: {err}"
            ) from None
        if isinstance(response, tuple):
            raw, headers = response[0].data, response[2] if len(response) > 2 else None
        else:
            raw, headers = response.data, getattr(response, "headers", None)
        if not raw:
            return None, _date(headers)
        try:
            with collector_paused():
                data = (decoder or _JSON).decode(raw)
        except msgspec.DecodeError as err:
            raise KubeUnavailable(f"{method} {path}: the API answered unreadable JSON: {err}") from None
        return data, _date(headers)

    # -- observation (hot path) ----------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str = APP_SELECTOR) -> list[dict[str, Any]]:
        """ONE LIST of every session pod of the namespace, as plain API JSON."""
        return self.list_pods_at(namespace, selector)[0]

    def list_pods_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """The same ONE LIST, with the API server's time of the answer (None if it sent no Date).

        Served from the API server's watch cache (``resourceVersion=0``).
        """
        query = {"labelSelector": selector, **_FROM_WATCH_CACHE}
        data, date = self.request_at("GET", POD.path(namespace), query=query)
        items = data.get("items") if isinstance(data, dict) else None
        return (list(items) if isinstance(items, list) else []), date

    def list_pod_states_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[PodRecord | dict[str, Any]], datetime | None]:
        """The same ONE LIST, each pod decoded into a compact :class:`PodRecord`, and the server's time.

        Only what observation reads is built (``spec``, ``managedFields`` and the other fields are
        skipped while decoding), and the whole PodList is decoded by ONE typed call. A pod whose
        shape the typed decoding refuses (a field of the wrong container type, a timestamp that
        is not one: the API server never sends either) is returned as its plain JSON ``{"metadata": ..., "status": ...}``
        instead, so one odd pod never hides the others (:func:`record_of` reads it into the same
        record).
        """
        query = {"labelSelector": selector, **_FROM_WATCH_CACHE}
        data, date = self.request_at("GET", POD.path(namespace), query=query, decoder=_POD_STATES)
        if data is None:
            return [], date
        return data, date

    def list_services(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """ONE LIST of the namespace's Services carrying the selector, as plain API JSON.

        The monitor asks it once per namespace and cycle, only when it observes an interactive
        session: a LoadBalancer's external address exists only in its Service's status.
        """
        data = self.request("GET", SERVICE.path(namespace), query={"labelSelector": selector})
        return list(data.get("items", [])) if data else []

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]:
        """The events of one release's pods: asked only for a session that is failing."""
        data = self.request("GET", EVENT.path(namespace), query={"fieldSelector": "involvedObject.kind=Pod"})
        prefix = object_name(release, "")  # every object of the release is <release>-<suffix>
        return [
            e
            for e in (data or {}).get("items", [])
            if e.get("involvedObject", {}).get("name", "").startswith(prefix)
        ]

    # -- the per-job Secret ----------------------------------------------------------------------
    def create_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create the per-job Secret; returns its metadata (uid, creationTimestamp, annotations).

        Create only, never replace: the Secret is also the submit's lock, so an existing one
        raises `KubeConflict` and the caller decides. The values go in the request body only.
        """
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations or {})},
            "type": "Opaque",
            "stringData": dict(data),
        }
        created = self.request("POST", SECRET.path(namespace), body=body)
        return dict((created or {}).get("metadata", {}))

    def metadata_at(
        self, kind: Kind, namespace: str, name: str
    ) -> tuple[dict[str, Any] | None, datetime | None]:
        """One object's metadata only (a Secret's data is not even sent), and the server's time."""
        obj, date = self.request_at("GET", kind.path(namespace, name), accept=_METADATA_ONLY, missing_ok=True)
        return (dict(obj.get("metadata", {})) if obj else None), date

    def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete one object; False when it was already gone.

        With `uid`, only that very object is deleted (a precondition checked by the API server):
        when the name now belongs to a newer object, nothing is deleted and False is returned.
        """
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            result = self.request("DELETE", kind.path(namespace, name), body=body, missing_ok=True)
        except KubeConflict:
            if uid is None:
                raise
            log.info("%s %s/%s: not deleted, it is no longer the object %s", kind.name, namespace, name, uid)
            return False
        return result is not None

    def set_finalizers(
        self, kind: Kind, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str
    ) -> bool:
        """Replace one object's finalizers, only if it is still at `resource_version` (else the
        API server refuses with 409 and nothing changes: False, the caller looks again later);
        False too when the object is gone."""
        body = {"metadata": {"finalizers": list(finalizers), "resourceVersion": resource_version}}
        try:
            result = self.request(
                "PATCH",
                kind.path(namespace, name),
                body=body,
                content_type="application/merge-patch+json",
                missing_ok=True,
            )
        except KubeConflict:
            return False
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

    def server_time(self) -> datetime | None:
        """The API server's clock (the Date of one cheap `/version` request), None if not sent."""
        return self.request_at("GET", "/version")[1]

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


Time = Annotated[datetime, msgspec.Meta(tz=True)]
"""A timestamp of a pod, decoded by msgspec into an aware datetime (RFC 3339, as the API server
writes them); a timestamp the decoding refuses (not a string, not a time, no time zone) makes
its pod take the lenient way of :func:`record_of`, which parses what it can (a naive time is
UTC) and makes the rest None: "not known"."""


class PodCondition(msgspec.Struct, gc=False, rename="camel"):
    """One entry of ``status.conditions``; the values as the API sent them (any JSON value)."""

    kind: Any = msgspec.field(default=None, name="type")
    status: Any = None
    reason: Any = None
    message: Any = None
    last_transition_time: Time | None = None


def _key(name: str) -> Any:
    """A label or annotation field: decoded from the key ``name``, UNSET when the pod lacks it
    (so that "the first pod that has it wins" can tell absent from a value)."""
    return msgspec.field(default=msgspec.UNSET, name=name)


class PodLabels(msgspec.Struct, gc=False, omit_defaults=True):
    """The labels of a pod that observation reads, and only those: the others (Helm's, kwok's,
    anyone's) are skipped while decoding, never built. A value is as sent (any JSON value);
    a label the pod lacks is ``msgspec.UNSET``."""

    name: Any = _key(vocabulary.NAME_LABEL)
    instance: Any = _key(vocabulary.INSTANCE_LABEL)
    component: Any = _key(vocabulary.COMPONENT_LABEL)
    pandaid: Any = _key(vocabulary.PANDAID_LABEL)
    mode: Any = _key(vocabulary.MODE_LABEL)
    queue: Any = _key(vocabulary.QUEUE_LABEL)
    worker_id: Any = _key(vocabulary.WORKER_ID_LABEL)


class PodAnnotations(msgspec.Struct, gc=False, omit_defaults=True):
    """The annotations of a pod that observation reads (the session's addresses and limits),
    and only those; as :class:`PodLabels`, an absent one is ``msgspec.UNSET``."""

    scheduler_address: Any = _key(vocabulary.ANN_SCHEDULER_ADDRESS)
    dashboard_url: Any = _key(vocabulary.ANN_DASHBOARD_URL)
    jupyter_url: Any = _key(vocabulary.ANN_JUPYTER_URL)
    workers_wanted: Any = _key(vocabulary.ANN_WORKERS_WANTED)
    startup_seconds: Any = _key(vocabulary.ANN_STARTUP_SECONDS)
    lease_seconds: Any = _key(vocabulary.ANN_LEASE_SECONDS)
    lifetime_seconds: Any = _key(vocabulary.ANN_LIFETIME_SECONDS)


class PodMetadata(msgspec.Struct, gc=False, rename="camel"):
    """The fields of a pod's ``metadata`` that observation reads (``managedFields``, the other
    labels and annotations and the rest are skipped while decoding, never built)."""

    name: Any = None
    labels: PodLabels | None = None
    annotations: PodAnnotations | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    deletion_grace_period_seconds: Any = None


class ContainerStateBlock(msgspec.Struct, gc=False, rename="camel", omit_defaults=True):
    """``waiting``, ``running`` or ``terminated`` of a container state: the fields the rules read."""

    reason: Any = None
    message: Any = None
    exit_code: Any = None
    signal: Any = None
    started_at: Time | None = None
    finished_at: Time | None = None


class ContainerState(msgspec.Struct, gc=False, omit_defaults=True):
    waiting: ContainerStateBlock | None = None
    running: ContainerStateBlock | None = None
    terminated: ContainerStateBlock | None = None


class ContainerStatus(msgspec.Struct, gc=False, rename="camel", omit_defaults=True):
    """One entry of ``status.containerStatuses``; its image, IDs, resources and mounts are skipped.

    The rules read these Structs directly (``status.state.waiting.reason``): no dict per
    container is built. ``omit_defaults``: :func:`container_dicts` shows them as the JSON the
    API sent, only the fields it sent.
    """

    name: Any = None
    ready: Any = None
    started: Any = None
    restart_count: Any = None
    state: ContainerState | None = None
    last_state: ContainerState | None = None


class PodStatus(msgspec.Struct, gc=False, rename="camel"):
    """The fields of a pod's ``status`` that observation reads."""

    phase: Any = None
    reason: Any = None
    message: Any = None
    start_time: Time | None = None
    conditions: tuple[PodCondition, ...] | None = None
    container_statuses: tuple[ContainerStatus, ...] | None = None
    init_container_statuses: tuple[ContainerStatus, ...] | None = None


class PodRecord(msgspec.Struct, gc=False):
    """One listed pod, decoded straight into what observation reads (no dict per pod, no spec).

    Every leaf but the timestamps is typed ``Any``: a value of an unexpected type reaches the
    readers of ``orchestrator.session.pods``, which treat it as "not known". Only a wrong
    container type (``metadata`` not an object, ``conditions`` not a list) or an unreadable
    timestamp (:data:`Time`) fails the typed decoding; that pod is then decoded as plain JSON
    (see :meth:`Kube.list_pod_states_at`) and :func:`record_of` reads it into a record all the
    same, dropping what is not of its container type and what is not a time.

    ``gc=False`` (here and in every nested record): a record holds no reference cycle, and the
    collector need not track the tens of thousands a cycle decodes. Lists of records are decoded
    as tuples for the same reason: the collector stops tracking a tuple of untracked records the
    first time it sees it, a list it would scan again in every older generation.
    """

    metadata: PodMetadata | None = None
    status: PodStatus | None = None


class _PodList(msgspec.Struct, gc=False):
    items: list[PodRecord] | None = None


class _RawList(msgspec.Struct, gc=False):
    items: list[msgspec.Raw] | None = None


class Decodes(Protocol):
    """What :meth:`Kube.request_at` needs of a decoder (``msgspec.json.Decoder`` has it)."""

    def decode(self, buf: bytes, /) -> Any: ...


_JSON: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder()
_POD_RECORD: Final = msgspec.json.Decoder(PodRecord)
_POD_LIST: Final = msgspec.json.Decoder(_PodList)
_RAW_LIST: Final = msgspec.json.Decoder(_RawList)


class _PodStates:
    """Decodes a PodList into records in ONE typed call; pod by pod only if a pod is odd."""

    @staticmethod
    def decode(buf: bytes, /) -> list[PodRecord | dict[str, Any]]:
        try:
            return typing.cast("list[PodRecord | dict[str, Any]]", _POD_LIST.decode(buf).items or [])
        except msgspec.DecodeError:
            pass
        items = _RAW_LIST.decode(buf).items  # not JSON at all: DecodeError, as for any answer
        return [_one_pod_state(raw) for raw in items or ()]


_POD_STATES: Final = _PodStates()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a JSON answer is decoded (see the module doc).

    Only the caller that paused it resumes it, so a collector disabled on purpose elsewhere
    stays disabled; a decode in another thread at the same time merely runs with it paused.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def container_dicts(statuses: Sequence[ContainerStatus] | None) -> tuple[dict[str, Any], ...]:
    """Decoded container statuses as plain JSON objects, only the fields sent (for messages and
    tests; the rules read the Structs themselves)."""
    if not statuses:
        return ()
    return tuple(msgspec.to_builtins(statuses))


def _one_pod_state(raw: msgspec.Raw) -> PodRecord | dict[str, Any]:
    """One pod of a LIST: a :class:`PodRecord`, or its plain metadata and status if its shape is odd."""
    try:
        return _POD_RECORD.decode(raw)
    except msgspec.DecodeError:
        pass
    pod = _JSON.decode(raw)
    if not isinstance(pod, dict):
        return {}
    metadata = pod.get("metadata")
    if isinstance(metadata, dict):
        metadata = {k: v for k, v in metadata.items() if k != "managedFields"}
    return {k: v for k, v in (("metadata", metadata), ("status", pod.get("status"))) if k in pod}


def record_of(pod: Mapping[str, Any]) -> PodRecord:
    """A pod given as plain JSON (any shape) as the :class:`PodRecord` its typed decoding makes.

    Where the decoding would refuse the pod, the odd part is dropped instead: a level that is
    not an object is "not known" (None), an entry of a list that is not an object is skipped, a
    timestamp is read by :func:`timestamp`; the other leaves are kept whatever their type, as
    the decoding keeps them.
    """
    try:
        return msgspec.convert(pod, PodRecord)
    except (msgspec.ValidationError, TypeError):
        record = _lenient(pod, PodRecord)
        assert isinstance(record, PodRecord)
        return record


def _lenient(value: object, cls: type[msgspec.Struct]) -> msgspec.Struct | None:
    """:func:`record_of` of one level: ``cls`` from a mapping, its odd parts dropped; else None."""
    if not isinstance(value, Mapping):
        return None
    fields: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        if field.encode_name not in value:
            continue
        item, shape = value[field.encode_name], _SHAPES[cls][field.name]
        if shape is None:
            fields[field.name] = item
        elif shape is datetime:
            fields[field.name] = timestamp(item)
        elif isinstance(shape, list):
            kept = [_lenient(entry, shape[0]) for entry in item] if isinstance(item, list) else None
            fields[field.name] = None if kept is None else tuple([entry for entry in kept if entry is not None])
        else:
            fields[field.name] = _lenient(item, shape)
    return cls(**fields)


def _shape(kind: Any) -> Any:
    """How :func:`_lenient` reads a field of this type: None (any value), datetime (a
    timestamp), [Struct] (a tuple of records) or Struct."""
    for option in typing.get_args(kind) or (kind,):
        if option is Time:
            return datetime
        if isinstance(option, type) and issubclass(option, msgspec.Struct):
            return option
        origin = typing.get_origin(option)
        if origin is tuple:
            return [typing.get_args(option)[0]]
    return None


_SHAPES: Final[dict[type[msgspec.Struct], dict[str, Any]]] = {
    cls: {field.name: _shape(field.type) for field in msgspec.structs.fields(cls)}
    for cls in (
        PodRecord,
        PodMetadata,
        PodLabels,
        PodAnnotations,
        PodStatus,
        PodCondition,
        ContainerStatus,
        ContainerState,
        ContainerStateBlock,
    )
}


def timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp (text, or a datetime already) as an aware datetime, a naive one
    taken as UTC (Kubernetes times are UTC); anything else None."""
    if isinstance(value, datetime):
        when: datetime | None = value
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return when if when is None or when.tzinfo is not None else when.replace(tzinfo=UTC)


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def _date(headers: Any) -> datetime | None:
    """The HTTP `Date` header as an aware UTC datetime (None when absent or malformed)."""
    if not headers:
        return None
    try:
        value = headers.get("Date") or headers.get("date")
    except AttributeError:
        return None
    if not value:
        return None
    try:
        date = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return date if date.tzinfo is not None else date.replace(tzinfo=UTC)


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message", ""))[:500]
    except (TypeError, ValueError, AttributeError):
        return ""


def names(objects: Iterable[tuple[Kind, Mapping[str, Any]]]) -> list[str]:
    """`Kind/name` of listed objects, for messages."""
    return [f"{kind.name}/{obj.get('metadata', {}).get('name')}" for kind, obj in objects]
