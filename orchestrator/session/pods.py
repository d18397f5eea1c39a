"""Reading pods ONCE per pod, into typed records; a missing or odd field means "not known".

Every pod, whether the monitor's LIST decoded it straight into a :class:`~orchestrator.kube.PodRecord`
or it came as a plain dict (tests, recorded pods, a pod the typed decoding refused), is read
into one :class:`PodRecord` (:func:`~orchestrator.kube.record_of` for a dict: the same record the
decoding makes, its odd parts dropped) and then into a frozen :class:`PodView` holding
everything the rules ask about (component, phase, readiness, the main container's status,
deletion, timestamps). The rules then read the view and its container records by attribute:
no label is parsed twice, no dict is built per container, no timestamp is parsed (they are
datetimes or None already), and there is no defensive reader per field (the record's shape is
guaranteed; only its other leaves may be of an odd type, and the few leaves the rules compare or
compute with are checked where they are read). Labels and annotations are the records
:class:`~orchestrator.kube.PodLabels` and :class:`~orchestrator.kube.PodAnnotations` (an absent
key is ``msgspec.UNSET``); several pods' are merged by :func:`first_set`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeGuard, TypeVar

import msgspec

from orchestrator.kube import (
    ContainerStateBlock,
    ContainerStatus,
    PodAnnotations,
    PodCondition,
    PodLabels,
    PodMetadata,
    PodRecord,
    PodStatus,
    collector_paused,
    record_of,
)
from orchestrator.session.vocabulary import (
    APP_NAME,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    NAME_LABEL,
    PRIORITY,
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
    """``isinstance(value, Mapping)`` with a fast path for plain dicts (the ABC check is slow)."""
    return type(value) is dict or isinstance(value, Mapping)


def get(obj: object, *keys: str) -> Any:
    """``obj[k1][k2]...`` or None as soon as a level is not a mapping (for Services and events)."""
    for key in keys:
        if not is_mapping(obj):
            return None
        obj = obj.get(key)
    return obj


def aware(now: datetime) -> datetime:
    """``now`` as an aware datetime; a naive one is taken as UTC (Kubernetes times are UTC)."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def to_int(value: object) -> int | None:
    """An int from an int or a numeric string (annotations are strings); else None."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def to_seconds(value: object) -> float | None:
    """A number of seconds from a number or a numeric string; else None."""
    if type(value) is str:
        try:
            return float(value.strip())
        except ValueError:
            return None
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


def terminated(status: ContainerStatus | None, *, last: bool = False) -> ContainerStateBlock | None:
    """The ``terminated`` block of a container status' current (or last) state."""
    if status is None:
        return None
    state = status.last_state if last else status.state
    return None if state is None else state.terminated


def waiting(status: ContainerStatus) -> ContainerStateBlock | None:
    """The ``waiting`` block of a container status' current state."""
    state = status.state
    return None if state is None else state.waiting


def is_running(status: ContainerStatus | None) -> bool:
    """The container's current state is ``running``."""
    state = None if status is None else status.state
    return state is not None and state.running is not None


def exit_code(block: ContainerStateBlock | None) -> int | None:
    return None if block is None else to_int(block.exit_code)


def finished_at(block: ContainerStateBlock | None) -> datetime | None:
    return None if block is None else block.finished_at


def describe(ended: ContainerStateBlock) -> str:
    """``exited with code N (Reason)`` for a terminated block."""
    reason = ended.reason
    text = f"exited with code {to_int(ended.exit_code)}"
    return f"{text} ({reason})" if isinstance(reason, str) and reason else text


# --------------------------------------------------------------------------------------------
# one pod, read once


class PodView(msgspec.Struct, frozen=True, gc=False):
    """What the rules need to know about one pod, read once from its record (or dict).

    A frozen msgspec Struct rather than a frozen dataclass: the monitor builds one per listed pod
    (tens of thousands a cycle) and a Struct is built in C, without a ``__setattr__`` per field.
    ``main``, ``containers``, ``init_containers`` and ``scheduled`` are the pod's own records
    (:class:`~orchestrator.kube.ContainerStatus`, :class:`~orchestrator.kube.PodCondition`).

    ``was_ready`` is True when the pod is Ready now, or a container of it has run and its Ready
    condition turned False after the pod had started (later than its PodScheduled/Initialized
    transitions): it was Ready and lost it. A pod that never became Ready keeps the Ready=False
    transition of its start. (Transitions within one second cannot be told apart; such a pod
    counts as never Ready.)
    ``skew_behind`` is how many seconds the earliest kubelet timestamp lies before the pod's
    own creationTimestamp (impossible without a node clock running behind the API server's).
    ``rank`` orders the pods most important component first (scheduler, pilot, ...).
    """

    name: str
    component: str | None
    labels: PodLabels
    annotations: PodAnnotations
    phase: str | None
    reason: str | None
    status_message: str | None
    created: datetime | None
    deletion_timestamp: datetime | None
    deletion_requested: datetime | None
    ready: bool
    ready_since: datetime | None
    was_ready: bool
    scheduled: PodCondition | None
    main: ContainerStatus | None
    containers: Sequence[ContainerStatus]
    init_containers: Sequence[ContainerStatus]
    latest_transition: datetime | None
    latest_time: datetime | None
    skew_behind: float
    rank: int = 9

    @property
    def deleting(self) -> bool:
        """A delete was requested (drain, eviction, preemption, ``kubectl delete``, uninstall)."""
        return self.deletion_timestamp is not None

    @property
    def restarts(self) -> int:
        return (to_int(self.main.restart_count) or 0) if self.main is not None else 0

    def failure_counts(self, when: datetime | None) -> bool:
        """A failure counts unless the pod is being deleted and it did not clearly happen before."""
        return self.deletion_requested is None or (when is not None and when < self.deletion_requested)

    def failure_time(self) -> datetime | None:
        """The main container's finishedAt, else the pod's latest condition transition."""
        ended = finished_at(terminated(self.main))
        return ended if ended is not None else self.latest_transition


def read_pod(pod: Pod | PodRecord) -> PodView:
    """Read one pod (a dict of any shape, or a decoded :class:`PodRecord`) into a :class:`PodView`."""
    if type(pod) is PodRecord:
        return read_record(pod)
    if isinstance(pod, PodRecord):
        return read_record(pod)
    return read_record(record_of(pod))


_NO_METADATA: Final = PodMetadata()
NO_LABELS: Final = PodLabels()
NO_ANNOTATIONS: Final = PodAnnotations()
_NO_STATUS: Final = PodStatus()
_NO_CONTAINERS: Final[tuple[ContainerStatus, ...]] = ()
_EMPTY_BLOCK: Final = ContainerStateBlock()


def _has_run(block: ContainerStateBlock | None) -> bool:
    """A ``terminated`` block says the container ran; the API always sends its ``exitCode``,
    so an empty one says nothing."""
    return block is not None and block != _EMPTY_BLOCK


def read_record(record: PodRecord) -> PodView:
    """The :class:`PodView` of one record: the hot path of a monitor cycle (once per listed pod).

    Every field is visited once and the kubelet timestamps are reduced to their min and max on
    the way (decoded as datetimes already: nothing is parsed here).
    """
    metadata = record.metadata or _NO_METADATA
    status = record.status or _NO_STATUS
    labels = metadata.labels if metadata.labels is not None else NO_LABELS
    label = labels.component
    component = label if type(label) is str or isinstance(label, str) else None
    transitions: dict[str, datetime | None] = {}
    ready = False
    scheduled: PodCondition | None = None
    for condition in status.conditions or ():
        kind = condition.kind
        if type(kind) is str or isinstance(kind, str):
            # the last condition of a type wins
            transitions[kind] = condition.last_transition_time
            if kind == "Ready":
                ready = condition.status == "True"
            elif kind == "PodScheduled":
                scheduled = condition
    containers = status.container_statuses or _NO_CONTAINERS
    init_containers = status.init_container_statuses or _NO_CONTAINERS

    # the main container (named after the component, else the first), whether an app container
    # has run, and every container's startedAt/finishedAt (reduced to their min and max below)
    main = containers[0] if containers else None
    main_found = ran = False
    stamps: list[datetime] = []
    for container in containers:
        if not main_found and container.name == label:
            main, main_found = container, True
        state, last = container.state, container.last_state
        if not ran:
            if state is not None:
                ran = state.running is not None or _has_run(state.terminated)
            if not ran and last is not None:
                ran = _has_run(last.terminated)
    for container in (*containers, *init_containers) if init_containers else containers:
        for held in (container.state, container.last_state):
            if held is not None:
                for block in (held.waiting, held.running, held.terminated):
                    if block is not None:
                        if block.started_at is not None:
                            stamps.append(block.started_at)
                        if block.finished_at is not None:
                            stamps.append(block.finished_at)
    low, high = (min(stamps), max(stamps)) if stamps else (None, None)

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
    for when in (status.start_time, low, high):
        if when is not None:
            if earliest is None or when < earliest:
                earliest = when
            if latest is None or when > latest:
                latest = when
    was_ready = ready or (ran and ready_changed is not None and started is not None and ready_changed > started)

    created = metadata.creation_timestamp
    skew_behind = (
        max(0.0, (created - earliest).total_seconds()) if created is not None and earliest is not None else 0.0
    )
    if created is not None and (latest is None or created > latest):
        latest = created

    deletion_timestamp = metadata.deletion_timestamp
    deletion_requested = None
    if deletion_timestamp is not None:
        seconds = to_int(metadata.deletion_grace_period_seconds) or 0
        deletion_requested = deletion_timestamp - timedelta(seconds=max(seconds, 0))

    name, phase, pod_reason, pod_message = metadata.name, status.phase, status.reason, status.message
    return PodView(
        name=name if isinstance(name, str) else "?",
        component=component,
        labels=labels,
        annotations=metadata.annotations if metadata.annotations is not None else NO_ANNOTATIONS,
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
        rank=PRIORITY.get(component, 9) if component is not None else 9,
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
        if type(pod) is PodRecord or isinstance(pod, PodRecord):
            labels = pod.metadata.labels if pod.metadata is not None else None
            if labels is None:
                continue
            release, app = labels.instance, labels.name
        else:
            found = get(pod, "metadata", "labels")
            if not is_mapping(found):
                continue
            release, app = found.get(INSTANCE_LABEL), found.get(NAME_LABEL)
        if app != APP_NAME or not isinstance(release, str) or not release:
            continue
        group = groups.get(release)
        if group is None:
            group = groups[release] = []
        if isinstance(pod, PodRecord):
            group.append(read_record(pod))
        else:
            group.append(dict(pod))
    return groups


_Keys = TypeVar("_Keys", PodLabels, PodAnnotations)


def first_set(records: Sequence[_Keys], empty: _Keys) -> _Keys:
    """Labels (or annotations) of several pods merged, the first pod that has a key giving its
    value (``empty`` when there is no pod).

    Pods of one release mostly carry the same keys: the first pod's record is returned as it is
    when no later pod adds a key it lacks, and no record is built.
    """
    if not records:
        return empty
    first = records[0]
    if len(records) == 1:
        return first
    values = list(msgspec.structs.astuple(first))
    changed = False
    for index, value in enumerate(values):
        if value is msgspec.UNSET:
            name = first.__struct_fields__[index]
            for record in records:
                found = getattr(record, name)
                if found is not msgspec.UNSET:
                    values[index], changed = found, True
                    break
    return type(first)(*values) if changed else first


def merged_annotations(views: Sequence[PodView]) -> PodAnnotations:
    """The annotations of the given pods, the first pod's value winning."""
    return first_set([view.annotations for view in views], NO_ANNOTATIONS)


def merged_labels(views: Sequence[PodView]) -> PodLabels:
    """The labels of the given pods, the first pod's value winning."""
    return first_set([view.labels for view in views], NO_LABELS)


def session_annotations(pods: Iterable[Pod | PodView]) -> PodAnnotations:
    """The merged annotations of the session pods (hooks and tests left out), the first pod's
    value winning.

    Reads only the labels and annotations of a pod dict: the deadline checks run over every
    session of a namespace after the rules, a second full read of each pod would double the cost.
    """
    found: list[PodAnnotations] = []
    for pod in pods:
        if type(pod) is PodView or isinstance(pod, PodView):
            if pod.component in SESSION_COMPONENTS:
                found.append(pod.annotations)
            continue
        labels = get(pod, "metadata", "labels")
        component = labels.get(COMPONENT_LABEL) if is_mapping(labels) else None
        if isinstance(component, str) and component in SESSION_COMPONENTS:
            found.append(annotations_of(get(pod, "metadata", "annotations")))
    return first_set(found, NO_ANNOTATIONS)


def annotations_of(annotations: object) -> PodAnnotations:
    """A pod's annotations given as a mapping (any shape; anything else counts as none) as the
    :class:`~orchestrator.kube.PodAnnotations` their decoding makes."""
    metadata = record_of({"metadata": {"annotations": annotations}}).metadata
    found = None if metadata is None else metadata.annotations
    return NO_ANNOTATIONS if found is None else found


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
                detail = f": container {status.name} {describe(ended)}"
        return Reason.HOOK_FAILED, f"{component} hook pod {name} failed{detail}"
    scheduled = view.scheduled
    if scheduled is not None and scheduled.status == "False":
        detail = scheduled.message or scheduled.reason or "not scheduled"
        if scheduled.reason == Reason.UNSCHEDULABLE:
            return Reason.UNSCHEDULABLE, f"{component} pod {name} is unschedulable: {detail}"
        return None, f"{component} pod {name} is not scheduled yet: {detail}"
    creating: str | None = None
    for status in (*view.init_containers, *view.containers):
        block = waiting(status)
        reason = None if block is None else block.reason
        if not isinstance(reason, str):
            continue
        message = block.message if block is not None else None
        where = f"container {status.name} of {component} pod {name}"
        if reason in WAITING_PROBLEMS:
            last = terminated(status, last=True)
            if reason == Reason.CRASH_LOOP_BACK_OFF and last is not None:
                text = f"{where}: CrashLoopBackOff, last {describe(last)}"
                if last.reason == Reason.OOM_KILLED:
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
