"""The test doubles behave like the real seams where the service layer depends on it: the other
unit tests' verdicts are only as good as these behaviours (409 on a second Secret, uid
preconditions, label selectors, one LIST per kind, the server's clock, what an uninstall takes)."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

from orchestrator.helm import HelmReleaseExists
from orchestrator.kube import LEFTOVER_KINDS, POD, SECRET, SERVICE, KubeConflict, KubeUnavailable
from orchestrator.seams import HelmSeam, KubeSeam
from tests.doubles import SERVER_NOW, FakeHelm, FakeKube, fixture_pods, session_pods

pytestmark = pytest.mark.unit

NS = "ns"


def _seam_methods(seam: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(seam) if not name.startswith("_")}


@pytest.mark.parametrize(("seam", "double"), [(HelmSeam, FakeHelm), (KubeSeam, FakeKube)])
def test_each_double_has_every_member_of_its_seam(seam: type, double: type) -> None:
    """What mypy proves statically, seen at run time too (a Protocol member the double lacks)."""
    assert _seam_methods(seam) <= set(dir(double))


def test_a_second_secret_of_one_name_is_a_conflict_and_stamped_by_the_servers_clock() -> None:
    kube = FakeKube()
    meta = kube.create_secret(NS, "dask-1-secret", {"k": "v"}, {"a": "b"})
    assert meta["creationTimestamp"] == "2026-11-28T10:05:00Z" and meta["uid"]
    with pytest.raises(KubeConflict):
        kube.create_secret(NS, "dask-1-secret", {"k": "other"}, {"a": "b"})
    assert kube.secrets_written == [{"k": "v"}]


def test_a_delete_with_a_stale_uid_deletes_nothing() -> None:
    kube = FakeKube()
    meta = kube.create_secret(NS, "dask-1-secret", {}, {})
    assert kube.delete(SECRET, NS, "dask-1-secret", uid="someone-elses") is False
    assert kube.find(NS, "Secret", "dask-1-secret") is not None
    assert kube.delete(SECRET, NS, "dask-1-secret", uid=meta["uid"]) is True
    assert kube.delete(SECRET, NS, "dask-1-secret") is False  # already gone


def test_selectors_match_values_and_bare_keys_as_the_api_server_does() -> None:
    kube = FakeKube()
    kube.add([{**p, "metadata": {**p["metadata"], "namespace": NS}} for p in session_pods("dask-1")])
    kube.add([{**p, "metadata": {**p["metadata"], "namespace": NS}} for p in session_pods("dask-2", workers=1)])
    assert len(kube.list_pods(NS, "app.kubernetes.io/instance=dask-2")) == 3
    assert len(kube.list_pods(NS, "app.kubernetes.io/component=worker,app.kubernetes.io/instance=dask-1")) == 2
    assert len(kube.list_pods(NS, "app.kubernetes.io/component")) == 7
    assert kube.list_pods(NS, "no-such-label") == []


def test_a_labelled_list_is_one_request_per_kind_and_returns_the_kind_asked() -> None:
    kube = FakeKube()
    kube.add(fixture_pods("batch-running", 7, NS))
    before = kube.requests
    found = kube.list_labelled(NS, "app.kubernetes.io/instance=dask-7")
    assert kube.requests - before == len(LEFTOVER_KINDS)
    assert found and {kind for kind, _ in found} == {POD}
    assert kube.list_labelled(NS, "app.kubernetes.io/instance=dask-7", kinds=[SERVICE]) == []


def test_answers_carry_the_servers_clock_unless_it_sends_no_date() -> None:
    kube = FakeKube(server_now=SERVER_NOW + timedelta(minutes=10))
    assert kube.list_pods_at(NS)[1] == SERVER_NOW + timedelta(minutes=10)
    kube.send_date = False
    assert kube.server_time() is None


def test_an_unreachable_cluster_fails_every_request_and_counts_it() -> None:
    kube = FakeKube(unavailable=True)
    with pytest.raises(KubeUnavailable):
        kube.list_pods(NS)
    assert kube.requests == 1 and kube.calls == [("list_pods", NS)] and kube.lists(NS) == 1


def test_helm_refuses_a_name_in_use_and_an_uninstall_takes_the_releases_pods_and_secret() -> None:
    kube = FakeKube()
    helm = FakeHelm(kube, install_pods=lambda release, ns: fixture_pods("batch-running", 8, ns))
    helm.install("dask-8", NS, {"a": 1})
    kube.create_secret(NS, "dask-8-secret", {}, {})
    with pytest.raises(HelmReleaseExists):
        helm.install("dask-8", NS, {})
    assert helm.values[(NS, "dask-8")] == {"a": 1} and kube.of_kind(NS, "Pod")
    assert helm.uninstall("dask-8", NS) is True
    assert kube.of_kind(NS, "Pod") == [] and kube.of_kind(NS, "Secret") == []
    assert helm.uninstall("dask-8", NS, no_hooks=True) is False
    assert helm.count("uninstall") == 2 and helm.calls[-1] == ("uninstall-no-hooks", NS, "dask-8")


def test_stubborn_pods_survive_every_deletion() -> None:
    kube = FakeKube(stubborn={"dask-9"})
    kube.add(fixture_pods("batch-running", 9, NS))
    pods = len(kube.of_kind(NS, "Pod"))
    assert kube.delete_labelled(NS, "app.kubernetes.io/instance=dask-9", kinds=[POD]) == pods
    assert kube.remove_release(NS, "dask-9") == 0
    assert len(kube.of_kind(NS, "Pod")) == pods
