"""FakeHelm: the helm seam (`orchestrator.seams.HelmSeam`) over releases in memory.

Like helm it refuses to install over an existing release (`HelmReleaseExists`), keeps the values a
release was installed with, and can hold an install in `pending-install` for a while
(`install_delay`) and leave a `failed` release behind (`fail_install_leaves`). Every call is
recorded in `calls` as (operation, namespace[, release]). Linked to a `FakeKube` (`kube`), an
install can start pods (`install_pods`) and an uninstall takes the release's pods and Secret away,
as the real release's objects would go. It is thread-safe, so real threads can race on it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.helm import HelmReleaseExists, HelmReleaseInfo
from orchestrator.names import HELM_ANNOTATION_PREFIX, hook_job_name
from tests.doubles.kube import FakeKube


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeHelm:
    kube: FakeKube | None = None  # the cluster the releases' objects live in (optional)
    releases: dict[tuple[str, str], HelmReleaseInfo] = field(default_factory=dict)
    values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_install: Exception | None = None
    fail_install_leaves: str | None = None  # the status a failed install leaves (None: no release)
    fail_uninstall: Exception | None = None  # every uninstall fails so
    fail_uninstall_with_hooks: Exception | None = None  # an uninstall that runs hooks, of a release, fails so
    fail_status: Exception | None = None  # every `helm status` fails so
    fail_release: dict[str, Exception] = field(default_factory=dict)  # `helm status` of these fails
    install_delay: float = 0.0  # real seconds an install stays pending-install (racing threads)
    on_install: Callable[[str, str], None] | None = None  # runs first in install; may raise
    install_pods: Callable[[str, str], list[dict[str, Any]]] | None = None  # (release, namespace) -> pods
    hooks: bool = True  # whether the chart renders its pre-delete cleanup Job
    clock: Callable[[], datetime] = _wall_clock  # the time releases are stamped with
    version: str = "4.1.4"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _call(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)

    def count(self, operation: str) -> int:
        """How many calls of one operation were made ("uninstall" counts both kinds)."""
        with self.lock:
            return sum(1 for c in self.calls if c[0] == operation or c[0] == f"{operation}-no-hooks")

    def deploy(self, namespace: str, release: str) -> None:
        """Pretend an install happened earlier (the release exists)."""
        with self.lock:
            self.releases[(namespace, release)] = HelmReleaseInfo(release, namespace, 1, "deployed", self.clock())

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        self._call("status", namespace, name)
        if self.fail_status is not None:
            raise self.fail_status
        if name in self.fail_release:
            raise self.fail_release[name]
        with self.lock:
            return self.releases.get((namespace, name))

    def install(
        self,
        name: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout: float | None = None,
        secrets: Sequence[str] = (),
    ) -> HelmReleaseInfo:
        self._call("install", namespace, name)
        if self.on_install is not None:
            self.on_install(namespace, name)
        key = (namespace, name)
        with self.lock:
            if key in self.releases:
                raise HelmReleaseExists(
                    f"helm install {namespace}/{name}: cannot re-use a name that is still in use"
                )
            self.releases[key] = HelmReleaseInfo(name, namespace, 1, "pending-install", self.clock())
            self.values[key] = copy.deepcopy(dict(values))
        if self.install_delay:
            time.sleep(self.install_delay)
        with self.lock:
            if self.fail_install is not None:
                if self.fail_install_leaves is None:
                    self.releases.pop(key, None)
                    self.values.pop(key, None)
                else:
                    self.releases[key] = HelmReleaseInfo(name, namespace, 1, self.fail_install_leaves, None)
                raise self.fail_install
            info = HelmReleaseInfo(name, namespace, 1, "deployed", self.clock())
            self.releases[key] = info
        if self.install_pods is not None and self.kube is not None:
            self.kube.add(self.install_pods(name, namespace))
        return info

    def uninstall(
        self,
        name: str,
        namespace: str,
        *,
        no_hooks: bool = False,
        timeout: float | None = None,
        wait: bool = False,
    ) -> bool:
        self._call("uninstall-no-hooks" if no_hooks else "uninstall", namespace, name)
        if self.fail_uninstall is not None:
            raise self.fail_uninstall
        with self.lock:
            if not no_hooks and self.fail_uninstall_with_hooks is not None and (namespace, name) in self.releases:
                raise self.fail_uninstall_with_hooks
            existed = self.releases.pop((namespace, name), None) is not None
        if existed and self.kube is not None:
            self.kube.remove_release(namespace, name)
        return existed

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        self._call("get-values", namespace, name)
        with self.lock:
            return copy.deepcopy(self.values.get((namespace, name), {}))

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        self._call("list", namespace)
        with self.lock:
            return [info for (ns, _), info in self.releases.items() if ns == namespace]

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        """The chart's cleanup hook Job (what the service renders to run it itself), if `hooks`."""
        self._call("template", namespace, name)
        if not self.hooks:
            return []
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": hook_job_name(name, "cleanup"),
                "annotations": {f"{HELM_ANNOTATION_PREFIX}hook": "pre-delete"},
                "labels": {},
            },
            "spec": {},
        }
        return [job]
