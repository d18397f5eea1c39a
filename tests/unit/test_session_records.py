"""The monitor's compact pod records derive exactly the states the plain pod dicts do.

``Kube.list_pod_states_at`` decodes the listed pods straight into ``PodRecord`` s (typed msgspec
Structs, only the fields the rules read) and ``group_pods_by_release`` reads those into views; a
pod given as a dict (the tests, the recorded pods, a pod the typed decoding refused) is read
through ``record_of`` into the same record. Both paths must agree on every recorded pod, at every
stage of a session's life (several ``now``), and on pods with any field missing or of an odd type
(the typed decoding refuses some of those: that pod falls back to its plain JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.kube import (
    ContainerState,
    ContainerStatus,
    Kube,
    PodAnnotations,
    PodCondition,
    PodMetadata,
    PodRecord,
    record_of,
)
from orchestrator.session import derive_session, group_pods_by_release
from orchestrator.session.deadlines import apply_deadline
from orchestrator.session.pods import PodView, read_pod
from orchestrator.session.vocabulary import ANN_LEASE_SECONDS
from tests.doubles import NOW, PODS
from tests.unit.test_kube import FakeApi

pytestmark = pytest.mark.unit

FIXTURES = sorted(p.stem for p in PODS.glob("*.json"))
# from the fixtures' own time to long after every startup timeout and lifetime
NOWS = [NOW + timedelta(seconds=s) for s in (-240, 0, 900, 4 * 3600, 3 * 86400)]
_DELETE = object()
ODD: tuple[object, ...] = (_DELETE, None, "x", {})


def _items(name: str) -> list[dict[str, Any]]:
    return list(json.loads((PODS / f"{name}.json").read_text())["items"])


def _listed(items: list[dict[str, Any]]) -> list[Any]:
    pods, _ = Kube(api_client=FakeApi({"kind": "PodList", "items": items})).list_pod_states_at("ns")
    return pods


def _assert_same_states(items: list[dict[str, Any]], nows: list[Any]) -> None:
    by_dicts = group_pods_by_release(items)
    by_records = group_pods_by_release(_listed(items))
    assert sorted(by_dicts) == sorted(by_records)
    for release, pods in by_dicts.items():
        again = by_records[release]
        for now in nows:
            state = derive_session(release, "ns", pods, now=now)
            assert derive_session(release, "ns", again, now=now) == state, (release, now)
            assert apply_deadline(state, again, now) == apply_deadline(state, pods, now)


@pytest.mark.parametrize("name", FIXTURES)
def test_recorded_pods_give_the_same_states_as_records(name: str) -> None:
    items = _items(name)
    listed = _listed(items)
    assert listed and all(isinstance(p, PodRecord) for p in listed)  # the fast path, not the fallback
    _assert_same_states(items, NOWS)


def test_the_recorded_mix_is_read_into_views_when_grouped() -> None:
    items = [p for name in FIXTURES for p in _items(name)]
    groups = group_pods_by_release(_listed(items))
    assert sum(len(g) for g in groups.values()) == len(items)
    assert all(isinstance(v, PodView) for g in groups.values() for v in g)
    _assert_same_states(items, [NOW])


def _paths(node: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        keys: list[Any] = list(node)
    elif isinstance(node, list):
        keys = list(range(len(node)))
    else:
        return
    for key in keys:
        if key == "managedFields":
            continue
        yield (*prefix, key)
        yield from _paths(node[key], (*prefix, key))


def _mutated(items: list[dict[str, Any]], index: int, path: tuple[Any, ...], value: object) -> list[dict[str, Any]]:
    copy = json.loads(json.dumps(items))
    parent = copy[index]
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return list(copy)


def _observed(pod: dict[str, Any]) -> dict[str, Any]:
    """The parts of a pod that observation reads (the rest only slows the many copies down)."""
    metadata = {k: v for k, v in pod["metadata"].items() if k != "managedFields"}
    return {"metadata": metadata, "status": pod["status"]}


@pytest.mark.parametrize("name", FIXTURES)
def test_any_field_missing_or_odd_gives_the_same_states(name: str) -> None:
    items = [_observed(p) for p in _items(name)]
    checked = 0
    for index, pod in enumerate(items):
        for path in _paths(pod, ()):
            for value in ODD:
                # alternately while the session runs and long after its timeouts (half the cost)
                _assert_same_states(_mutated(items, index, path, value), [NOWS[(checked % 2) * 3]])
                checked += 1
    assert checked > 100


_TIME_KEYS = ("creationTimestamp", "deletionTimestamp", "startTime", "lastTransitionTime", "startedAt", "finishedAt")


@pytest.mark.parametrize("name", ["batch-running", "batch-pilot-oomkilled", "worker-terminating"])
def test_an_unreadable_timestamp_counts_as_absent(name: str) -> None:
    """Timestamps are decoded as datetimes: one the decoding refuses sends its pod the lenient
    way, where it is "not known", exactly as if the pod had not sent it."""
    items = [_observed(p) for p in _items(name)]
    checked = 0
    for index, pod in enumerate(items):
        for path in _paths(pod, ()):
            if path[-1] not in _TIME_KEYS:
                continue
            odd, absent = _mutated(items, index, path, "x"), _mutated(items, index, path, _DELETE)
            listed = _listed(odd)
            assert not isinstance(listed[index], PodRecord)  # the lenient way, the others unharmed
            assert all(isinstance(p, PodRecord) for i, p in enumerate(listed) if i != index)
            for release, pods in group_pods_by_release(listed).items():
                again = group_pods_by_release(_listed(absent))[release]
                for now in (NOWS[1], NOWS[3]):
                    assert derive_session(release, "ns", pods, now=now) == derive_session(
                        release, "ns", again, now=now
                    ), (path, now)
            checked += 1
    assert checked > 10


def test_an_odd_pod_falls_back_to_its_json_without_hiding_the_others() -> None:
    good, odd = _items("batch-running")[:2]
    odd = {**odd, "status": {**odd["status"], "conditions": "not a list"}, "spec": {"containers": []}}
    listed = _listed([good, odd, "not a pod"])  # type: ignore[list-item]
    assert isinstance(listed[0], PodRecord)
    assert listed[1] == {"metadata": {k: v for k, v in odd["metadata"].items() if k != "managedFields"}, "status": odd["status"]}
    assert listed[2] == {}
    assert read_pod(listed[1]).name == odd["metadata"]["name"]


@pytest.mark.parametrize("name", FIXTURES)
def test_a_pod_dict_becomes_the_record_its_json_decodes_into(name: str) -> None:
    items = _items(name)
    for pod, listed in zip(items, _listed(items), strict=True):
        assert record_of(pod) == listed


def test_the_odd_parts_of_a_pod_dict_are_dropped_not_the_pod() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "labels": "not a mapping",
            "annotations": {"a": "1", ANN_LEASE_SECONDS: "60", 5: "a key that is not a string"},
        },
        "status": {
            "phase": 5,  # a leaf of any type is kept: the readers treat it as "not known"
            "conditions": [{"type": "Ready", "status": "True"}, "not a condition"],
            "containerStatuses": [{"name": "c", "state": "not a state", "lastState": {"terminated": []}}],
            "initContainerStatuses": {"not": "a list"},
        },
    }
    record = record_of(pod)
    # only the annotations the rules read are kept
    assert record.metadata == PodMetadata(name="p", labels=None, annotations=PodAnnotations(lease_seconds="60"))
    assert record.status is not None and record.status.phase == 5
    assert record.status.conditions == (PodCondition(kind="Ready", status="True"),)
    assert record.status.container_statuses == (ContainerStatus(name="c", state=None, last_state=ContainerState()),)
    assert record.status.init_container_statuses is None
    assert record_of({"metadata": "x"}) == PodRecord() and read_pod({"status": []}).name == "?"
