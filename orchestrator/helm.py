"""The only module that runs helm: a small synchronous facade over pyhelm3 with typed errors.

Why a facade: pyhelm3 is async and its `Client()` runs `helm version` on construction, so the
client is made lazily (constructing a plugin every Harvester cycle must stay cheap); every call
gets an explicit deadline (helm's `--timeout` covers hooks only, not a hung process); and helm's
errors become this package's typed errors with helm's own message kept and any secret scrubbed.

Values always travel on helm's stdin (pyhelm3 does that), never on the command line or on disk.
Installs never `--wait`: readiness is the orchestrator's business (pyhelm3's `wait=True` would also
add `--wait-for-jobs`). Works with Helm 3 and Helm 4 (pyhelm3 adapts the flags to the version).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from orchestrator.errors import DaskPandaSessionError, InputError

__all__ = [
    "Helm",
    "HelmError",
    "HelmReleaseExists",
    "HelmReleaseInfo",
    "HelmRenderError",
    "HelmTimeout",
    "HelmUnavailable",
]

log = logging.getLogger(__name__)
# pyhelm3 logs every failed command as a warning, including the `helm status` of a release that
# does not exist yet (the normal first step of an idempotent submit); our errors say what matters.
logging.getLogger("pyhelm3").setLevel(logging.ERROR)
T = TypeVar("T")


class HelmError(DaskPandaSessionError):
    """helm failed; the message is helm's own (scrubbed of secrets)."""


class HelmRenderError(HelmError, InputError):
    """The chart refused the values (schema or a `fail` check): bad input, nothing was created."""


class HelmReleaseExists(HelmError):
    """`helm install` found the release name in use: another submitter made it (not ours to undo)."""


class HelmUnavailable(HelmError):
    """helm could not reach the cluster (temporary)."""


class HelmTimeout(HelmError):
    """helm did not finish within its deadline (temporary)."""


@dataclass(frozen=True)
class HelmReleaseInfo:
    """What the orchestrator needs of a release: identity, revision, status and last update."""

    name: str
    namespace: str
    revision: int
    status: str
    updated: datetime | None
    chart: str = ""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret value from text (helm may echo values in some error messages)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


class Helm:
    """Install, uninstall, inspect and list releases of the chart in one namespace at a time."""

    def __init__(
        self,
        *,
        executable: str = "helm",
        kubeconfig: str | Path | None = None,
        kubecontext: str | None = None,
        chart: Path | None = None,
        timeout: float = 120.0,
    ) -> None:
        from orchestrator.values import CHART_DIR  # leaf import: values imports nothing of helm

        self.executable = executable
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self.kubecontext = kubecontext
        self.chart = Path(chart or CHART_DIR).resolve()
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()  # plugins submit and kill from several threads

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The pyhelm3 client, made on first use (its constructor runs `helm version`)."""
        with self._lock:
            return self._make_client()

    def _make_client(self) -> Any:
        if self._client is None:
            import pyhelm3

            try:
                self._client = pyhelm3.Client(
                    executable=self.executable,
                    kubeconfig=self.kubeconfig,
                    kubecontext=self.kubecontext,
                    default_timeout=f"{int(self.timeout)}s",
                )
            except (AssertionError, OSError) as err:
                raise HelmUnavailable(f"helm executable {self.executable!r} cannot be run: {err}") from None
        return self._client

    @property
    def version(self) -> str:
        return str(self.client.version)

    def _run(
        self,
        make: Callable[[], Awaitable[T]],
        what: str,
        secrets: Sequence[str] = (),
        timeout: float | None = None,
    ) -> T:
        """Run one pyhelm3 coroutine to completion under a deadline; translate its errors."""
        import pyhelm3.errors as herr

        deadline = (timeout or self.timeout) + 30.0  # helm's own --timeout first, then ours

        async def bounded() -> T:
            return await asyncio.wait_for(make(), deadline)

        try:
            return asyncio.run(bounded())
        except TimeoutError:
            raise HelmTimeout(f"helm {what}: no answer within {deadline:.0f} s") from None
        except herr.Error as err:
            message = scrub(_stderr(err), secrets)
            if isinstance(err, herr.FailedToRenderChartError):
                raise HelmRenderError(f"helm {what}: the chart refused the values: {message}") from None
            if isinstance(err, herr.ConnectionError):
                raise HelmUnavailable(f"helm {what}: cluster unreachable: {message}") from None
            if "timed out" in message or "context deadline exceeded" in message:
                raise HelmTimeout(f"helm {what}: {message}") from None
            raise HelmError(f"helm {what}: {message}") from None

    # -- operations ------------------------------------------------------------------------------
    def chart_object(self) -> Any:
        """pyhelm3's Chart for the local chart directory, built from Chart.yaml (no helm call)."""
        from pyhelm3.models import Chart, ChartMetadata

        metadata = yaml.safe_load((self.chart / "Chart.yaml").read_text(encoding="utf-8"))
        return Chart(self.client._command, ref=self.chart, metadata=ChartMetadata(**metadata))

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        """The release's current revision, or None when there is no such release."""
        import pyhelm3.errors as herr

        async def status() -> Any:
            try:
                return await self.client._command.status(name, namespace=namespace)
            except herr.ReleaseNotFoundError:
                return None

        data = self._run(status, f"status {namespace}/{name}")
        return None if data is None else _info(data, namespace)

    def install(
        self,
        name: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout: float | None = None,
        secrets: Sequence[str] = (),
    ) -> HelmReleaseInfo:
        """`helm install` (no --wait; hooks are awaited by helm within `timeout`)."""
        chart = self.chart_object()
        seconds = int(timeout or self.timeout)

        async def install() -> Any:
            return await self.client._command.install_or_upgrade(
                name,
                chart.ref,
                dict(values),
                namespace=namespace,
                create_namespace=False,
                timeout=f"{seconds}s",
                wait=False,
            )

        data = self._run(install, f"install {namespace}/{name}", secrets, timeout=seconds)
        return _info(data, namespace)

    def uninstall(
        self,
        name: str,
        namespace: str,
        *,
        no_hooks: bool = False,
        timeout: float | None = None,
        wait: bool = False,
    ) -> bool:
        """`helm uninstall`; returns False when the release did not exist (that is success too)."""
        import pyhelm3.errors as herr

        seconds = int(timeout or self.timeout)

        async def uninstall() -> bool:
            try:
                await self.client._command.uninstall(
                    name, namespace=namespace, no_hooks=no_hooks, timeout=f"{seconds}s", wait=wait
                )
            except herr.ReleaseNotFoundError:
                return False
            return True

        return self._run(uninstall, f"uninstall {namespace}/{name}", timeout=seconds)

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        """The user-supplied values of a release (used to re-render its cleanup step)."""

        async def values() -> Any:
            return await self.client._command.get_values(name, namespace=namespace)

        data = self._run(values, f"get values {namespace}/{name}")
        return dict(data or {})

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        """Every release of the namespace in any state (one helm call)."""

        async def listing() -> Any:
            return await self.client._command.list(
                namespace=namespace,
                include_deployed=True,
                include_failed=True,
                include_pending=True,
                include_uninstalling=True,
                max_releases=100000,
            )

        data = self._run(listing, f"list -n {namespace}")
        return [_info(item, namespace) for item in data or []]

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        """Render the chart locally (no cluster), as the manifests `helm install` would apply."""

        async def template() -> Any:
            objects = await self.client._command.template(name, self.chart, dict(values), namespace=namespace)
            return list(objects)

        objects = self._run(template, f"template {name}")
        if show_only:
            objects = [o for o in objects if o and o.get("kind") == show_only]
        return [o for o in objects if o]


def _stderr(err: Exception) -> str:
    stderr = getattr(err, "stderr", b"")
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
    return " ".join(text.split())[:2000] or type(err).__name__


def _info(data: Mapping[str, Any], namespace: str) -> HelmReleaseInfo:
    info = data.get("info", {}) if isinstance(data.get("info"), Mapping) else {}
    status = str(info.get("status") or data.get("status") or "unknown")
    updated_raw = info.get("last_deployed") or data.get("updated")
    return HelmReleaseInfo(
        name=str(data.get("name")),
        namespace=str(data.get("namespace") or namespace),
        revision=int(data.get("version") or data.get("revision") or 0),
        status=status,
        updated=_parse_time(updated_raw),
        chart=str(data.get("chart") or ""),
    )


_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?")


def _parse_time(value: object) -> datetime | None:
    """helm's times: RFC 3339 with nanoseconds (status) or '2026-11-28 16:40:01.1 +0000 UTC' (list)."""
    match = _TIME.match(str(value or ""))
    if not match:
        return None
    date, clock, offset = match.groups()
    offset = "+00:00" if offset in (None, "Z") else offset
    if ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return datetime.fromisoformat(f"{date}T{clock}{offset}")
