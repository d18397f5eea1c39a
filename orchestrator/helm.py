"""The only module that runs helm: a small synchronous facade over pyhelm3 with typed errors.

Why a facade: pyhelm3 is async, builds helm's arguments and parses its JSON well, but runs helm
through `/bin/sh -c` (on a dash host a timeout kills the shell and leaves helm running, so an
"undone" install can still complete), writes values as ASCII-escaped JSON that helm's YAML parser
rejects for any character outside the Basic Multilingual Plane, and its `Client()` runs
`helm version` on construction. So:

* **One runner.** `HelmCommand` (see `command_class`) subclasses pyhelm3's public `Command`
  and overrides its public `run`: helm is exec'd without a shell in its own session (process group); when our deadline
  passes or the calling coroutine is cancelled, the whole group gets SIGTERM, then SIGKILL after
  a grace period, and helm is reaped: no helm process, nor a child of it, outlives its deadline.
  Every other piece (argument building, JSON parsing) is pyhelm3's. The command object is made on
  first use, so constructing `Helm` never runs helm (a Harvester plugin is constructed every cycle).
* **Values on stdin, exactly.** Values travel on helm's stdin only (never the command line, never
  a file) as UTF-8 JSON written with `ensure_ascii=False`; the characters that YAML reads as line
  breaks or a byte order mark (U+2028, U+2029, U+FEFF; U+0085 is refused, below) are written as
  `\\uXXXX` escapes, which both helm majors decode. Every other character, emoji and CJK
  extension B included, reaches the chart as it was (checked with Helm 3.17 and 4.1).
  What helm cannot carry is refused with an `InputError` naming the key path, before helm runs:
  - an integer beyond +-(2**53 - 1): helm reads every number as a float64 (values go YAML ->
    JSON -> `interface{}`), so in Helm 3 and Helm 4 alike 2**53 + 1 arrives as 2**53 and 2**60
    renders as 1152921504606847000 (integers inside the bound are exact; a float keeps its
    value, not its type or the sign of -0.0);
  - DEL, the C1 controls (U+007F-U+009F) and U+FFFE/U+FFFF: helm's `toYaml` template function
    turns any text holding one into "" and NEL into a space, in both majors, and Helm 3 refuses
    them outright in a chart with a values schema. (C0 controls such as U+0001 pass intact);
  - a lone surrogate (a str that UTF-8 cannot encode), a non-finite float, a non-string key, a
    value that is not JSON (a date, a set, bytes), and nesting deeper than `MAX_DEPTH` (helm
    accepts 10000 levels; the bound is ours, so that checking and encoding never recurse deeply).
* **Typed errors.** helm's texts, not pyhelm3's error classes, decide: the cluster unreachable,
  connection refused, an i/o timeout, no such host (on any command) -> `HelmUnavailable`; an
  install that finds its name in use -> `HelmReleaseExists`; our deadline, or helm's own
  "timed out waiting for the condition" -> `HelmTimeout`; the chart refusing the values ->
  `HelmRenderError`. Every message is helm's own with the caller's secrets scrubbed.

Install is `helm install` (create only, no `--wait`): readiness is the orchestrator's business,
and a name already in use must fail rather than upgrade another submitter's release. It passes
`--disable-openapi-validation` (see `Helm`): on every server with field validation that flag skips
only helm's probe of the server's OpenAPI documents, a third of an install's CPU, and the server
refuses a bad manifest with the same error either way. The chart's values schema is still checked
by helm on every install. Every helm process shares one cache directory per user (the API
server's discovery documents; `default_cache_dir`, mode 0700), so none starts from an empty
cache. pyhelm3 has no plain install, so that one argument list is built here; everything else
uses pyhelm3's `Command` methods.

Helm 3 and Helm 4: what adapts is the error matching (Helm 4 writes "kubernetes cluster
unreachable" and "cannot reuse a name", Helm 3 "Kubernetes cluster unreachable" and "cannot re-use
a name"; matching ignores case and the hyphen, and Helm 4's extra `level=ERROR` log lines are
harmless). What does not adapt, because it need not: the flags are ones both majors accept (no
`--atomic`/`--rollback-on-failure`, no `--wait` on install, a bare `--wait` on uninstall, which
Helm 4 reads as its "watcher" strategy); the chart tier runs every command against both binaries.
pyhelm3's `Client`, whose only Helm 4 adaptations are `--atomic` and `list --all`, is not used.
Helm 4 applies install manifests server-side by default; that is the chart's concern (no
duplicate env names), not this module's. Helm 4's `--wait` strategies are not offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from orchestrator.errors import DaskPandaSessionError, InputError

__all__ = [
    "MAX_DEPTH",
    "MAX_EXACT_INT",
    "Helm",
    "HelmError",
    "HelmReleaseExists",
    "HelmReleaseInfo",
    "HelmRenderError",
    "HelmTimeout",
    "HelmUnavailable",
    "cache_environment",
    "check_values",
    "command_class",
    "default_cache_dir",
    "encode_values",
    "prepare_cache_dir",
]

log = logging.getLogger(__name__)
# pyhelm3 logs every failed command as a warning, including the `helm status` of a release that
# does not exist yet (the normal first step of an idempotent submit); our errors say what matters.
logging.getLogger("pyhelm3").setLevel(logging.ERROR)
T = TypeVar("T")

#: The largest integer magnitude that survives helm: every number inside helm is a float64.
MAX_EXACT_INT = 2**53 - 1
#: The deepest nesting of lists and mappings accepted in values (helm itself stops at 10000).
MAX_DEPTH = 100


class HelmError(DaskPandaSessionError):
    """helm failed; the message is helm's own (scrubbed of secrets)."""


class HelmRenderError(HelmError, InputError):
    """The chart refused the values (schema or a `fail` check): bad input, nothing was created."""


class HelmReleaseExists(HelmError):
    """`helm install` found the release name in use: another submitter made it (not ours to undo)."""


class HelmUnavailable(HelmError):
    """helm could not reach the cluster, or cannot be run at all (temporary)."""


class HelmTimeout(HelmError):
    """helm did not finish within its deadline (temporary); its whole process group was killed."""


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


# -- values: checked, then encoded for helm's stdin -------------------------------------------------
# Written as \uXXXX escapes in the JSON: what YAML forbids raw (DEL, the C1 controls, U+FFFE and
# U+FFFF; all refused anyway, below) or reads as a line break (U+0085, U+2028, U+2029: a double-quoted
# scalar folds it and the spaces around it away) or a byte order mark (U+FEFF). json itself escapes
# the C0 controls.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
# Characters no helm can carry: its `toYaml` turns any text holding one into "" (Helm 3 and 4),
# and Helm 3 refuses them in values when the chart has a schema.
_HELM_DROPS = re.compile("[\x7f-\x9f\ufffe\uffff]")


def _path_part(key: str) -> str:
    """One key of a path as a printable, UTF-8-safe string (a key may hold a lone surrogate)."""
    safe = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return f".{safe}" if re.fullmatch(r"[A-Za-z0-9_-]+", safe) else f"[{safe!r}]"


def _walk(values: Mapping[str, Any], root: str) -> Iterator[tuple[str, Any]]:
    """Every (key path, node) of values, keys as `(path (the key), key)`; never recursive.

    Iterative, so that nesting never meets Python's recursion limit before our own bound.
    """
    stack: list[tuple[str, Any, int]] = [(root, values, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node
        if isinstance(node, Mapping | list | tuple) and depth >= MAX_DEPTH:
            raise InputError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, Mapping):
            for key, child in reversed(list(node.items())):
                if not isinstance(key, str):
                    raise InputError(f"{path}: key {key!r} is not a string")
                stack.append((path + _path_part(key), child, depth + 1))
                yield f"{path}{_path_part(key)} (the key)", key
        elif isinstance(node, list | tuple):
            stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in reversed(list(enumerate(node))))


def check_values(values: Mapping[str, Any], root: str = "values") -> None:
    """Refuse, naming the key path, anything helm would not receive exactly (see the module doc).

    The message never contains the offending value: values may hold secrets.
    """
    for path, node in _walk(values, root):
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InputError(
                    f"{path}: holds a lone surrogate (U+{ord(node[err.start]):04X} at character "
                    f"{err.start}), which is not valid Unicode text"
                ) from None
            if match := _HELM_DROPS.search(node):
                raise InputError(
                    f"{path}: holds U+{ord(match.group()):04X} at character {match.start()}, a "
                    "control character that helm's YAML cannot carry (the chart would lose the text)"
                )
        elif isinstance(node, bool) or node is None or isinstance(node, Mapping | list | tuple):
            continue
        elif isinstance(node, int):
            if abs(node) > MAX_EXACT_INT:
                raise InputError(
                    f"{path}: integer beyond +-(2**53 - 1); helm reads every number as a float64 "
                    "and would change it (pass it as a string)"
                )
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InputError(f"{path}: not a finite number (NaN and infinity have no JSON form)")
        else:
            raise InputError(f"{path}: a {type(node).__name__} is not a JSON value (use a string)")


def encode_values(values: Mapping[str, Any]) -> bytes:
    """The values as helm reads them exactly: checked, UTF-8 JSON, YAML-unsafe characters escaped."""
    check_values(values)
    text = json.dumps(values, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


# -- the runner ---------------------------------------------------------------------------------
def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM helm's process group, give it `grace` seconds, SIGKILL what is left, reap helm.

    helm's pid is its group's id and cannot be reused while helm is unreaped or any member of
    the group lives, so signalling the group never reaches an unrelated process.
    """
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        while loop.time() < until:
            if proc.returncode is not None and not _group_alive(pgid):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.05)
    finally:
        if proc.returncode is None or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        # Reap helm and drain its pipes, so that they are closed while the event loop runs.
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.communicate(), 5.0)


@functools.cache
def command_class() -> type[Any]:
    """`HelmCommand`: pyhelm3's `Command` whose `run` execs helm in its own process group.

    pyhelm3's methods build the arguments and parse the output; only `run` (public, and the one
    place pyhelm3 starts a process) is replaced, plus `install`, which pyhelm3 does not offer.
    The class is made on first use because importing pyhelm3 (and pydantic with it) takes a
    noticeable fraction of a second, which commands that never run helm should not pay.
    """
    import pyhelm3

    class HelmCommand(pyhelm3.Command):  # type: ignore[misc]  # pyhelm3 ships no type hints
        def __init__(
            self,
            *,
            executable: str = "helm",
            kubeconfig: Path | None = None,
            kubecontext: str | None = None,
            default_timeout: str = "120s",
            kill_grace: float = 5.0,
            cache_dir: Path | None = None,
            openapi_validation: bool = False,
        ) -> None:
            super().__init__(
                executable=executable,
                kubeconfig=kubeconfig,
                kubecontext=kubecontext,
                default_timeout=default_timeout,
            )
            self.executable = executable
            self.kill_grace = kill_grace
            self.cache_dir = cache_dir
            self.openapi_validation = openapi_validation
            self.connection: list[str] = []
            if kubeconfig:
                self.connection += ["--kubeconfig", str(kubeconfig)]
            if kubecontext:
                self.connection += ["--kube-context", kubecontext]

        async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
            """Run helm with `input` on stdin; kill its process group if this coroutine is cancelled.

            `input` is always pyhelm3's JSON of the values (its parameter name is kept): it is
            re-encoded exactly (see `encode_values`), as pyhelm3's encoding breaks non-BMP text.
            """
            argv = [self.executable, *(str(part) for part in command), *self.connection]
            if input is not None:
                input = encode_values(json.loads(input))
            log.debug("running %s", " ".join("<stdin>" if a == "-" else a for a in argv))
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # its own process group, so that we can kill all of it
                    env=self.environment(),
                )
            except OSError as err:
                raise HelmUnavailable(f"helm executable {self.executable!r} cannot be run: {err}") from None
            try:
                stdout, stderr = await proc.communicate(input)
            except BaseException:
                await _stop_group(proc, self.kill_grace)
                raise
            if proc.returncode == 0:
                return bytes(stdout)
            raise _pyhelm3_error(proc.returncode or 1, stdout, stderr)

        def environment(self) -> dict[str, str] | None:
            """This process' environment as it is now, plus helm's cache (None: unchanged)."""
            if self.cache_dir is None:
                return None
            return {**os.environ, **cache_environment(self.cache_dir)}

        async def install(
            self,
            release_name: str,
            chart_ref: Path | str,
            values: Mapping[str, Any],
            *,
            namespace: str,
            timeout: str,
        ) -> Any:
            """`helm install` (create only): fails when the name is in use in any state."""
            command = [
                "install",
                release_name,
                chart_ref,
                "--namespace",
                namespace,
                "--output",
                "json",
                "--timeout",
                timeout,
                "--values",
                "-",  # values on stdin
            ]
            if not self.openapi_validation:
                command.append("--disable-openapi-validation")  # see Helm's openapi_validation
            stdout = await self.run(command, json.dumps(dict(values)).encode())
            start = stdout.find(b"{")  # helm may print registry notes before the JSON
            return json.loads(stdout[start:] if start >= 0 else stdout)

    return HelmCommand


_UNAVAILABLE = re.compile(
    r"kubernetes cluster unreachable|connection refused|i/o timeout|no such host"
    r"|network is unreachable|connection reset by peer|tls handshake timeout"
    r"|http2: client connection lost|etcdserver: (?:request timed out|leader changed)"
    r"|the server is currently unable to handle the request",
    re.IGNORECASE,
)
_NAME_IN_USE = re.compile(r"cannot re-?use a name that is still in use|release: already exists", re.I)
_RENDER = re.compile(
    r"failed to render chart|execution error|values don't meet the specifications of the schema", re.I
)
_TIMED_OUT = re.compile(r"timed out waiting for the condition|context deadline exceeded", re.I)


def _pyhelm3_error(returncode: int, stdout: bytes, stderr: bytes) -> Exception:
    """pyhelm3's error class for helm's stderr (its methods catch `ReleaseNotFoundError`)."""
    import pyhelm3.errors as herr

    text = stderr.decode("utf-8", errors="replace")
    cls: type[Exception] = herr.Error
    if _UNAVAILABLE.search(text):  # before "not found": an outage may mention both
        cls = herr.ConnectionError
    elif "release: not found" in text.lower():
        cls = herr.ReleaseNotFoundError
    elif _RENDER.search(text):
        cls = herr.FailedToRenderChartError
    return cls(returncode, stdout, stderr)


# -- helm's cache: one persistent directory per user ---------------------------------------------
def default_cache_dir() -> Path:
    """Where helm's caches live by default: `$XDG_CACHE_HOME` or `~/.cache`, else the temp dir.

    Per user, so that it persists across helm processes and Harvester cycles (an empty cache
    makes every helm process fetch the API server's discovery documents again).
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no password entry
            base = str(Path(tempfile.gettempdir()) / f"dask-panda-session-{os.getuid()}")
    return Path(base) / "dask-panda-session" / "helm"


def prepare_cache_dir(path: Path) -> Path | None:
    """Make `path` (mode 0700) and return it, or None when it cannot be trusted or made.

    The directory holds only what helm and the Kubernetes client cache (the API server's
    discovery documents, never a credential or a value); 0700 all the same, and one owned by
    another user, or a symbolic link, is not used (a planted cache could mislead helm).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            log.warning("helm cache %s: not a directory of this user; helm keeps its own default", path)
            return None
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)
    except OSError as err:
        log.warning("helm cache %s: cannot be used (%s); helm keeps its own default", path, err.strerror)
        return None
    return path


def cache_environment(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """helm's cache variables under `path` (helm's own cache and the Kubernetes client's
    discovery and HTTP cache); a variable already set in `environ` (an operator's choice) wins."""
    environ = os.environ if environ is None else environ
    wanted = {"HELM_CACHE_HOME": str(path / "helm"), "KUBECACHEDIR": str(path / "kube")}
    return {key: value for key, value in wanted.items() if not environ.get(key)}


def _duration(seconds: float) -> str:
    """helm's --timeout: whole seconds, at least one."""
    return f"{max(1, math.ceil(seconds))}s"


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
        deadline_margin: float = 30.0,
        kill_grace: float = 5.0,
        cache_dir: Path | None = None,
        openapi_validation: bool = False,
    ) -> None:
        """Nothing runs here. Each call's deadline is its helm `--timeout` plus `deadline_margin`
        (helm's own timeout first, then ours); `kill_grace` is the SIGTERM-to-SIGKILL interval.

        `cache_dir` (default `default_cache_dir()`, made 0700 on first use) holds helm's caches
        across processes. `openapi_validation` False passes `--disable-openapi-validation` to
        install: on a server with field validation (Kubernetes 1.27 and later) helm's client-side
        check only fetches and parses the server's OpenAPI documents to learn that the server
        validates, then checks nothing itself, and the server refuses an unknown field or a wrong
        type with the same error either way (helm 3 and 4). That probe was a third of an
        install's CPU. True restores helm's default, for an older server.
        """
        from orchestrator.values import CHART_DIR  # leaf import: values imports nothing of helm

        self.executable = executable
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self.kubecontext = kubecontext
        self.chart = Path(chart or CHART_DIR).resolve()
        self.timeout = timeout
        self.deadline_margin = deadline_margin
        self.kill_grace = kill_grace
        self.cache_dir = cache_dir
        self.openapi_validation = openapi_validation
        self._client: Any = None  # a HelmCommand, see command_class()
        self._version: str | None = None
        self._lock = threading.Lock()  # plugins submit and kill from several threads

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The command runner, made on first use (it checks that the helm executable exists)."""
        with self._lock:
            if self._client is None:
                if shutil.which(self.executable) is None:
                    raise HelmUnavailable(f"helm executable {self.executable!r} not found")
                cache = prepare_cache_dir(self.cache_dir or default_cache_dir())
                self._client = command_class()(
                    executable=self.executable,
                    kubeconfig=self.kubeconfig,
                    kubecontext=self.kubecontext,
                    default_timeout=_duration(self.timeout),
                    kill_grace=self.kill_grace,
                    cache_dir=cache,
                    openapi_validation=self.openapi_validation,
                )
            return self._client

    @property
    def version(self) -> str:
        """helm's version without the leading "v" (e.g. "4.1.4"); runs `helm version` once."""
        if self._version is None:
            raw = self._run(lambda: self.client.version(), "version")
            self._version = str(raw).strip().removeprefix("v")
        return self._version

    def _run(
        self,
        make: Callable[[], Awaitable[T]],
        what: str,
        secrets: Sequence[str] = (),
        timeout: float | None = None,
    ) -> T:
        """Run one coroutine to completion under a deadline; translate its errors."""
        import pyhelm3.errors as herr

        deadline = (timeout or self.timeout) + self.deadline_margin

        async def bounded() -> T:
            return await asyncio.wait_for(make(), deadline)

        try:
            return asyncio.run(bounded())
        except TimeoutError:
            raise HelmTimeout(f"helm {what}: no answer within {deadline:.0f} s (killed)") from None
        except herr.Error as err:
            raise _typed(err, what, secrets) from None
        except (json.JSONDecodeError, yaml.YAMLError) as err:  # not ValueError: InputError is one
            raise HelmError(f"helm {what}: unreadable output: {type(err).__name__}") from None

    # -- operations ------------------------------------------------------------------------------
    def chart_object(self) -> Any:
        """pyhelm3's Chart for the local chart directory, built from Chart.yaml (no helm call)."""
        from pyhelm3.models import Chart, ChartMetadata

        metadata = yaml.safe_load((self.chart / "Chart.yaml").read_text(encoding="utf-8"))
        return Chart(self.client, ref=self.chart, metadata=ChartMetadata(**metadata))

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        """The release's current revision, or None when there is no such release."""
        import pyhelm3.errors as herr

        async def status() -> Any:
            try:
                return await self.client.status(name, namespace=namespace)
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
        """`helm install` (no --wait; hooks are awaited by helm within `timeout`).

        Raises `HelmReleaseExists` when the name is in use (whatever its state), `InputError`
        (naming the key path) for values helm would not receive exactly, before helm runs.
        """
        check_values(values)
        chart = self.chart_object()
        seconds = timeout or self.timeout

        async def install() -> Any:
            return await self.client.install(
                name, chart.ref, values, namespace=namespace, timeout=_duration(seconds)
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

        seconds = timeout or self.timeout

        async def uninstall() -> bool:
            try:
                await self.client.uninstall(
                    name, namespace=namespace, no_hooks=no_hooks, timeout=_duration(seconds), wait=wait
                )
            except herr.ReleaseNotFoundError:
                return False
            return True

        return self._run(uninstall, f"uninstall {namespace}/{name}", timeout=seconds)

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        """The user-supplied values of a release (used to re-render its cleanup step)."""

        async def values() -> Any:
            return await self.client.get_values(name, namespace=namespace)

        data = self._run(values, f"get values {namespace}/{name}")
        return dict(data or {})

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        """Every release of the namespace in any state (one helm call)."""

        async def listing() -> Any:
            return await self.client.list(
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
        check_values(values)

        async def template() -> Any:
            objects = await self.client.template(name, self.chart, dict(values), namespace=namespace)
            return list(objects)

        objects = self._run(template, f"template {name}")
        if show_only:
            objects = [o for o in objects if o and o.get("kind") == show_only]
        return [o for o in objects if o]


def _typed(err: Exception, what: str, secrets: Sequence[str]) -> HelmError:
    """This package's error for a failed helm command, decided by helm's text."""
    message = scrub(_stderr(err), secrets)
    if _UNAVAILABLE.search(message):
        return HelmUnavailable(f"helm {what}: cluster unreachable: {message}")
    if _NAME_IN_USE.search(message):
        return HelmReleaseExists(f"helm {what}: the release name is in use: {message}")
    if _RENDER.search(message):
        return HelmRenderError(f"helm {what}: the chart refused the values: {message}")
    if _TIMED_OUT.search(message):
        return HelmTimeout(f"helm {what}: {message}")
    return HelmError(f"helm {what}: {message}")


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
