"""kube: the server's Date, 409 as KubeConflict, metadata-only reads and uid preconditions, over a
stand-in for the kubernetes ApiClient (the same `call_api` the real one answers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from kubernetes.client.exceptions import ApiException

from orchestrator.kube import (
    SECRET,
    Kube,
    KubeConflict,
    KubeError,
    KubeUnavailable,
    PodAnnotations,
    PodLabels,
    PodRecord,
    container_dicts,
    record_of,
)

DATE = "Sat, 28 Nov 2026 10:05:00 GMT"


class Raw:
    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode() if body is not None else b""


class FakeApi:
    """Answers call_api as the kubernetes client does with _preload_content=False."""

    def __init__(self, body: Any = None, *, date: str | None = DATE, error: int | None = None) -> None:
        self.body, self.date, self.error = body, date, error
        self.seen: list[dict[str, Any]] = []

    def call_api(self, path: str, method: str, **kw: Any) -> tuple[Raw, int, dict[str, str]]:
        self.seen.append({"path": path, "method": method, **kw})
        if self.error is not None:
            raise ApiException(status=self.error, reason="Conflict" if self.error == 409 else "Error")
        headers = {"Date": self.date} if self.date else {}
        return Raw(self.body), 200, headers


def kube(api: FakeApi) -> Kube:
    return Kube(api_client=api)


def test_the_pod_list_brings_the_servers_date() -> None:
    api = FakeApi({"items": [{"metadata": {"name": "p"}}]})
    pods, date = kube(api).list_pods_at("ns")
    assert [p["metadata"]["name"] for p in pods] == ["p"]
    assert date == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    assert len(api.seen) == 1


@pytest.mark.parametrize("header", [None, "not a date"])
def test_a_missing_or_malformed_date_is_none(header: str | None) -> None:
    assert kube(FakeApi({"items": []}, date=header)).list_pods_at("ns")[1] is None


def test_server_time_is_one_version_request() -> None:
    api = FakeApi({"gitVersion": "v1.35.4"})
    assert kube(api).server_time() == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    assert [s["path"] for s in api.seen] == ["/version"]


def test_create_secret_is_create_only_and_409_is_a_conflict() -> None:
    with pytest.raises(KubeConflict):
        kube(FakeApi(error=409)).create_secret("ns", "s", {"k": "v"}, {}, {"a": "b"})


def test_create_secret_returns_metadata_only() -> None:
    api = FakeApi({"metadata": {"name": "s", "uid": "u1"}, "data": {"k": "c2VjcmV0"}})
    meta = kube(api).create_secret("ns", "s", {"k": "secret"}, {"l": "1"}, {"a": "b"})
    assert meta == {"name": "s", "uid": "u1"}
    sent = api.seen[0]
    assert sent["method"] == "POST"
    assert sent["body"]["metadata"]["annotations"] == {"a": "b"}


def test_metadata_at_asks_for_metadata_only() -> None:
    api = FakeApi({"kind": "PartialObjectMetadata", "metadata": {"name": "s", "uid": "u1"}})
    meta, date = kube(api).metadata_at(SECRET, "ns", "s")
    assert meta == {"name": "s", "uid": "u1"} and date is not None
    assert "as=PartialObjectMetadata" in api.seen[0]["header_params"]["Accept"]


def test_delete_with_a_uid_sends_the_precondition_and_a_mismatch_deletes_nothing() -> None:
    api = FakeApi({"status": "Success"})
    assert kube(api).delete(SECRET, "ns", "s", uid="u1") is True
    assert api.seen[0]["body"]["preconditions"] == {"uid": "u1"}
    assert kube(FakeApi(error=409)).delete(SECRET, "ns", "s", uid="u1") is False
    with pytest.raises(KubeConflict):
        kube(FakeApi(error=409)).delete(SECRET, "ns", "s")


@pytest.mark.parametrize(
    ("status", "error"), [(503, KubeUnavailable), (429, KubeUnavailable), (403, KubeError)]
)
def test_errors_keep_their_class(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        kube(FakeApi(error=status)).list_pods_at("ns")


# -- the pod LIST: watch cache, decoder, the reduced pods of observation ---------------------------

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "dask-1-scheduler",
        "labels": {"app.kubernetes.io/instance": "dask-1", "helm.sh/chart": "dask-panda-session-1"},
        "annotations": {"dask-panda-session/workers-wanted": "2", "kwok.x-k8s.io/node": "fake"},
        "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
    },
    "spec": {"containers": [{"name": "scheduler", "image": "dask:1"}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}


@pytest.mark.parametrize("method", ["list_pods_at", "list_pod_states_at"])
def test_pod_lists_are_one_request_from_the_watch_cache(method: str) -> None:
    api = FakeApi({"kind": "PodList", "items": [POD]})
    getattr(kube(api), method)("ns", "a=b")
    (seen,) = api.seen
    assert seen["method"] == "GET" and seen["path"] == "/api/v1/namespaces/ns/pods"
    assert dict(seen["query_params"]) == {"labelSelector": "a=b", "resourceVersion": "0"}


def test_list_pods_at_returns_the_whole_pods() -> None:
    pods, _ = kube(FakeApi({"kind": "PodList", "items": [POD]})).list_pods_at("ns")
    assert pods == [POD]


def test_list_pod_states_decodes_compact_records() -> None:
    pods, date = kube(FakeApi({"kind": "PodList", "items": [POD, {"metadata": {"name": "bare"}}]})).list_pod_states_at("ns")
    assert all(isinstance(p, PodRecord) for p in pods)
    first, bare = pods
    assert isinstance(first, PodRecord) and isinstance(bare, PodRecord)
    assert first.metadata is not None and first.status is not None and first.status.conditions is not None
    # only the labels and annotations the rules read are decoded; an absent one is UNSET
    assert (first.metadata.name, first.metadata.labels, first.metadata.annotations) == (
        "dask-1-scheduler",
        PodLabels(instance="dask-1"),
        PodAnnotations(workers_wanted="2"),
    )
    assert first.metadata.labels is not None and first.metadata.labels.component is msgspec.UNSET
    assert (first.status.phase, first.status.conditions[0].kind, first.status.conditions[0].status) == (
        "Running",
        "Ready",
        "True",
    )
    assert not hasattr(first, "spec") and not hasattr(first.metadata, "managed_fields")
    assert bare.metadata is not None and bare.metadata.name == "bare" and bare.status is None
    assert date == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)


def test_container_statuses_keep_only_the_fields_the_rules_read() -> None:
    status = {
        "name": "pilot",
        "image": "pilot:1",
        "imageID": "sha256:x",
        "restartCount": 2,
        "state": {"terminated": {"exitCode": 1, "reason": "Error", "containerID": "c", "finishedAt": FINISHED}},
        "lastState": {"terminated": {}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod = {"metadata": {"name": "p"}, "status": {"containerStatuses": [status]}}
    (record,), _ = kube(FakeApi({"items": [pod]})).list_pod_states_at("ns")
    assert isinstance(record, PodRecord) and record.status is not None
    assert container_dicts(record.status.container_statuses) == (
        {
            "name": "pilot",
            "restartCount": 2,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": FINISHED}},
            "lastState": {"terminated": {}},
        },
    )


FINISHED = "2026-11-28T10:04:00Z"


def test_timestamps_are_decoded_as_aware_datetimes() -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-28T10:00:00Z"},
        "status": {"containerStatuses": [{"name": "c", "state": {"terminated": {"finishedAt": FINISHED}}}]},
    }
    (record,), _ = kube(FakeApi({"items": [pod]})).list_pod_states_at("ns")
    assert isinstance(record, PodRecord) and record.metadata is not None and record.status is not None
    assert record.metadata.creation_timestamp == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    (status,) = record.status.container_statuses or ()
    assert status.state is not None and status.state.terminated is not None
    assert status.state.terminated.finished_at == datetime(2026, 11, 28, 10, 4, tzinfo=UTC)
    assert record_of(pod) == record


@pytest.mark.parametrize(
    ("odd", "read"),
    [("t", None), ("", None), (17, None), ("2026-11-28T10:04:00", datetime(2026, 11, 28, 10, 4, tzinfo=UTC))],
)
def test_an_odd_timestamp_sends_only_its_pod_the_lenient_way(odd: object, read: datetime | None) -> None:
    """The typed decoding refuses it: that pod comes back as plain JSON, read by record_of (a
    naive time is UTC, anything else not known), and the other pods are records as usual."""
    odd_pod = {"metadata": {"name": "odd", "creationTimestamp": odd}, "status": {"phase": "Running"}}
    pods, _ = kube(FakeApi({"items": [POD, odd_pod]})).list_pod_states_at("ns")
    good, plain = pods
    assert isinstance(good, PodRecord) and not isinstance(plain, PodRecord)
    record = record_of(plain)
    assert record.metadata is not None and record.metadata.creation_timestamp == read
    assert record.status is not None and record.status.phase == "Running"


def test_the_reduced_pods_derive_the_same_states_as_the_whole_ones() -> None:
    from orchestrator.session import derive_session, group_pods_by_release
    from tests.doubles import NOW, fixture_pods

    items = [p for name in ("batch-running", "image-pull-backoff", "worker-terminating") for p in fixture_pods(name, 11)]
    whole, _ = kube(FakeApi({"items": items})).list_pods_at("ns")
    reduced, _ = kube(FakeApi({"items": items})).list_pod_states_at("ns")
    assert all(isinstance(p, PodRecord) for p in reduced) and any("spec" in p for p in whole)
    for release, pods in group_pods_by_release(whole).items():
        again = group_pods_by_release(reduced)[release]
        assert derive_session(release, "ns", again, now=NOW) == derive_session(release, "ns", pods, now=NOW)


@pytest.mark.parametrize("method", ["list_pods_at", "list_pod_states_at"])
@pytest.mark.parametrize("body", [b'{"items": [{"metadata": ', b"<html>502 Bad Gateway</html>"])
def test_an_unreadable_answer_is_unavailable(method: str, body: bytes) -> None:
    api = FakeApi({})
    api.call_api = lambda *a, **kw: (type("R", (), {"data": body})(), 200, {"Date": DATE})  # type: ignore[method-assign]
    with pytest.raises(KubeUnavailable, match="unreadable JSON"):
        getattr(kube(api), method)("ns")


def test_an_empty_list_is_empty() -> None:
    assert kube(FakeApi({"kind": "PodList", "items": []})).list_pod_states_at("ns")[0] == []
    assert kube(FakeApi({"kind": "PodList", "items": None})).list_pods_at("ns")[0] == []


def test_decoding_pauses_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from orchestrator import kube as kube_mod

    seen: list[bool] = []
    original = kube_mod._JSON

    class Spy:
        def decode(self, raw: bytes) -> Any:
            seen.append(gc.isenabled())
            return original.decode(raw)

    monkeypatch.setattr(kube_mod, "_JSON", Spy())
    assert gc.isenabled()
    kube(FakeApi({"items": []})).list_pods_at("ns")
    assert gc.isenabled()
    gc.disable()
    try:
        kube(FakeApi({"items": []})).list_pods_at("ns")
        assert not gc.isenabled()  # disabled on purpose elsewhere: left disabled
    finally:
        gc.enable()
    assert seen == [False, False]
