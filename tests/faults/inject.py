"""Fault injection on the local cluster: the API server killed and started again, helm and the
orchestrator SIGKILLed, and a view of the helm processes of this cluster.

The API server is taken away with ``scripts/test-cluster.sh kill kube-apiserver`` (SIGKILL, as a
crashed or OOM-killed apiserver) and brought back with ``start kube-apiserver``, which runs the
command line kwokctl started it with and waits for /readyz; etcd and the other components keep
running, so the cluster's data survive the outage as they do in a real control-plane restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.conftest import SCRIPT

HELM_NAMES = frozenset({"helm", "helm3"})


class ClusterControlError(RuntimeError):
    """scripts/test-cluster.sh could not kill or start a component."""


def cluster_script(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise ClusterControlError(f"test-cluster.sh {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def apiserver_ready() -> bool:
    return (
        subprocess.run(
            ["bash", str(SCRIPT), "status"], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )


def kill_apiserver() -> None:
    cluster_script("kill", "kube-apiserver", timeout=60)


def start_apiserver() -> None:
    """Start the API server again (a no-op when it runs) and wait until /readyz answers; then
    start any other component that gave up while it was away (``heal``), as a supervisor would."""
    last: Exception | None = None
    for _ in range(3):
        try:
            cluster_script("start", "kube-apiserver", timeout=180)
            cluster_script("heal", timeout=180)
            return
        except (ClusterControlError, subprocess.TimeoutExpired) as err:
            last = err
            time.sleep(2)
    raise ClusterControlError(f"the API server did not come back: {last}")


@contextlib.contextmanager
def apiserver_outage(down_seconds: float) -> Iterator[None]:
    """The API server is dead (SIGKILL) inside the block for at least ``down_seconds``; it is
    ALWAYS started again on the way out, whatever happened inside."""
    kill_apiserver()
    started = time.monotonic()
    try:
        yield
        remaining = down_seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        start_apiserver()


@dataclass(frozen=True)
class Proc:
    pid: int
    argv: tuple[str, ...]
    exe: str

    @property
    def text(self) -> str:
        return " ".join(self.argv)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def processes() -> Iterator[Proc]:
    """Every live (non-zombie) process with its argv and executable."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        base = f"/proc/{entry}"
        try:
            stat = _read(f"{base}/stat").decode(errors="replace")
            if stat[stat.rfind(")") + 2 :].startswith("Z"):
                continue
            argv = tuple(a.decode(errors="replace") for a in _read(f"{base}/cmdline").split(b"\0") if a)
            exe = os.readlink(f"{base}/exe")
        except OSError:
            continue
        yield Proc(int(entry), argv, exe)


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in _read(f"/proc/{pid}/environ")
    except OSError:
        return False


def helm_processes(kubeconfig: Path, extra_names: frozenset[str] = frozenset()) -> dict[int, Proc]:
    """helm processes working on THIS cluster (other test runs on the machine use other
    clusters): the executable or argv[0] is a helm binary (or one of ``extra_names``, e.g. a
    wrapper script), and the kubeconfig is on its command line or in its environment."""
    names = HELM_NAMES | extra_names
    found: dict[int, Proc] = {}
    needle = str(kubeconfig)
    for proc in processes():
        words = {Path(proc.exe).name, *(Path(a).name for a in proc.argv[:2])}
        if not words & names:
            continue
        if needle in proc.text or _environ_has(proc.pid, needle.encode()):
            found[proc.pid] = proc
    return found


def stray_helm(before: dict[int, Proc], kubeconfig: Path, grace: float = 5.0) -> list[Proc]:
    """helm processes of this cluster that were not there before and are still alive after a
    short grace (a process being reaped right now is not a stray)."""
    deadline = time.monotonic() + grace
    while True:
        new = [p for pid, p in helm_processes(kubeconfig).items() if pid not in before]
        if not new or time.monotonic() >= deadline:
            return new
        time.sleep(0.25)


def sigkill(pid: int) -> bool:
    """SIGKILL one process by id; False if it was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> list[int]:
    out = []
    for proc in processes():
        try:
            stat = _read(f"/proc/{proc.pid}/stat").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(proc.pid)
    return out


def wait_for_helm(kubeconfig: Path, words: tuple[str, ...], timeout: float = 60.0) -> Proc:
    """The first helm process of this cluster whose argv holds every word (e.g. the release)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in helm_processes(kubeconfig).values():
            if all(w in proc.argv for w in words):
                return proc
        time.sleep(0.02)
    raise TimeoutError(f"no helm process with {words} within {timeout} s")


# -- what the control plane logged ---------------------------------------------------------------

# klog's error lines ("E1201 22:27:46.397359 ...") and kwok's JSON ones; kwok's "not found" on
# deleting a pod that is already gone is its normal noise.
_ERROR_LINE = re.compile(r'^E\d{4} |"level":"ERROR"')
_NOISE = re.compile(r"not found")


def log_marks(state_dir: Path) -> dict[Path, int]:
    """The size of each component log of the local cluster kept in `state_dir`."""
    return {log: log.stat().st_size for log in state_dir.glob("kwok/clusters/*/logs/*.log")}


def component_errors(marks: dict[Path, int], limit: int = 40) -> str:
    """The error lines each component logged since `marks` (the last `limit` of each)."""
    parts: list[str] = []
    for log, start in sorted(marks.items()):
        try:
            with log.open("rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
        except OSError as err:
            parts.append(f"== {log.name}: unreadable: {err}")
            continue
        lines = [ln[:400] for ln in text.splitlines() if _ERROR_LINE.search(ln) and not _NOISE.search(ln)]
        if lines:
            parts.append(f"== {log.name} ({len(lines)} error lines, the last {min(limit, len(lines))})")
            parts.extend(lines[-limit:])
    return "\n".join(parts) or "no component logged an error"
