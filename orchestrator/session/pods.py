"""Reading pod dicts (Kubernetes API JSON, camelCase) defensively, ONCE per pod.

A missing or odd field means "not known", never a crash. :func:`read_pod` turns one pod into a
frozen :class:`PodView` holding everything the rules ask about (component, phase, readiness,
the main container's status, deletion, timestamps), so the rules never parse labels and
conditions again: the monitor derives every session of a namespace from one LIST (thousands of
pods) each cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, TypeGuard

import msgspec

from orchestrator.kube import (
    ContainerStateBlock,
    ContainerStatus,
    PodMetadata,
    PodRecord,
    PodStatus,
    collector_paused,
    container_dicts,
)
from orchestrator.session.vocabulary import (
    APP_NAME,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    NAME_LABEL,
    SESSION_COMPONENTS,
    Reason,
)

Pod = Mapping[str, Any]

MESSAGE_MAX: Final = 400

WAITING_PROBLEMS: Final = frozenset(
    {
        Reason.IMAGE_PULL_BACK_OFF,
        Reason.ERR_IMAGE_PULL,
        Reason.INVALID_IMAGE_NAME,
        Reason.CREATE_CONTAINER_CONFIG_ERROR,
        Reason.CREATE_CONTAINER_ERROR,
        Reason.CRASH_LOOP_BACK_OFF,
    }
)
CREATING: Final = frozenset({"ContainerCreating", "PodInitializing"})
MOUNT_EVENTS: Final = frozenset({"FailedMount", "FailedAttachVolume"})
# conditions whose transition marks the pod's start; a Ready=False later than all of them means
# the pod was Ready before and lost it
_START_CONDITIONS: Final = ("PodScheduled", "Initialized", "PodReadyToStartContainers")


# --------------------------------------------------------------------------------------------
# scalar readers


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)`` with a fast path for plain dicts (the ABC check is slow,
    and the monitor makes millions of them per cycle)."""
    return type(value) is dict or isinstance(value, Mapping)


def get(obj: object, *keys: str) -> Any:
    """``obj[k1][k2]...`` or None as soon as a level is not a mapping."""
    for key in keys:
        if not is_mapping(obj):
            return None
        obj = obj.get(key)
    return obj


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (naive taken as UTC); anything else None."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_time(value)


@lru_cache(maxsize=65536)
def _parse_time(value: str) -> datetime | None:
    # cached: the pods of one cycle share most of their timestamps (one-second resolution)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def aware(now: datetime) -> datetime:
    """``now`` as an aware datetime; a naive one is taken as UTC (Kubernetes times are UTC)."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def to_int(value: object) -> int | None:
    """An int from an int or a numeric string (annotations are strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def to_seconds(value: object) -> float | None:
    """A number of seconds from a number or a numeric string; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """One line, bounded: messages end up in Harvester's 256-char diagnostics and table cells."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."


def terminated(status: Mapping[str, Any] | None, *, last: bool = False) -> Mapping[str, Any] | None:
    """The ``terminated`` block of a container status' current (or last) state."""
    value = get(status, "lastState" if last else "state", "terminated")
    return value if isinstance(value, Mapping) else None


def describe(ended: Mapping[str, Any]) -> str:
    """``exited with code N (Reason)`` for a terminated block."""
    code = to_int(ended.get("exitCode"))
    reason = ended.get("reason")
    text = f"exited with code {code}"
    return f"{text} ({reason})" if isinstance(reason, str) and reason else text


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    return value if isinstance(value, Mapping) else {}


def _mappings(value: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple([v for v in value if type(v) is dict or isinstance(v, Mapping)])


# --------------------------------------------------------------------------------------------
# one pod, read once


class PodView(msgspec.Struct, frozen=True, gc=False):
    """What the rules need to know about one pod, read once from its dict or record.

    A frozen msgspec Struct rather than a frozen dataclass: the monitor builds one per listed pod
    (tens of thousands a cycle) and a Struct is built in C, without a ``__setattr__`` per field.

    ``was_ready`` is True when the pod is Ready now, or a container of it has run and its Ready
    condition turned False after the pod had started (later than its PodScheduled/Initialized
    transitions): it was Ready and lost it. A pod that never became Ready keeps the Ready=False
    transition of its start. (Transitions within one second cannot be told apart; such a pod
    counts as never Ready.)
    ``skew_behind`` is how many seconds the earliest kubelet timestamp lies before the pod's
    own creationTimestamp (impossible without a node clock running behind the API server's).
    """

    name: str
    component: str | None
    labels: Mapping[str, Any]
    annotations: Mapping[str, Any]
    phase: str | None
    reason: str | None
    status_message: str | None
    created: datetime | None
    deletion_timestamp: datetime | None
    deletion_requested: datetime | None
    ready: bool
    ready_since: datetime | None
    was_ready: bool
    scheduled: Mapping[str, Any] | None
    main: Mapping[str, Any] | None
    containers: tuple[Mapping[str, Any], ...]
    init_containers: tuple[Mapping[str, Any], ...]
    latest_transition: datetime | None
    latest_time: datetime | None
    skew_behind: float

    @property
    def deleting(self) -> bool:
        """A delete was requested (drain, eviction, preemption, ``kubectl delete``, uninstall)."""
        return self.deletion_timestamp is not None

    @property
    def restarts(self) -> int:
        return to_int(get(self.main, "restartCount")) or 0

    def failure_counts(self, when: datetime | None) -> bool:
        """A failure counts unless the pod is being deleted and it did not clearly happen before."""
        return self.deletion_requested is None or (when is not None and when < self.deletion_requested)

    def failure_time(self) -> datetime | None:
        """The main container's finishedAt, else the pod's latest condition transition."""
        ended = parse_time(get(terminated(self.main), "finishedAt"))
        return ended if ended is not None else self.latest_transition


def _time(value: object) -> datetime | None:
    """:func:`parse_time` with the common case (a non-empty ``str``) first."""
    if type(value) is str:
        return _parse_time(value) if value else None
    return parse_time(value)


def read_pod(pod: Pod | PodRecord) -> PodView:
    """Read one pod (a dict of any shape, or a decoded :class:`PodRecord`) into a :class:`PodView`.

    The hot path of a monitor cycle (once per listed pod): every field is visited once, with
    plain-dict fast paths, and the kubelet timestamps are reduced to their min and max on the way.
    """
    if type(pod) is PodRecord:
        return read_record(pod)
    metadata = _mapping(pod.get("metadata") if type(pod) is dict else get(pod, "metadata"))
    status = _mapping(pod.get("status") if type(pod) is dict else get(pod, "status"))
    conditions: dict[str, Mapping[str, Any]] = {}
    raw_conditions = status.get("conditions")
    if isinstance(raw_conditions, list):
        for condition in raw_conditions:
            if is_mapping(condition):
                kind = condition.get("type")
                if isinstance(kind, str):
                    conditions[kind] = condition
    ready_condition = conditions.get("Ready")
    labels = _mapping(metadata.get("labels"))
    containers = _mappings(status.get("containerStatuses"))
    init_containers = _mappings(status.get("initContainerStatuses"))
    main, ran, stamps = _scan_dicts(containers, init_containers, labels.get(COMPONENT_LABEL))
    return _view(
        metadata.get("name"),
        labels,
        _mapping(metadata.get("annotations")),
        metadata.get("creationTimestamp"),
        metadata.get("deletionTimestamp"),
        metadata.get("deletionGracePeriodSeconds"),
        status,
        {kind: _time(condition.get("lastTransitionTime")) for kind, condition in conditions.items()},
        ready_condition is not None and ready_condition.get("status") == "True",
        conditions.get("PodScheduled"),
        main,
        containers,
        init_containers,
        ran,
        stamps,
    )


_NO_METADATA: Final = PodMetadata()
_NO_STATUS: Final = PodStatus()


def read_record(record: PodRecord) -> PodView:
    """:func:`read_pod` for a pod decoded straight into a :class:`PodRecord` (attributes, no dicts)."""
    metadata = record.metadata or _NO_METADATA
    status = record.status or _NO_STATUS
    transitions: dict[str, datetime | None] = {}
    ready = False
    scheduled: Mapping[str, Any] | None = None
    for condition in status.conditions or ():
        kind = condition.kind
        if type(kind) is str or isinstance(kind, str):
            # the last condition of a type wins, as in read_pod's mapping by type
            transitions[kind] = _time(condition.last_transition_time)
            if kind == "Ready":
                ready = condition.status == "True"
            elif kind == "PodScheduled":
                scheduled = {"status": condition.status, "reason": condition.reason, "message": condition.message}
    labels = metadata.labels if metadata.labels is not None else {}
    statuses, init_statuses = status.container_statuses or (), status.init_container_statuses or ()
    main_index, ran, stamps = _scan_records(statuses, init_statuses, labels.get(COMPONENT_LABEL))
    containers = container_dicts(status.container_statuses)
    return _view(
        metadata.name,
        labels,
        metadata.annotations if metadata.annotations is not None else {},
        metadata.creation_timestamp,
        metadata.deletion_timestamp,
        metadata.deletion_grace_period_seconds,
        status,
        transitions,
        ready,
        scheduled,
        containers[main_index] if containers else None,
        containers,
        container_dicts(status.init_container_statuses),
        ran,
        stamps,
    )


def _scan_dicts(
    containers: tuple[Mapping[str, Any], ...], init_containers: tuple[Mapping[str, Any], ...], component: object
) -> tuple[Mapping[str, Any] | None, bool, list[datetime]]:
    """(the main container: the one named after the component, else the first; whether an app
    container has run; every container's parsed startedAt/finishedAt) of container dicts."""
    ran = False
    main: Mapping[str, Any] | None = containers[0] if containers else None
    main_found = False
    stamps: list[datetime] = []
    for index, container in enumerate((*containers, *init_containers)):
        is_app = index < len(containers)
        if is_app and not main_found and container.get("name") == component:
            main, main_found = container, True
        for key in ("state", "lastState"):
            state = container.get(key)
            if not is_mapping(state):
                continue
            if is_app and not ran:
                if key == "state" and isinstance(state.get("running"), Mapping):
                    ran = True
                else:
                    block = state.get("terminated")
                    ran = isinstance(block, Mapping) and bool(block)
            for block in state.values():
                if is_mapping(block):
                    for stamp in (block.get("startedAt"), block.get("finishedAt")):
                        when = _time(stamp)
                        if when is not None:
                            stamps.append(when)
    return main, ran, stamps


def _scan_records(
    statuses: Sequence[ContainerStatus], init_statuses: Sequence[ContainerStatus], component: object
) -> tuple[int, bool, list[datetime]]:
    """:func:`_scan_dicts` over decoded container statuses; the main container by its index.

    A ``terminated`` block counts as "has run" when it holds a field the rules read (the API
    always sends its required ``exitCode``); the dict scan asks for any field.
    """
    ran = False
    main_index = 0
    main_found = False
    stamps: list[datetime] = []
    count = len(statuses)
    for index, container in enumerate((*statuses, *init_statuses)):
        is_app = index < count
        if is_app and not main_found and container.name == component:
            main_index, main_found = index, True
        for current, state in ((True, container.state), (False, container.last_state)):
            if state is None:
                continue
            if is_app and not ran:
                if current and state.running is not None:
                    ran = True
                else:
                    block = state.terminated
                    ran = block is not None and block != _EMPTY_BLOCK
            for block in (state.waiting, state.running, state.terminated):
                if block is not None:
                    for stamp in (block.started_at, block.finished_at):
                        if stamp is not None:
                            when = _time(stamp)
                            if when is not None:
                                stamps.append(when)
    return main_index, ran, stamps


_EMPTY_BLOCK: Final = ContainerStateBlock()


def _view(
    name: object,
    labels: Mapping[str, Any],
    annotations: Mapping[str, Any],
    creation: object,
    deletion: object,
    grace: object,
    status: Mapping[str, Any] | PodStatus,
    transitions: dict[str, datetime | None],
    ready: bool,
    scheduled: Mapping[str, Any] | None,
    main: Mapping[str, Any] | None,
    containers: tuple[Mapping[str, Any], ...],
    init_containers: tuple[Mapping[str, Any], ...],
    ran: bool,
    stamps: list[datetime],
) -> PodView:
    """The :class:`PodView` of one pod's fields, whichever way they were decoded.

    ``transitions`` maps each condition type to its parsed lastTransitionTime; ``main``, ``ran``
    and ``stamps`` (the containers' parsed startedAt/finishedAt) come from a container scan.
    """
    component = labels.get(COMPONENT_LABEL)
    component = component if isinstance(component, str) else None
    if type(status) is PodStatus:
        phase, pod_reason, pod_message, start_time = status.phase, status.reason, status.message, status.start_time
    else:
        assert not isinstance(status, PodStatus)
        phase, pod_reason, pod_message = status.get("phase"), status.get("reason"), status.get("message")
        start_time = status.get("startTime")
    ready_changed = transitions.get("Ready")
    started: datetime | None = None
    for kind in _START_CONDITIONS:
        when = transitions.get(kind)
        if when is not None and (started is None or when > started):
            started = when
    # the kubelet's timestamps (node clocks): condition transitions, startTime, container times
    changes = [when for when in transitions.values() if when is not None]
    latest_transition = max(changes) if changes else None
    earliest = min(changes) if changes else None
    latest = latest_transition
    when = _time(start_time)
    if when is not None:
        if earliest is None or when < earliest:
            earliest = when
        if latest is None or when > latest:
            latest = when

    if stamps:
        low, high = min(stamps), max(stamps)
        earliest = low if earliest is None or low < earliest else earliest
        latest = high if latest is None or high > latest else latest
    was_ready = ready or (
        ran and ready_changed is not None and started is not None and ready_changed > started
    )

    created = _time(creation)
    skew_behind = (
        max(0.0, (created - earliest).total_seconds()) if created is not None and earliest is not None else 0.0
    )
    if created is not None and (latest is None or created > latest):
        latest = created

    deletion_timestamp = _time(deletion)
    deletion_requested = None
    if deletion_timestamp is not None:
        seconds = to_int(grace) or 0
        deletion_requested = deletion_timestamp - timedelta(seconds=max(seconds, 0))

    return PodView(
        name=name if isinstance(name, str) else "?",
        component=component,
        labels=labels,
        annotations=annotations,
        phase=phase if isinstance(phase, str) else None,
        reason=pod_reason if isinstance(pod_reason, str) and pod_reason else None,
        status_message=pod_message if isinstance(pod_message, str) and pod_message else None,
        created=created,
        deletion_timestamp=deletion_timestamp,
        deletion_requested=deletion_requested,
        ready=ready,
        ready_since=ready_changed if ready else None,
        was_ready=was_ready,
        scheduled=scheduled,
        main=main,
        containers=containers,
        init_containers=init_containers,
        latest_transition=latest_transition,
        latest_time=latest,
        skew_behind=skew_behind,
    )


# --------------------------------------------------------------------------------------------
# many pods


def group_pods_by_release(pods: Iterable[Pod | PodRecord]) -> dict[str, list[Pod | PodView]]:
    """Pods of this chart (name label ``dask-panda-session``) keyed by their instance label.

    Hook and test pods are kept in their release's group: the rules ignore them for the phase
    but use them to explain a failure (a failed prepare hook) or a deletion in progress (the
    pre-delete cleanup hook). Pods of other applications are dropped. A pod dict is kept as a
    (shallow) copy; a decoded :class:`PodRecord` is read into its :class:`PodView` here, once,
    since its labels are at hand (the rules and the deadline checks then share the view).
    """
    with collector_paused():  # thousands of new, acyclic views: see orchestrator.kube
        return _group(pods)


def _group(pods: Iterable[Pod | PodRecord]) -> dict[str, list[Pod | PodView]]:
    groups: dict[str, list[Pod | PodView]] = {}
    for pod in pods:
        if type(pod) is PodRecord:
            labels: Mapping[str, Any] = (pod.metadata.labels if pod.metadata is not None else None) or {}
        else:
            labels = _mapping(get(pod, "metadata", "labels"))
        release = labels.get(INSTANCE_LABEL)
        if labels.get(NAME_LABEL) != APP_NAME or not isinstance(release, str) or not release:
            continue
        group = groups.get(release)
        if group is None:
            group = groups[release] = []
        if isinstance(pod, PodRecord):
            group.append(read_record(pod))
        else:
            group.append(dict(pod))
    return groups


def merged_annotations(views: Sequence[PodView]) -> dict[str, Any]:
    """The annotations of the given pods, the first pod's value winning."""
    merged: dict[str, Any] = {}
    for view in reversed(views):  # later updates win: the first pod's value is written last
        merged.update(view.annotations)
    return merged


def session_annotations(pods: Iterable[Pod | PodView]) -> dict[str, Any]:
    """The merged annotations of the session pods (hooks and tests left out).

    Reads only the labels and annotations of a pod dict: the deadline checks run over every
    session of a namespace after the rules, a second full read of each pod would double the cost.
    """
    merged: dict[str, Any] = {}
    for pod in pods:
        if isinstance(pod, PodView):
            component, annotations = pod.component, pod.annotations
        else:
            metadata = _mapping(pod.get("metadata") if type(pod) is dict else get(pod, "metadata"))
            component = _mapping(metadata.get("labels")).get(COMPONENT_LABEL)
            if not isinstance(component, str) or component not in SESSION_COMPONENTS:
                continue
            annotations = _mapping(metadata.get("annotations"))
        if component in SESSION_COMPONENTS:
            for key, value in annotations.items():
                merged.setdefault(key, value)
    return merged


def pod_events(events: Sequence[Mapping[str, Any]] | None, view: PodView) -> list[Mapping[str, Any]]:
    """The events about one pod (by name)."""
    if not events:
        return []
    return [e for e in events if isinstance(e, Mapping) and get(e, "involvedObject", "name") == view.name]


def problem(view: PodView, events: Sequence[Mapping[str, Any]] | None) -> tuple[str | None, str] | None:
    """What keeps one pod from running: (reason, or None for "just stuck", message), or None.

    A failed hook; PodScheduled=False (``Unschedulable``); a waiting reason of an init or main
    container in :data:`WAITING_PROBLEMS` (``OOMKilled`` for a crash loop of an OOM-killed
    container); ``FailedMount`` when an event says so; a container stuck in ContainerCreating.
    """
    name, component = view.name, view.component or "session"
    if component in ("prepare", "cleanup") and view.phase == "Failed":
        detail = ""
        for status in view.containers:
            ended = terminated(status)
            if ended is not None:
                detail = f": container {status.get('name')} {describe(ended)}"
        return Reason.HOOK_FAILED, f"{component} hook pod {name} failed{detail}"
    scheduled = view.scheduled
    if scheduled is not None and scheduled.get("status") == "False":
        detail = scheduled.get("message") or scheduled.get("reason") or "not scheduled"
        if scheduled.get("reason") == Reason.UNSCHEDULABLE:
            return Reason.UNSCHEDULABLE, f"{component} pod {name} is unschedulable: {detail}"
        return None, f"{component} pod {name} is not scheduled yet: {detail}"
    creating: str | None = None
    for status in (*view.init_containers, *view.containers):
        waiting = get(status, "state", "waiting")
        reason = get(waiting, "reason")
        if not isinstance(reason, str):
            continue
        message = get(waiting, "message")
        where = f"container {status.get('name')} of {component} pod {name}"
        if reason in WAITING_PROBLEMS:
            last = terminated(status, last=True)
            if reason == Reason.CRASH_LOOP_BACK_OFF and last is not None:
                text = f"{where}: CrashLoopBackOff, last {describe(last)}"
                if last.get("reason") == Reason.OOM_KILLED:
                    return Reason.OOM_KILLED, text
                return reason, text
            return reason, f"{where}: {reason}" + (
                f": {message}" if isinstance(message, str) and message else ""
            )
        if reason in CREATING and creating is None:
            creating = f"{where} is still {reason}"
    if creating is not None or view.phase == "Pending":
        for event in pod_events(events, view):
            if event.get("reason") in MOUNT_EVENTS:
                return (
                    Reason.FAILED_MOUNT,
                    f"{component} pod {name}: {event.get('reason')}: {event.get('message')}",
                )
        if creating is not None:
            return None, creating
    return None
