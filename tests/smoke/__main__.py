"""`python -m tests.smoke`: one interactive session run for real, as `scripts/demo.sh` shows it.

Why here: the smoke tier's runner (helm renders the chart from the job's values, the kubelet
stand-in runs its pods as local processes with the images' pinned versions) is the only place
where the session's processes really run on this machine. This entry point starts one interactive
session with it, checks what its user meets (the password login, the proxied Dask dashboard), runs
the seed's computation from JupyterLab's environment against the session's scheduler, prints the
result, then ends every process and removes every file it made. The password is never printed.

Exit status: 0 when every check passed and nothing was left behind, 1 otherwise.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.smoke.payloads import run_python
from tests.smoke.session import InteractiveSession, interactive_session

# The seed's computation, as the user types it in a notebook cell, with the Client built the way
# a notebook in the session builds it (the scheduler's tls:// address and the session's TLS files
# come from the environment the chart gives JupyterLab).
SEED_SCRIPT = r"""
import json, os, sys, time
import dask
import dask.array as da
from dask.distributed import Client

client = Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout=60)
client.wait_for_workers(int(sys.argv[1]), timeout=120)

start = time.monotonic()
x = da.random.random((10000, 10000)); result = (x + x.T)[::2, 5000:].mean(axis=1)
values = result.compute()
seconds = time.monotonic() - start

info = client.scheduler_info()
print(json.dumps({
    "scheduler": client.scheduler.address,
    "client_certificate": bool(dask.config.get("distributed.comm.tls.client.cert", None)),
    "workers": sorted(w["name"] for w in info["workers"].values()),
    "shape": list(values.shape),
    "first": [round(float(v), 6) for v in values[:4]],
    "mean": float(values.mean()),
    "min": float(values.min()),
    "max": float(values.max()),
    "seconds": round(seconds, 1),
}))
client.close()
"""


class _Dirs:
    """Fresh directories under one temporary root (pytest's tmp_path_factory, outside pytest)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dps-session-"))

    def mktemp(self, basename: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{basename}-", dir=self.root))


def say(text: str) -> None:
    print(text, flush=True)


def check(ok: bool, what: str) -> None:
    """One line per check; a failed one stops the demo (the session is ended on the way out)."""
    say(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        raise SystemExit(1)


def demo(session: InteractiveSession) -> None:
    """The checks and the computation, printed step by step (never the password)."""
    say(f"  JupyterLab:            {session.url('/lab')}")
    say(f"  dashboard in the lab:  {session.url(session.dashboard_path())}")
    say(f"  processes: prepare hook, JupyterLab, scheduler, {session.workers} worker(s), from .venv-smoke")

    say("login (JupyterLab's form, as a browser submits it; the lab keeps only a hash of the password):")
    refused = session.login(secrets.token_urlsafe(24))
    check(not refused.accepted, "a wrong password is refused (the login page again, no login cookie)")
    user = session.login(session.password)
    check(user.accepted, "the session's password (from the per-job Secret's file) opens /lab")

    say("the Dask dashboard inside JupyterLab (jupyter-server-proxy):")
    status, body = session.get(session.dashboard_path())
    check(status in {302, 401, 403} and b"Bokeh" not in body, f"logged out: refused (HTTP {status})")
    again = session.login(session.password, next_path=session.dashboard_path())
    check(again.location == session.dashboard_path(), "a login from the dashboard's address leads back to it")
    status, body = session.get(session.dashboard_path(), user)
    check(status == 200 and b"Bokeh" in body, f"logged in: the scheduler's real dashboard (HTTP {status})")
    status, _ = session.get(session.dashboard_path("individual-plots.json"), user)
    check(status == 200, "logged in: the panes dask-labextension lists (individual-plots.json)")

    say("the seed's computation, from JupyterLab's environment, on the session's scheduler:")
    say("  x = da.random.random((10000, 10000)); (x + x.T)[::2, 5000:].mean(axis=1)")
    out = run_python(
        session.kubelet,
        session.name("jupyterlab"),
        "jupyterlab",
        SEED_SCRIPT,
        str(session.workers),
        timeout=600,
    )
    assert isinstance(out, dict)
    check(str(out["scheduler"]).startswith("tls://"), f"scheduler {out['scheduler']} (TLS)")
    check(
        bool(out["client_certificate"]), "the client uses the session's certificate from the per-job Secret"
    )
    check(out["shape"] == [5000], f"result: shape {tuple(out['shape'])}, computed in {out['seconds']} s")
    say(f"  first values: {out['first']}")
    say(f"  mean {out['mean']:.6f}, min {out['min']:.6f}, max {out['max']:.6f}")
    check(abs(float(out["mean"]) - 1.0) < 0.01, "the mean of x + x.T is 1.0 within 1 %")
    say(f"  on workers: {', '.join(out['workers'])}")


def leftover_processes(session: InteractiveSession, wait: float = 10) -> list[str]:
    """Processes of the session still alive after the shutdown: `pid command` of each.

    A container's processes carry its pod name in HOSTNAME (the kubelet stand-in sets it, and
    children inherit it); the release name holds a random PandaID, so no other process matches.
    Processes get `wait` seconds to finish exiting.
    """
    marker = f"HOSTNAME={session.release}-".encode()
    deadline = time.monotonic() + wait
    while True:
        alive = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if any(item.startswith(marker) for item in (proc / "environ").read_bytes().split(b"\0")):
                    command = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                    alive.append(f"{proc.name} {command}")
            except OSError:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="dask workers of the session (default 2)")
    args = parser.parse_args(argv)
    dirs = _Dirs()
    started = time.monotonic()
    running: InteractiveSession | None = None
    code = 1
    try:
        say("starting the interactive session (chart rendered by helm, pods run as local processes)")
        with interactive_session(dirs, workers=args.workers) as session:
            running = session
            say(f"  {session.release}: up in {time.monotonic() - started:.0f} s")
            demo(session)
            code = 0
    except SystemExit as stop:
        code = int(stop.code or 1)
    except Exception as error:  # the one-line reason; never a traceback holding values
        say(f"  FAIL {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        code = 1
    finally:
        say("ending the session: SIGTERM, then SIGKILL, to every process group it started")
        if running is not None:
            alive = leftover_processes(running)
            say("  no process left" if not alive else "  still running: " + "; ".join(alive))
            code = code if not alive else 1
        shutil.rmtree(dirs.root, ignore_errors=True)
        say(f"  its files removed ({'gone' if not dirs.root.exists() else 'NOT removed'})")
    say(f"session ended after {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
