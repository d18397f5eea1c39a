"""The `dask-panda-session` command line: a thin adapter over the service layer, with the habits
of kubectl and helm.

* The namespace comes from `-n`, else `DPS_NAMESPACE`, else the kubeconfig context's namespace
  (in a pod: the pod's own), else `default`; every "nothing found" message names it.
* Global options (`--kubeconfig`, `-n`, `-q`, `--timeout`, ...) are accepted before or after the
  subcommand; `-h` and `--version` work everywhere; help shows defaults, env vars and examples.
* `-o table|wide|json|yaml` on every command; tables are kubectl-like narrow columns that never
  fold a name; JSON/YAML is one document on stdout, messages go to stderr.
* Exit status: 0 success, 2 bad input (nothing was created), 1 anything else, including a named
  session that does not exist (like `kubectl get`).

Secrets: a password given with `--password-file`/`--password-stdin` goes into the job's secrets
in memory and from there into the per-job Secret; it is never on a command line, in a log or in
the output (shown as `<redacted>`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator import __version__
from orchestrator import kube as kube_mod
from orchestrator.doctor import PROBE_IMAGE_ENV, ROLE_FILE, Check, run_doctor
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.helm import HelmUnavailable
from orchestrator.job import load_job_file
from orchestrator.netprobe import DEFAULT_PROBE_IMAGE, NetworkPolicyProbe
from orchestrator.service import SessionService, Settings
from orchestrator.session import FINAL_PHASES, Phase, SessionState


def _argument_type(self: typer.core.TyperArgument, ctx: Any) -> str | None:
    """An argument with a metavar shows just that, as an option does: typer would print its
    Python type after it (`RELEASE <list[str]>`), which tells a user nothing."""
    return None if self.metavar is not None else self.display_type(ctx)


# typer (0.29) offers no per-argument class or setting for this; options already behave so.
setattr(typer.core.TyperArgument, "display_type_rich", _argument_type)  # noqa: B010

app = typer.Typer(
    name="dask-panda-session",
    help=(
        "One PanDA job -> one Helm release of a Dask session on Kubernetes: render, submit, "
        "watch, delete, and keep the namespace clean.\n\n"
        "Global options may come before or after the command."
    ),
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session render job.json -q GOOGLE_DASK -o manifests\n"
        "  dask-panda-session submit job.json -n sessions --wait\n"
        "  dask-panda-session status -o wide\n"
        "  dask-panda-session doctor -n sessions"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich markup would eat "[env var: ...]"
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

DEFAULT_INSTALL_TIMEOUT = 300.0
DEFAULT_UNINSTALL_TIMEOUT = 120.0


class Output(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"


class RenderOutput(StrEnum):
    values = "values"
    manifests = "manifests"
    json = "json"
    yaml = "yaml"


class Context:
    """The global options, resolved once per run and shared by every command."""

    settings: Settings = Settings()
    namespace_source: str = "default"
    timeout: float | None = None


CTX = Context()

OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="table, wide (adds addresses, message, dashboard), json or yaml."),
]
ValuesOpt = Annotated[
    list[str] | None,
    typer.Option("--values", "-f", metavar="FILE", help="More values files, merged after the queue's."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="One value (a.b=c, typed as YAML), after every -f, like helm."
    ),
]
JobArg = Annotated[
    str, typer.Argument(metavar="JOB", help="pandaJobData.out / job JSON file, or - for stdin.")
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="The JupyterLab password of an interactive job, read from FILE (first line).",
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the JupyterLab password from stdin (first line).")
]

# Global options, accepted anywhere on the command line: (names, takes a value).
_GLOBAL_OPTIONS: dict[str, bool] = {
    "--kubeconfig": True,
    "--context": True,
    "--helm": True,
    "--namespace": True,
    "-n": True,
    "--queue": True,
    "-q": True,
    "--timeout": True,
    "--chart": True,
    "--values-dir": True,
    "--verbose": False,
    "-v": False,
    "--version": False,
}


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Move the global options (with their values) in front of the subcommand, so that
    `status -n x` works like `-n x status` (kubectl and helm accept both)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        takes_value = _GLOBAL_OPTIONS.get(name)
        if takes_value is None and arg[:2] in ("-n", "-q") and len(arg) > 2 and not arg.startswith("--"):
            front.append(arg)  # -nNAMESPACE
        elif takes_value is None:
            rest.append(arg)
        elif takes_value and "=" not in arg and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        else:
            front.append(arg)
        i += 1
    return front + rest


def fail(message: str, code: int) -> NoReturn:
    err.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), message))


def note(message: str) -> None:
    err.print(Text(f"note: {message}"))


_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def one_line(error: DaskPandaSessionError) -> str:
    """A short message that says what to check, for errors whose text is a library's essay."""
    text = str(error)
    if isinstance(error, kube_mod.KubeUnavailable):
        where = _HOST_PORT.search(text)
        why = _ERRNO.search(text)
        if "no usable Kubernetes configuration" in text:
            return f"{text[:200]} (check --kubeconfig, --context and KUBECONFIG)"
        if where or why or "unreachable" in text:
            at = f" at {where.group(1)}:{where.group(2)}" if where else ""
            reason = f" ({why.group(1).strip()})" if why else ""
            return (
                f"cannot reach the Kubernetes API server{at}{reason}: check --kubeconfig/--context "
                f"(KUBECONFIG) and that the cluster is up"
            )
    if isinstance(error, HelmUnavailable) and "not found" in text:
        return f"{text}: put helm on PATH, or name it with --helm or DPS_HELM"
    return text if len(text) <= 300 else text[:300] + "..."


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Map the package's errors to exit status 2 (bad input) or 1 (anything else), one line each."""
    try:
        yield
    except InputError as e:
        fail(str(e), 2)
    except DaskPandaSessionError as e:
        fail(one_line(e), 1)


class _ProgressHandler(logging.Handler):
    """Shows the service's own log lines (its steps) in the spinner of a long wait."""

    def __init__(self, update: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.update = update

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.update(record.getMessage()[:150])


@contextlib.contextmanager
def progress(what: str) -> Iterator[None]:
    """A spinner on stderr (a terminal only) for a wait that may take longer than a second,
    updated with each step the service and helm log (helm's command line holds no secret: the
    values go through stdin)."""
    if not err.is_terminal:
        yield
        return
    logger = logging.getLogger("orchestrator")
    with err.status(what) as status:
        handler = _ProgressHandler(lambda m: status.update(f"{what}: {m}"))
        old_level = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.DEBUG:
            logger.setLevel(logging.DEBUG)  # the root's handler still shows only what -v asks
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)


def service() -> SessionService:
    return SessionService(CTX.settings)


# -- global options ------------------------------------------------------------------------------


def context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    """The namespace of the kubeconfig context in use (in a pod: the pod's own), or None."""
    from kubernetes import config as k8s_config

    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except (k8s_config.ConfigException, OSError, TypeError, ValueError, yaml.YAMLError):
        contexts, active = [], None
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    if chosen:
        namespace = (chosen.get("context") or {}).get("namespace")
        return str(namespace) if namespace else None
    pod_namespace = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if not kubeconfig and pod_namespace.is_file():
        return pod_namespace.read_text(encoding="utf-8").strip() or None
    return None


def find_helm() -> str:
    """`helm` on PATH, else the checkout's pinned helm next to the `.venv` this runs from."""
    import shutil

    if shutil.which("helm"):
        return "helm"
    for venv in (Path(sys.prefix), Path(sys.executable).parent.parent):
        pinned = venv.parent / ".tools" / "bin" / "helm"
        if pinned.is_file() and os.access(pinned, os.X_OK):
            return str(pinned)
    return "helm"


def _version(value: bool) -> None:
    if value:
        out.print(f"dask-panda-session {__version__}")
        raise typer.Exit(0)


def _dir_option(envvar: str, text: str) -> Any:
    """A global option naming a directory, also taken from `envvar` (shown in the help)."""
    return typer.Option(metavar="DIR", envvar=envvar, show_envvar=True, help=text)


@app.callback()
def main_options(
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            envvar="KUBECONFIG",
            show_envvar=True,
            help="kubeconfig file [default: ~/.kube/config; in a pod: in-cluster].",
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option(metavar="NAME", help="kubeconfig context [default: the current one].")
    ] = None,
    helm: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            envvar="DPS_HELM",
            show_envvar=True,
            help="helm executable [default: helm on PATH, else the checkout's .tools/bin/helm].",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NS",
            envvar="DPS_NAMESPACE",
            show_envvar=True,
            help="Namespace of the sessions [default: the kubeconfig context's, else default].",
        ),
    ] = None,
    queue: Annotated[
        str,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            envvar="DPS_QUEUE",
            show_envvar=True,
            show_default=True,
            help="PanDA queue: <QUEUE>.yaml in the values directory, or a values file path.",
        ),
    ] = "GOOGLE_DASK",
    chart: Annotated[
        Path | None,
        _dir_option(
            "DPS_CHART",
            "The chart directory [default: the checkout's charts/dask-panda-session, or the installed package's copy].",
        ),
    ] = None,
    values_dir: Annotated[
        Path | None,
        _dir_option(
            "DPS_VALUES_DIR",
            "Where a queue's <QUEUE>.yaml is [default: the checkout's values/, or the installed package's copy].",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help=(
                "The longest any one wait of the command may take: a helm install or uninstall, "
                f"submit --wait, status --watch [default: {DEFAULT_INSTALL_TIMEOUT:.0f} for an install, "
                f"{DEFAULT_UNINSTALL_TIMEOUT:.0f} for an uninstall, no limit for --wait/--watch]."
            ),
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step to stderr.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """One PanDA job -> one Helm release of a Dask session on Kubernetes."""
    del version
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        # urllib3 logs every retry of an unreachable server (and the kubernetes client resets its
        # logger's level): the one-line error says it once.
        handler.addFilter(lambda r: not r.name.startswith("urllib3") or r.levelno >= logging.ERROR)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    if kubeconfig and not Path(kubeconfig.split(os.pathsep)[0]).is_file():
        fail(f"kubeconfig {kubeconfig}: no such file", 2)
    if timeout is not None and timeout <= 0:
        fail(f"--timeout: must be more than 0 seconds, got {timeout:g}", 2)
    if chart is not None and not (chart / "Chart.yaml").is_file():
        fail(f"--chart {chart}: not a chart directory (no Chart.yaml)", 2)
    if values_dir is not None and not values_dir.is_dir():
        fail(f"--values-dir {values_dir}: no such directory", 2)
    if namespace:
        ns, source = namespace, "-n/DPS_NAMESPACE"
    elif found := context_namespace(kubeconfig, context):
        ns, source = found, "kubeconfig context"
    else:
        ns, source = "default", "default"
    CTX.namespace_source = source
    CTX.timeout = timeout
    CTX.settings = Settings(
        namespace=ns,
        queue=queue,
        chart=chart,
        values_dir=values_dir,
        helm_executable=helm or find_helm(),
        kubeconfig=kubeconfig or None,
        kube_context=context,
        install_timeout=timeout or DEFAULT_INSTALL_TIMEOUT,
        uninstall_timeout=timeout or DEFAULT_UNINSTALL_TIMEOUT,
    )


@app.command(epilog="Examples:\n\n\b\n  dask-panda-session version")
def version() -> None:
    """Print the version."""
    out.print(f"dask-panda-session {__version__}")


# -- input ---------------------------------------------------------------------------------------


def _load(job: str) -> Mapping[str, Any]:
    with errors():
        return load_job_file(job)


def _read_password(password_file: Path | None, password_stdin: bool, job: str) -> str | None:
    """The password from a file or stdin (first line, newline dropped); never from argv."""
    if password_file is not None and password_stdin:
        fail("--password-file and --password-stdin: give one of them", 2)
    if password_stdin:
        if job == "-":
            fail("--password-stdin: the job is read from stdin already; use --password-file", 2)
        return sys.stdin.readline().rstrip("\r\n")
    if password_file is not None:
        try:
            with open(password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as e:
            fail(f"--password-file {password_file}: cannot be read: {e.strerror}", 2)
    return None


def with_password(data: Mapping[str, Any], password: str) -> dict[str, Any]:
    """A copy of the job with `password` as its secrets' `password` entry (the one a job's
    JupyterLab password is looked up under first)."""
    doc = copy.deepcopy(dict(data))
    params = doc
    if "PandaID" not in doc and len(doc) == 1:
        ((key, inner),) = doc.items()
        if isinstance(inner, Mapping):
            params = doc[key] = dict(inner)
    secrets: Any = params.get("secrets")
    if isinstance(secrets, str) and secrets.strip() not in ("", "NULL", "null", "None"):
        try:
            secrets = json.loads(secrets)
        except json.JSONDecodeError:
            raise InputError("secrets: is a string but not valid JSON (value not shown)") from None
    elif not isinstance(secrets, Mapping):
        secrets = {}
    if not isinstance(secrets, Mapping):
        raise InputError("secrets: must be a JSON object to add the password to")
    params["secrets"] = {**secrets, "password": password}
    return doc


def parse_sets(sets: Sequence[str]) -> dict[str, Any]:
    """`--set a.b=c` (repeatable) into nested values; the value is typed as YAML, like helm."""
    values: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise InputError(f"--set {item!r}: expected KEY=VALUE with KEY like a.b.c")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = values
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: {part} is set to a value already")
            node = child
        node[parts[-1]] = value
    return values


@contextlib.contextmanager
def values_files(files: Sequence[str] | None, sets: Sequence[str] | None) -> Iterator[list[str]]:
    """The -f files, then the --set values as one more file (private, removed afterwards)."""
    paths = list(files or ())
    if not sets:
        yield paths
        return
    with errors():
        overrides = parse_sets(sets)
    with tempfile.TemporaryDirectory(prefix="dps-set-") as tmp:
        path = Path(tmp) / "set.yaml"
        path.write_text(yaml.safe_dump(overrides), encoding="utf-8")
        yield [*paths, str(path)]


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter, and no machine
    path in a pasted log)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _asked_replicas(files: Sequence[str]) -> tuple[int, str] | None:
    """The last `workers.replicas` the -f/--set files give, and which file."""
    found = None
    for path in files:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        workers = doc.get("workers") if isinstance(doc, Mapping) else None
        replicas = workers.get("replicas") if isinstance(workers, Mapping) else None
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            found = (replicas, "--set" if Path(path).name == "set.yaml" else path)
    return found


def _render_notes(svc: SessionService, data: Mapping[str, Any], queue: str, files: list[str]) -> None:
    """The queue in use (a warning when its file names another), the job's adjustments, and a
    note when a -f/--set worker count loses to the job's own."""
    config = svc.queue(queue, files)
    note(f"queue {config.name} ({_shown(config.files[0])})")
    asked = queue if not queue.endswith((".yaml", ".yml")) else None
    if asked and config.name != asked:
        warn(f"the values file of queue {asked} says queue.name {config.name}")
    job, rendered = svc.render(data, queue=queue, values_files=files)
    for adjustment in rendered.adjustments:
        note(adjustment)
    replicas = _asked_replicas(files)
    got = (rendered.values.get("workers") or {}).get("replicas")
    if replicas is not None and got != replicas[0]:
        note(
            f"workers.replicas {replicas[0]} from {replicas[1]} is not used: the job asks for {got} "
            f"({job.workers_source}), which wins over values files"
        )


# -- output --------------------------------------------------------------------------------------


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's AGE: 45s, 7m, 3h, 2d."""
    if since is None:
        return "<unknown>"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


COLUMNS = ("NAME", "PANDAID", "MODE", "PHASE", "REASON", "WORKERS", "AGE")
WIDE_COLUMNS = (*COLUMNS, "SCHEDULER", "DASHBOARD", "JUPYTERLAB", "MESSAGE")


def state_row(state: SessionState, now: datetime, wide: bool) -> list[str]:
    row = [
        state.release,
        str(state.pandaid or "<none>"),
        state.mode or "<none>",
        str(state.phase),
        state.reason or "<none>",
        f"{state.workers_ready}/{state.workers_wanted}",
        age(state.timings.submitted, now),
    ]
    if wide:
        row += [
            state.scheduler_address or "<none>",
            state.dashboard_url or "<none>",
            state.jupyter_url or "<none>",
            state.message or "<none>",
        ]
    return row


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """kubectl's table: left-aligned columns three spaces apart, never folded (a long last
    column runs on)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def states_text(states: Sequence[SessionState], wide: bool, now: datetime) -> str:
    return columns(WIDE_COLUMNS if wide else COLUMNS, [state_row(s, now, wide) for s in states])


def emit(doc: Any, output: Output | RenderOutput) -> bool:
    """Write `doc` as JSON or YAML on stdout; False for a table output (the caller prints it)."""
    if output in (Output.json, RenderOutput.json):
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return True
    if output in (Output.yaml, RenderOutput.yaml):
        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        return True
    return False


def print_states(states: Sequence[SessionState], output: Output, now: datetime) -> None:
    if not emit([s.to_dict() for s in states], output):
        sys.stdout.write(states_text(states, output is Output.wide, now) + "\n")


def _follow(
    svc: SessionService,
    releases: Sequence[str],
    namespace: str,
    until: Callable[[SessionState], bool],
    timeout: float | None,
    wide: bool,
    interval: float = 2.0,
) -> list[SessionState]:
    """Poll the sessions (one LIST per poll) with a live table on stderr until `until` holds
    for all (or the timeout passes); the caller prints the final state on stdout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    submitted = {r: svc.clock() for r in releases}
    with Live(console=err, refresh_per_second=4, transient=True) as live:
        while True:
            states = svc.observe(releases, namespace=namespace, submitted=submitted)
            ordered = [states[r] for r in releases]
            live.update(Text(states_text(ordered, wide, svc.clock())))
            if all(until(s) for s in ordered):
                return ordered
            if deadline is not None and time.monotonic() > deadline:
                warn(f"stopped waiting after {timeout:g} s (--timeout)")
                return ordered
            svc.sleep(interval)


# -- commands ------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session render job.json\n"
        "  dask-panda-session render job.json -q GOOGLE_DASK -f site.yaml --set workers.replicas=4\n"
        "  dask-panda-session render job.json -o manifests > release.yaml\n"
        "  dask-panda-session render job.json --password-file pw.txt"
    )
)
def render(
    job: JobArg,
    values: ValuesOpt = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="One value (a.b=c, typed as YAML), after every -f, like helm."
        ),
    ] = None,
    output: Annotated[
        RenderOutput,
        typer.Option(
            "--output",
            "-o",
            help="values (YAML, the Secret redacted; also yaml), json, or manifests (helm template).",
        ),
    ] = RenderOutput.values,
    password_file: PasswordFileOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Show the release values (or manifests) a job would get; touches no cluster.

    Every output runs the chart's own checks (helm renders the manifests, even for -o values),
    so a values file that passes here installs.
    """
    password = _read_password(password_file, password_stdin, job)
    data = _load(job)
    if password is not None:
        with errors():
            data = with_password(data, password)
    svc = service()
    queue = CTX.settings.queue
    with values_files(values, set_) as files, errors():
        _render_notes(svc, data, queue, files)
        _, rendered = svc.render(data, queue=queue, values_files=files)
        # The chart's cross-field checks (`fail`) run in helm: render the manifests every time.
        objects = svc.helm.template(rendered.release, rendered.namespace, rendered.values)
    if output is RenderOutput.manifests:
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
        return
    doc = {
        "release": rendered.release,
        "namespace": rendered.namespace,
        "values": rendered.values,
        "secret": None
        if not rendered.secret
        else {"name": rendered.secret_name, "data": dict.fromkeys(rendered.secret.keys(), "<redacted>")},
    }
    if not emit(doc, RenderOutput.json if output is RenderOutput.json else RenderOutput.yaml):
        raise AssertionError("unreachable")


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session submit job.json --wait\n"
        "  dask-panda-session submit job.json -n sessions -q GOOGLE_DASK -o json\n"
        "  dask-panda-session submit job.json --set job.lifetimeSeconds=7200\n"
        "  pass show jupyter | dask-panda-session submit job.json --password-stdin"
    )
)
def submit(
    job: JobArg,
    values: ValuesOpt = None,
    set_: SetOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the session runs (or ends), showing progress.")
    ] = False,
    output: OutputOpt = Output.table,
    password_file: PasswordFileOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Install the job's session (idempotent: a second submit returns the existing release).

    An interactive job needs a JupyterLab password: in the job's secrets, or given here with
    --password-file/--password-stdin (never on the command line).
    """
    password = _read_password(password_file, password_stdin, job)
    data = _load(job)
    if password is not None:
        with errors():
            data = with_password(data, password)
    svc = service()
    ns, queue = CTX.settings.namespace, CTX.settings.queue
    with values_files(values, set_) as files, errors():
        _render_notes(svc, data, queue, files)
        with progress(f"installing into namespace {ns}"):
            result = svc.submit(data, queue=queue, values_files=files, namespace=ns)
    with errors():
        if not result.created:
            note(f"release {result.namespace}/{result.release} exists already: not submitted again")
        if wait:
            states = _follow(
                svc,
                [result.release],
                result.namespace,
                lambda s: s.phase is not Phase.STARTING,
                timeout=CTX.timeout,
                wide=output is Output.wide,
            )
        else:
            states = list(
                svc.observe(
                    [result.release], namespace=result.namespace, submitted={result.release: svc.clock()}
                ).values()
            )
    doc = {**states[0].to_dict(), "created": result.created, "adjustments": list(result.adjustments)}
    if not emit(doc, output):
        print_states(states, output, svc.clock())
    if wait and states[0].phase in (Phase.FAILED, Phase.CANCELLED):
        raise typer.Exit(1)


def _select(
    svc: SessionService, names: Sequence[str], found: Mapping[str, SessionState], ns: str
) -> tuple[list[SessionState], list[str]]:
    """The sessions named (a release or a PandaID), and the names that match none."""
    selected: list[SessionState] = []
    missing: list[str] = []
    for name in names:
        if name in found:
            selected.append(found[name])
            continue
        if name.isdigit():
            matches = [s for s in found.values() if s.pandaid == int(name)]
            if matches:
                selected += matches
                continue
        elif svc.helm.release(name, ns) is not None:
            # installed, no pod yet: starting (within its grace), as right after a submit
            selected += svc.observe([name], namespace=ns, submitted={name: svc.clock()}).values()
            continue
        missing.append(name)
    return selected, missing


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session status\n"
        "  dask-panda-session status dask-1759473585 -o wide\n"
        "  dask-panda-session status 1759473585          # by PandaID\n"
        "  dask-panda-session status -w -n sessions\n"
        "  dask-panda-session status -o json | jq '.[].phase'"
    )
)
def status(
    releases: Annotated[
        list[str] | None,
        typer.Argument(metavar="RELEASE|PANDAID", help="Sessions [default: every one in the namespace]."),
    ] = None,
    output: OutputOpt = Output.table,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="A live table until every session has ended.")
    ] = False,
) -> None:
    """The state of sessions: phase, reason, workers, age (-o wide: addresses, message).

    A named session that does not exist is an error (exit 1), like `kubectl get`.
    """
    svc = service()
    ns = CTX.settings.namespace
    with errors():
        found = svc.observe(namespace=ns)
        if releases:
            states, missing = _select(svc, releases, found, ns)
        else:
            states, missing = list(found.values()), []
        if watch and states:
            states = _follow(
                svc,
                [s.release for s in states],
                ns,
                lambda s: s.phase in FINAL_PHASES,
                timeout=CTX.timeout,
                wide=output is Output.wide,
            )
    for name in missing:
        err.print(Text.assemble(("error: ", "bold red"), f'session "{name}" not found in namespace {ns}'))
    if states or output in (Output.json, Output.yaml):
        print_states(states, output, svc.clock())
    elif not missing:
        err.print(f"No sessions in namespace {ns}.")
    if missing:
        raise typer.Exit(1)


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session delete dask-1759473585\n"
        "  dask-panda-session delete dask-1 dask-2 -n sessions --ignore-not-found"
    )
)
def delete(
    releases: Annotated[list[str], typer.Argument(metavar="RELEASE", help="Releases to end and sweep.")],
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A release that does not exist is not an error.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """End sessions and verify that nothing labelled for them remains.

    The uninstall runs the chart's hooks; a wedged hook is bypassed (the chart's cleanup step is
    run directly) and every labelled object is deleted and checked gone.
    """
    svc = service()
    ns = CTX.settings.namespace
    dirty = False
    docs = []
    for release in releases:
        with errors(), progress(f"deleting {ns}/{release}"):
            result = svc.sweep(release, namespace=ns)
        docs.append(
            {
                "release": release,
                "namespace": ns,
                "found": result.release_existed,
                "clean": result.clean,
                "hooks_bypassed": result.used_fallback,
                "remaining": list(result.remaining),
                "notes": list(result.notes),
            }
        )
        for text in result.notes:
            note(f"{release}: {text}")
        if not result.release_existed and not ignore_not_found:
            err.print(
                Text.assemble(
                    ("error: ", "bold red"),
                    f'release "{release}" not found in namespace {ns} (its leftovers, if any, were removed)',
                )
            )
            dirty = True
        elif not result.clean:
            dirty = True
        if output in (Output.table, Output.wide):
            if not result.clean:
                out.print(f"{release}: still present: {', '.join(result.remaining)}")
            elif result.release_existed:
                bypass = " (hooks bypassed)" if result.used_fallback else ""
                out.print(f'release "{release}" deleted from namespace {ns}, nothing left{bypass}')
    emit(docs, output)
    if dirty:
        raise typer.Exit(1)


def _report_failures(what: str, failures: Mapping[str, Exception]) -> None:
    for release, error in sorted(failures.items()):
        message = one_line(error) if isinstance(error, DaskPandaSessionError) else str(error)
        err.print(Text.assemble(("error: ", "bold red"), f"{what} {release}: {message}"))
    if failures:
        raise typer.Exit(1)


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session gc --dry-run\n"
        "  dask-panda-session gc -n sessions --grace 60 -o json"
    )
)
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    grace: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help=f"Leave orphans younger than this (a submit may be at work) [default: {Settings().gc_grace_seconds:.0f}].",
        ),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove orphans (objects whose release is gone) and releases older than their lifetime.

    Each release is handled on its own; any that could not be is shown and the exit status is 1.
    """
    svc = service()
    ns = CTX.settings.namespace
    if grace is not None:
        if grace < 0:
            fail(f"--grace: must be 0 or more seconds, got {grace:g}", 2)
        from dataclasses import replace

        svc.settings = replace(svc.settings, gc_grace_seconds=grace)
    with errors(), progress(f"collecting in namespace {ns}"):
        actions = svc.gc(namespace=ns, dry_run=dry_run)
    doc = {
        "namespace": ns,
        "dry_run": dry_run,
        "removed": [{"release": a.release, "why": a.why, "objects": list(a.objects)} for a in actions],
        "failures": {r: str(e) for r, e in sorted(actions.failures.items())},
        "directories": actions.directories.to_dict() if actions.directories else None,
        "directory_notes": list(actions.directory_notes),
    }
    if not emit(doc, output):
        verb = "would remove" if dry_run else "removed"
        for action in actions:
            extra = f": {', '.join(action.objects)}" if action.objects else ""
            out.print(f"{verb} {action.release} ({action.why}){extra}")
        if actions.directories is not None:
            d = actions.directories
            out.print(
                f"job directories of gone releases: {d.found} found, {d.removed} {verb}, "
                f"{d.young} younger than the grace period, {d.failed} not removable, "
                f"{d.kept} of live releases left alone"
            )
        for note in actions.directory_notes:
            out.print(f"job directories: {note}")
        if not actions and not actions.failures:
            out.print(
                f"nothing to collect in namespace {ns} (orphans younger than "
                f"{svc.settings.gc_grace_seconds:.0f} s are left alone: see --grace)"
            )
    _report_failures("cannot collect", actions.failures)


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session enforce -n sessions\n"
        "  */5 * * * *  dask-panda-session enforce -n sessions -o json   # crontab"
    )
)
def enforce(output: OutputOpt = Output.table) -> None:
    """End every session past its lifetime, lease or startup timeout (run it from cron).

    One pod LIST for the namespace; a helm uninstall only for the sessions it ends. Each session
    is ended on its own; any that could not be is shown and the exit status is 1.
    """
    svc = service()
    ns = CTX.settings.namespace
    with errors(), progress(f"enforcing deadlines in namespace {ns}"):
        ended = svc.enforce_deadlines(namespace=ns)
    doc = {
        "namespace": ns,
        "ended": dict(sorted(ended.items())),
        "failures": {r: str(e) for r, e in sorted(ended.failures.items())},
    }
    if not emit(doc, output):
        for release, reason in sorted(ended.items()):
            out.print(f"ended {release}: {reason}")
        if not ended and not ended.failures:
            out.print(f"no session in namespace {ns} is past a deadline")
    _report_failures("cannot end", ended.failures)


@app.command(
    epilog=(
        "Examples:\n\n\b\n"
        "  dask-panda-session doctor -n sessions -q GOOGLE_DASK\n"
        "  dask-panda-session --kubeconfig harvester.kubeconfig doctor -o json"
    )
)
def doctor(
    role: Annotated[
        Path,
        typer.Option(
            metavar="FILE",
            show_default="deploy/orchestrator-rbac.yaml of the checkout or the installed package",
            help="The Role whose every rule is checked.",
        ),
    ] = ROLE_FILE,
    probe_image: Annotated[
        str,
        typer.Option(
            metavar="IMAGE",
            envvar=PROBE_IMAGE_ENV,
            show_envvar=True,
            help="Image of the NetworkPolicy probe's two pods (any image with python3).",
        ),
    ] = DEFAULT_PROBE_IMAGE,
    probe_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            envvar="DPS_PROBE_TIMEOUT",
            show_envvar=True,
            min=1,
            help="How long the probe's pods may take to be scheduled, pull the image, run and "
            "report; past it the verdict is 'cannot tell'.",
        ),
    ] = 90.0,
    output: OutputOpt = Output.table,
) -> None:
    """Check helm, the cluster, the clock, the namespace, every right of the orchestrator's Role
    (each verb asked of the API server), the queue's shared claim (why it is not Bound), the
    proxy Secret, and whether the cluster enforces NetworkPolicies (two short-lived pods). Exit 1
    when a check fails; warnings (such as policies not enforced) do not fail.
    """
    svc = service()
    ns = CTX.settings.namespace
    probe = NetworkPolicyProbe(image=probe_image, timeout=probe_timeout, sleep=svc.sleep)
    with errors(), progress(f"checking namespace {ns}"):
        checks = run_doctor(svc, ns, queue=CTX.settings.queue, role_file=role, netpol_probe=probe)
    if not emit({"namespace": ns, "checks": [c.to_dict() for c in checks]}, output):
        sys.stdout.write(columns(("CHECK", "OK", "DETAIL"), [_check_row(c) for c in checks]) + "\n")
    for check in checks:
        if check.ok is None:
            warn(f"{check.name}: {check.detail}")
    if any(c.ok is False for c in checks):
        raise typer.Exit(1)


def _check_row(check: Check) -> list[str]:
    detail = check.detail if check.error is None else one_line(check.error)
    return [check.name, "warn" if check.ok is None else "yes" if check.ok else "NO", detail]


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (a usage error is 2)."""
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="dask-panda-session")
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()


__all__ = ["app", "hoist_global_options", "main", "parse_sets", "with_password"]
