"""The three ways of observing N sessions that the monitor benchmark puts side by side.

* ``ours``: :meth:`SessionService.observe`, one pod LIST per namespace, every session derived
  from memory by the rules.
* ``upstream``: the approach of Harvester's own Kubernetes monitor, emulated: one LIST per chunk
  of 500 workers (a label selector ``instance in (name, ...)``), decoded into the kubernetes
  client's typed models, then one task per worker on a pool of ``nProcesses`` threads (4, its
  default), each scanning the chunk's pods for its own and classifying them by pod phase only.
* ``naive helm``: one ``helm status`` process per release (measured on the local cluster only:
  :func:`helm_status_cycle`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from orchestrator.kube import APP_SELECTOR, POD, Kube, PodRecord
from orchestrator.names import INSTANCE_LABEL

CHUNK: Final = 500
THREADS: Final = 4


def _phase_status(phases: Sequence[str]) -> str:
    """The worker status the upstream monitor derives from its pods' phases alone."""
    if not phases:
        return "cancelled"
    if all(p == "Pending" for p in phases):
        return "submitted"
    for phase, status in (("Succeeded", "finished"), ("Running", "running"), ("Failed", "failed")):
        if phase in phases:
            return status
    return "idle"


def upstream_cycle(kube: Kube, namespace: str, releases: Sequence[str]) -> dict[str, str]:
    """One monitor cycle the upstream way; every LIST goes through ``kube`` (and is counted)."""
    from kubernetes.client import ApiClient

    models = ApiClient()  # only its deserializer: no connection is made through it
    statuses: dict[str, str] = {}
    for start in range(0, len(releases), CHUNK):
        names = list(releases[start : start + CHUNK])
        selector = f"{APP_SELECTOR},{INSTANCE_LABEL} in ({','.join(names)})"
        with kube._lock:
            kube.requests += 1
        response = kube.api.call_api(
            POD.path(namespace),
            "GET",
            query_params=[("labelSelector", selector)],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=kube.request_timeout,
        )
        raw = response[0] if isinstance(response, tuple) else response
        pods = models.deserialize(raw, "V1PodList").items

        def one(release: str, pods: Any = pods) -> str:
            mine = [p.status.phase for p in pods if (p.metadata.labels or {}).get(INSTANCE_LABEL) == release]
            return _phase_status(mine)

        with ThreadPoolExecutor(THREADS) as pool:
            statuses.update(zip(names, pool.map(one, names), strict=True))
    return statuses


def helm_status_cycle(
    helm: Path, namespace: str, releases: Sequence[str], env: Mapping[str, str]
) -> dict[str, str]:
    """One cycle of the naive Helm design: one ``helm status`` process per release."""
    import json

    statuses = {}
    for release in releases:
        done = subprocess.run(
            [str(helm), "status", release, "-n", namespace, "-o", "json"],
            env=dict(env),
            capture_output=True,
            check=True,
            text=True,
        )
        statuses[release] = str(json.loads(done.stdout).get("info", {}).get("status"))
    return statuses


class DictPodsKube(Kube):
    """A :class:`Kube` whose monitor LIST returns the whole pods as plain dicts (``list_pods_at``):
    ``observe`` as it ran before pods were decoded into compact records. Its states must be the
    records' states, pod for pod."""

    def list_pod_states_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[PodRecord | dict[str, Any]], datetime | None]:
        pods, date = self.list_pods_at(namespace, selector)
        return list(pods), date
