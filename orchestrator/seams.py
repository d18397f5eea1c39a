"""The two I/O seams of the service layer, as ``Protocol``s: what `SessionService` and the modules
it hands them to (submit, doctor, the network-policy probe) call on helm and on the Kubernetes API.

`orchestrator.helm.Helm` and `orchestrator.kube.Kube` are the production implementations; the test
doubles implement the same Protocols. mypy checks both sides: a method the service starts to use
must be declared here, and a double (or the real class) that drifts from a declaration here no
longer type-checks where it is passed to `SessionService`. Only what the callers use is declared,
so the doubles need not imitate the plumbing (command runners, API clients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.helm import Helm, HelmReleaseInfo
    from orchestrator.kube import Kind, Kube, PodRecord


class HelmSeam(Protocol):
    """Releases of the chart: install, inspect, list, render and uninstall (one namespace per call)."""

    @property
    def version(self) -> str:
        """helm's version without the leading "v" (doctor reports it)."""
        ...

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None: ...

    def install(
        self,
        name: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout: float | None = None,
        secrets: Sequence[str] = (),
    ) -> HelmReleaseInfo: ...

    def uninstall(
        self,
        name: str,
        namespace: str,
        *,
        no_hooks: bool = False,
        timeout: float | None = None,
        wait: bool = False,
    ) -> bool: ...

    def get_values(self, name: str, namespace: str) -> dict[str, Any]: ...

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]: ...

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]: ...


class KubeSeam(Protocol):
    """The Kubernetes API calls of the service layer, at the JSON level."""

    @property
    def requests(self) -> int:
        """Every API request made so far: what the cost claims (one LIST per namespace) are
        measured by."""
        ...

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any: ...

    # observation
    def list_pods(self, namespace: str, selector: str = ...) -> list[dict[str, Any]]: ...

    def list_pods_at(
        self, namespace: str, selector: str = ...
    ) -> tuple[list[dict[str, Any]], datetime | None]: ...

    def list_pod_states_at(
        self, namespace: str, selector: str = ...
    ) -> tuple[list[PodRecord | dict[str, Any]], datetime | None]: ...

    def list_services(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]: ...

    # the per-job Secret (also the submit lock)
    def create_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...

    def metadata_at(
        self, kind: Kind, namespace: str, name: str
    ) -> tuple[dict[str, Any] | None, datetime | None]: ...

    # single objects
    def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool: ...

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def set_finalizers(
        self, kind: Kind, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str
    ) -> bool: ...

    # verified cleanup
    def list_labelled(
        self, namespace: str, selector: str, kinds: Sequence[Kind] = ...
    ) -> list[tuple[Kind, dict[str, Any]]]: ...

    def delete_labelled(self, namespace: str, selector: str, kinds: Sequence[Kind] = ...) -> int: ...

    # doctor and clocks
    def version(self) -> str: ...

    def server_time(self) -> datetime | None: ...

    def exists(self, path: str) -> bool: ...


if TYPE_CHECKING:
    # mypy proves the production classes implement the seams (nothing runs here)
    def _helm_is_a_seam(helm: Helm) -> HelmSeam:
        return helm

    def _kube_is_a_seam(kube: Kube) -> KubeSeam:
        return kube
