"""A namespace of N recorded sessions served as raw JSON bytes, for the monitor benchmarks.

The pods are the recorded ones of ``tests/data/pods`` moved to one release per PandaID, in
a realistic mix of states (about 3.4 pods per session). The LIST answer is one JSON body, as the
API server sends it, so decoding is measured along with the rules. :class:`RawApi` stands in for
the kubernetes ``ApiClient`` (the same ``call_api`` the real one answers with
``_preload_content=False``), so the real :class:`orchestrator.kube.Kube` makes the request; it
counts requests and answers label selectors ``app.kubernetes.io/instance in (...)`` too, for the
emulation of a per-chunk monitor.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tests.doubles import FIXTURE_NAMESPACE, NOW, PODS, with_pilot_exit

DATE: Final = NOW.strftime("%a, %d %b %Y %H:%M:%S GMT")

# A realistic mix, cycled over the releases: mostly live sessions, some ended, some stuck.
MIX: Final = (
    "batch-running",
    "batch-running",
    "worker-terminating",
    "interactive-staged",
    "batch-finished",
    "pilot-exit",
    "batch-pilot-oomkilled",
    "image-pull-backoff",
    "unschedulable",
    "deadline-exceeded",
)


def _template(kind: str) -> tuple[str, str, int]:
    """(the kind's pods as compact JSON text, the PandaID digits to replace, how many pods)."""
    name = "batch-finished" if kind == "pilot-exit" else kind
    items = json.loads((PODS / f"{name}.json").read_text())["items"]
    if kind == "pilot-exit":
        items = with_pilot_exit(items, 3)
    release = {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in items}.pop()
    text = json.dumps(items, separators=(",", ":"))[1:-1]
    return text, release.removeprefix("dask-"), len(items)


@dataclass
class World:
    """``sessions`` releases in one namespace: the release names and the LIST body per selector."""

    namespace: str
    releases: list[str]
    pod_texts: dict[str, str]  # release -> its pods as comma-separated JSON objects
    pods: int
    body: bytes = b""

    def list_body(self, releases: Sequence[str] | None = None) -> bytes:
        if releases is None:
            return self.body
        inner = ",".join(self.pod_texts[r] for r in releases if r in self.pod_texts)
        return b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[' + (
            inner.encode() + b"]}"
        )


def build_world(sessions: int, namespace: str = "bench") -> World:
    templates = {kind: _template(kind) for kind in set(MIX)}
    releases: list[str] = []
    texts: dict[str, str] = {}
    pods = 0
    for i in range(sessions):
        kind = MIX[i % len(MIX)]
        text, old_id, count = templates[kind]
        pandaid = str(7_000_000 + i)
        release = f"dask-{pandaid}"
        texts[release] = text.replace(old_id, pandaid).replace(FIXTURE_NAMESPACE, namespace)
        pods += count
        releases.append(release)
    world = World(namespace, releases, texts, pods)
    world.body = world.list_body(releases)
    return world


class Raw:
    """What ``call_api(..., _preload_content=False)`` returns: the undecoded body."""

    def __init__(self, data: bytes) -> None:
        self.data = data


_IN = re.compile(r"app\.kubernetes\.io/instance in \(([^)]*)\)")


@dataclass
class RawApi:
    """A fake ``ApiClient``: answers pod LISTs of the world with raw bytes, counts requests."""

    world: World
    requests: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call_api(self, path: str, method: str, **kw: Any) -> tuple[Raw, int, dict[str, str]]:
        query = dict(kw.get("query_params") or [])
        with self._lock:
            self.requests += 1
            self.queries.append(query)
        if method != "GET" or not path.endswith("/pods"):
            return Raw(b"{}"), 200, {"Date": DATE}
        chosen = _IN.search(query.get("labelSelector", ""))
        names = [n.strip() for n in chosen.group(1).split(",")] if chosen else None
        return Raw(self.world.list_body(names)), 200, {"Date": DATE}
