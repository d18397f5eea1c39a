"""The `dask-panda-session` command line: a thin adapter over the service layer.

Exit status: 0 success, 2 bad input (nothing was created), 1 any other failure. Secrets are shown
as `<redacted>`; JSON output is one document on stdout, messages go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator import __version__
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.job import load_job_file
from orchestrator.service import SessionService, Settings
from orchestrator.session import FINAL_PHASES, Phase, SessionState

app = typer.Typer(
    name="dask-panda-session",
    help="One PanDA job -> one Helm release of a Dask session on Kubernetes: render, submit, watch, delete.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Tables are wide: when not on a terminal (CI logs, pipes) rich would wrap them at 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200"))
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)


class ValuesOutput(StrEnum):
    values = "values"
    manifests = "manifests"


class Output(StrEnum):
    table = "table"
    json = "json"


# Global options live on the callback and in this object, shared by every command.
class Context:
    settings: Settings = Settings()


CTX = Context()

NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace of the sessions [env DPS_NAMESPACE].")
]
QueueOpt = Annotated[
    str | None, typer.Option("--queue", "-q", help="PanDA queue (values/<QUEUE>.yaml) or a values file path.")
]
ValuesOpt = Annotated[
    list[str] | None, typer.Option("--values", "-f", help="Extra values file(s), merged after the queue's.")
]
JobArg = Annotated[
    str, typer.Argument(help="The PanDA job: a pandaJobData.out / job JSON file, or - for stdin.")
]


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Map the package's errors to exit status 2 (bad input) or 1 (anything else)."""
    try:
        yield
    except InputError as e:
        fail(str(e), 2)
    except DaskPandaSessionError as e:
        fail(str(e), 1)


def service() -> SessionService:
    return SessionService(CTX.settings)


@app.callback()
def main_options(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file [env KUBECONFIG; in a pod: in-cluster].")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    helm: Annotated[str | None, typer.Option(help="helm executable [env DPS_HELM, default helm].")] = None,
    namespace: NamespaceOpt = None,
    queue: QueueOpt = None,
    timeout: Annotated[float, typer.Option(help="Install/uninstall timeout, seconds.")] = 300.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what is done to stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    CTX.settings = Settings(
        namespace=namespace or os.environ.get("DPS_NAMESPACE", "default"),
        queue=queue or os.environ.get("DPS_QUEUE", "GOOGLE_DASK"),
        helm_executable=helm or os.environ.get("DPS_HELM", "helm"),
        kubeconfig=kubeconfig or os.environ.get("KUBECONFIG") or None,
        kube_context=context,
        install_timeout=timeout,
        uninstall_timeout=min(timeout, 120.0),
    )


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"dask-panda-session {__version__}")


def _load(job: str) -> Any:
    with errors():
        return load_job_file(job)


@app.command()
def render(
    job: JobArg,
    queue: QueueOpt = None,
    values: ValuesOpt = None,
    namespace: NamespaceOpt = None,
    output: Annotated[ValuesOutput, typer.Option("--output", "-o")] = ValuesOutput.values,
) -> None:
    """Show the release values (or manifests) a job would get; touches no cluster."""
    data = _load(job)
    svc = service()
    with errors():
        panda_job, rendered = svc.render(data, queue=queue, values_files=values or (), namespace=namespace)
        for note in rendered.adjustments:
            err.print(f"note: {note}", highlight=False)
        if output is ValuesOutput.values:
            doc = {
                "release": rendered.release,
                "namespace": rendered.namespace,
                "values": rendered.values,
                "secret": None
                if not rendered.secret
                else {
                    "name": rendered.secret_name,
                    "data": dict.fromkeys(rendered.secret.keys(), "<redacted>"),
                },
            }
            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        else:
            objects = svc.helm.template(rendered.release, rendered.namespace, rendered.values)
            sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
        del panda_job


def _state_row(state: SessionState) -> list[str]:
    t = state.timings.to_dict()
    return [
        state.release,
        str(state.pandaid or ""),
        state.mode or "",
        _phase_markup(state.phase),
        state.reason or "",
        f"{state.workers_ready}/{state.workers_wanted}",
        state.scheduler_address or "",
        state.jupyter_url or "",
        " ".join(f"{k}={v[11:19]}" for k, v in t.items() if v),
    ]


def _phase_markup(phase: Phase) -> str:
    colour = {
        Phase.STARTING: "yellow",
        Phase.RUNNING: "cyan",
        Phase.FINISHED: "green",
        Phase.FAILED: "red",
        Phase.CANCELLED: "magenta",
    }[phase]
    return f"[{colour}]{phase}[/]"


def states_table(states: Sequence[SessionState]) -> Table:
    table = Table(title=None, show_lines=False)
    for column in (
        "release",
        "pandaid",
        "mode",
        "phase",
        "reason",
        "workers",
        "scheduler",
        "jupyterlab",
        "timings (UTC)",
    ):
        table.add_column(column, overflow="fold")
    for state in states:
        table.add_row(*_state_row(state))
    return table


def _print_states(states: Sequence[SessionState], output: Output) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps([s.to_dict() for s in states], indent=2) + "\n")
    else:
        out.print(states_table(states))


def _follow(
    svc: SessionService,
    releases: Sequence[str],
    namespace: str,
    until: Callable[[SessionState], bool],
    timeout: float,
    interval: float = 2.0,
) -> list[SessionState]:
    """Poll the sessions (one LIST per poll) and show a live table until `until` holds for all."""
    deadline = time.monotonic() + timeout
    submitted = {r: svc.clock() for r in releases}
    with Live(console=err, refresh_per_second=4, transient=False) as live:
        while True:
            states = svc.observe(releases, namespace=namespace, submitted=submitted)
            ordered = [states[r] for r in releases]
            live.update(states_table(ordered))
            if all(until(s) for s in ordered) or time.monotonic() > deadline:
                return ordered
            time.sleep(interval)


@app.command()
def submit(
    job: JobArg,
    queue: QueueOpt = None,
    values: ValuesOpt = None,
    namespace: NamespaceOpt = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until the session runs (or ends), showing progress.")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Install the job's session (idempotent: a second submit returns the existing release)."""
    data = _load(job)
    svc = service()
    with errors():
        result = svc.submit(data, queue=queue, values_files=values or (), namespace=namespace)
        for note in result.adjustments:
            err.print(f"note: {note}", highlight=False)
        if not result.created:
            err.print(f"release {result.namespace}/{result.release} exists already: not submitted again")
        if wait:
            states = _follow(
                svc,
                [result.release],
                result.namespace,
                lambda s: s.phase is not Phase.STARTING,
                timeout=CTX.settings.install_timeout + 600,
            )
        else:
            states = list(
                svc.observe(
                    [result.release], namespace=result.namespace, submitted={result.release: svc.clock()}
                ).values()
            )
        if output is Output.json:
            doc = {**states[0].to_dict(), "created": result.created, "adjustments": list(result.adjustments)}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            out.print(states_table(states))
        if wait and states[0].phase in (Phase.FAILED, Phase.CANCELLED):
            raise typer.Exit(1)


@app.command()
def status(
    releases: Annotated[
        list[str] | None, typer.Argument(help="Releases (default: every session of the namespace).")
    ] = None,
    namespace: NamespaceOpt = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="A live table until every session has ended.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Give up watching after this many seconds.")] = 3600.0,
) -> None:
    """The state of sessions: phase, reason, workers, addresses and phase timings."""
    svc = service()
    ns = namespace or CTX.settings.namespace
    with errors():
        if watch:
            names = list(releases or svc.observe(namespace=ns))
            states = _follow(svc, names, ns, lambda s: s.phase in FINAL_PHASES, timeout=timeout)
            if output is Output.json:
                _print_states(states, output)
            return
        states = list(svc.observe(releases or None, namespace=ns).values())
        _print_states(states, output)


@app.command()
def delete(
    releases: Annotated[list[str], typer.Argument(help="Releases to end and sweep.")],
    namespace: NamespaceOpt = None,
) -> None:
    """End sessions and verify that nothing labelled for them remains."""
    svc = service()
    ns = namespace or CTX.settings.namespace
    dirty = False
    with errors():
        for release in releases:
            result = svc.sweep(release, namespace=ns)
            for note in result.notes:
                err.print(f"{release}: {note}", highlight=False)
            if result.clean:
                what = "deleted" if result.release_existed else "was already gone; leftovers checked"
                out.print(
                    f"{release}: {what}, nothing left" + (" (hooks bypassed)" if result.used_fallback else "")
                )
            else:
                dirty = True
                out.print(f"{release}: still present: {', '.join(result.remaining)}")
    if dirty:
        raise typer.Exit(1)


@app.command()
def gc(
    namespace: NamespaceOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
) -> None:
    """Remove orphans (objects whose release is gone) and releases older than their lifetime.

    Each release is handled on its own; any that could not be is shown and the exit status is 1.
    """
    svc = service()
    with errors():
        actions = svc.gc(namespace=namespace, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for action in actions:
        extra = f": {', '.join(action.objects)}" if action.objects else ""
        out.print(f"{verb} {action.release} ({action.why}){extra}", highlight=False)
    if not actions and not actions.failures:
        out.print("nothing to collect")
    _report_failures("cannot collect", actions.failures)


@app.command()
def enforce(namespace: NamespaceOpt = None) -> None:
    """End every session past its lifetime, lease or startup timeout (run it from cron).

    One pod LIST for the namespace; a helm uninstall only for the sessions it ends. Each session
    is ended on its own; any that could not be is shown and the exit status is 1.
    """
    svc = service()
    with errors():
        ended = svc.enforce_deadlines(namespace=namespace)
    for release, reason in sorted(ended.items()):
        out.print(f"ended {release}: {reason}", highlight=False)
    if not ended and not ended.failures:
        out.print("no session is past a deadline")
    _report_failures("cannot end", ended.failures)


def _report_failures(what: str, failures: Mapping[str, Exception]) -> None:
    for release, error in sorted(failures.items()):
        err.print(f"[bold red]error:[/] {what} {release}: {error}", highlight=False)
    if failures:
        raise typer.Exit(1)


@app.command()
def doctor(namespace: NamespaceOpt = None) -> None:
    """Check helm, the cluster, the namespace, the permissions, the shared claim and the proxy Secret."""
    svc = service()
    ns = namespace or CTX.settings.namespace
    checks: list[tuple[str, bool | None, str]] = []  # ok None: a warning, not a failure

    def check(name: str, probe: Callable[[], tuple[bool | None, str]]) -> None:
        try:
            ok, detail = probe()
        except DaskPandaSessionError as e:
            ok, detail = False, str(e)
        checks.append((name, ok, detail))

    check("helm", lambda: (True, f"{CTX.settings.helm_executable} {svc.helm.version}"))
    check("cluster", lambda: (True, f"Kubernetes {svc.kube.version()}"))
    check("clock", lambda: _clock(svc))
    # Through its `default` ServiceAccount: a namespaced Role cannot read Namespace objects.
    check("namespace", lambda: (svc.kube.exists(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), ns))

    def permission(verb: str, resource: str, group: str) -> Callable[[], tuple[bool, str]]:
        return lambda: (svc.kube.can_i(ns, verb, resource, group), f"{group or 'core'}/{resource}")

    for verb, resource, group in REQUIRED_PERMISSIONS:
        check(f"can {verb} {resource}", permission(verb, resource, group))
    with errors():
        queue = svc.queue()
    merged = queue.values
    claim = merged.get("sharedVolume", {}).get("existingClaim")
    if claim:
        check("shared claim", lambda: _claim_bound(svc, ns, str(claim)))
    proxy = merged.get("pilot", {}).get("proxy", {}).get("secretName", "proxy-secret")
    check("proxy Secret", lambda: (svc.kube.exists(f"/api/v1/namespaces/{ns}/secrets/{proxy}"), str(proxy)))
    table = Table()
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for name, ok, detail in checks:
        mark = "[yellow]warn[/]" if ok is None else "[green]yes[/]" if ok else "[red]NO[/]"
        table.add_row(name, mark, detail)
    out.print(table)
    for name, ok, detail in checks:
        if ok is None:
            err.print(f"[bold yellow]warning:[/] {name}: {detail}", highlight=False)
    if any(ok is False for _, ok, _ in checks):
        raise typer.Exit(1)


# Above this host-vs-API-server skew, doctor warns (the orchestrator's verdicts use the server's
# clock and are not affected; Harvester's own bookkeeping on the host is).
CLOCK_SKEW_WARNING_SECONDS = 60.0


def _clock(svc: SessionService) -> tuple[bool | None, str]:
    skew = svc.clock_skew()
    side = "ahead of" if skew >= 0 else "behind"
    detail = f"the host is {abs(skew):.0f} s {side} the API server"
    if abs(skew) > CLOCK_SKEW_WARNING_SECONDS:
        return None, f"{detail} (more than {CLOCK_SKEW_WARNING_SECONDS:.0f} s: synchronise the host clock)"
    return True, detail


def _claim_bound(svc: SessionService, ns: str, claim: str) -> tuple[bool, str]:
    from orchestrator.kube import PVC

    obj = svc.kube.get(PVC, ns, claim)
    if obj is None:
        return False, f"{claim}: no such claim"
    phase = obj.get("status", {}).get("phase")
    return phase == "Bound", f"{claim}: {phase}"


# What the orchestrator does in a namespace (deploy/orchestrator-role.yaml grants exactly this).
REQUIRED_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("list", "pods", ""),
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("create", "secrets", ""),
    ("delete", "secrets", ""),
    ("create", "services", ""),
    ("create", "jobs", "batch"),
    ("create", "networkpolicies", "networking.k8s.io"),
    ("list", "events", ""),
)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (typer exits 2 on a usage error)."""
    try:
        app(args=argv)
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()


__all__ = ["app", "main"]
