"""helm.py against a fake `helm` executable: process-group kill, typed errors, exact values on stdin.

The fake is a small sh script written into tmp_path; it logs each call, answers `version`, and then
does what the test asks (sleep with children, print an error, copy its stdin to a file).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import helm as helm_mod
from orchestrator.errors import InputError
from orchestrator.helm import (
    MAX_DEPTH,
    MAX_EXACT_INT,
    Helm,
    HelmError,
    HelmReleaseExists,
    HelmRenderError,
    HelmTimeout,
    HelmUnavailable,
    command_class,
    encode_values,
)

RELEASE_JSON = json.dumps(
    {
        "name": "dask-1",
        "namespace": "ns",
        "version": 1,
        "info": {"status": "deployed", "last_deployed": "2026-11-28T16:40:01.123456789Z"},
    }
)


class FakeHelm:
    """A `helm` script in a directory of its own, with the files it writes."""

    def __init__(self, directory: Path, body: str) -> None:
        self.dir = directory
        self.path = directory / "helm"
        self.path.write_text(
            "#!/bin/sh\n"
            f'D="{directory}"\n'
            'printf "%s\\n" "$*" >> "$D/calls.log"\n'
            'if [ "$1" = version ]; then printf v4.1.4; exit 0; fi\n' + body
        )
        self.path.chmod(0o755)

    def helm(self, **kwargs: Any) -> Helm:
        kwargs.setdefault("cache_dir", self.dir / "cache")  # never the user's own cache
        return Helm(executable=str(self.path), **kwargs)

    def calls(self) -> list[str]:
        log = self.dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def pid(self, name: str) -> int:
        return int((self.dir / f"{name}.pid").read_text())


@pytest.fixture
def fake(tmp_path: Path) -> Callable[[str], FakeHelm]:
    return lambda body: FakeHelm(tmp_path, body)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed child of init may linger as one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def gone(pids: list[int], within: float = 10.0) -> bool:
    """True once none of pids is alive (a SIGKILLed process takes a moment to be torn down)."""
    until = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


# A helm that starts two children (one ignoring SIGTERM, so only SIGKILL ends it) and waits.
SLEEPER = """
echo $$ > "$D/helm.pid"
cut -d' ' -f5 /proc/$$/stat > "$D/helm.pgid"
sleep 300 &
echo $! > "$D/child.pid"
(trap '' TERM; exec sleep 300) &
echo $! > "$D/stubborn.pid"
wait
"""


# -- (a) the deadline kills helm's whole process group ----------------------------------------------
def test_deadline_kills_helm_and_its_children(fake: Callable[[str], FakeHelm]) -> None:
    f = fake(SLEEPER)
    helm = f.helm(timeout=1, deadline_margin=1, kill_grace=0.5)

    with pytest.raises(HelmTimeout, match="no answer within"):
        helm.list_releases("ns")

    pids = [f.pid("helm"), f.pid("child"), f.pid("stubborn")]
    assert gone(pids), [p for p in pids if alive(p)]
    # helm ran in a process group of its own, so killing it could not touch ours
    assert int((f.dir / "helm.pgid").read_text()) == pids[0] != os.getpgrp()


def test_cancelling_the_caller_kills_helm_and_its_children(fake: Callable[[str], FakeHelm]) -> None:
    f = fake(SLEEPER)
    command = command_class()(executable=str(f.path), kill_grace=0.5)

    async def start_then_cancel() -> None:
        task = asyncio.create_task(command.run(["list"]))
        for _ in range(400):
            if (f.dir / "stubborn.pid").exists():
                break
            await asyncio.sleep(0.025)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(start_then_cancel())
    pids = [f.pid("helm"), f.pid("child"), f.pid("stubborn")]
    assert gone(pids), [p for p in pids if alive(p)]


def test_a_finished_helm_is_not_waited_for_beyond_its_answer(fake: Callable[[str], FakeHelm]) -> None:
    f = fake("printf '[]'\n")
    assert f.helm(timeout=1, deadline_margin=1).list_releases("ns") == []


# -- (b) helm's texts -> typed errors ----------------------------------------------------------------
UNREACHABLE = [
    # Helm 4
    'Error: kubernetes cluster unreachable: Get "https://127.0.0.1:1/version": dial tcp 127.0.0.1:1: '
    "connect: connection refused",
    # Helm 3
    'Error: Kubernetes cluster unreachable: Get "https://10.0.0.1:6443/version": dial tcp: lookup '
    "api.example.invalid on 10.255.255.53:53: no such host",
    # Helm 4's install, with its log line first
    'level=ERROR msg="cluster reachability check failed: kubernetes cluster unreachable"\n'
    "Error: INSTALLATION FAILED: cluster reachability check failed: kubernetes cluster unreachable: "
    'Get "https://api.example:6443/version": dial tcp 10.0.0.1:6443: i/o timeout',
    'Error: list: failed to list: Get "https://10.0.0.1:6443/api/v1/namespaces/ns/secrets": dial tcp '
    "10.0.0.1:6443: i/o timeout",
    'Error: query: failed to query with labels: Get "https://10.0.0.1:6443/api": dial tcp 10.0.0.1:6443: '
    "connect: connection refused",
    "Error: release: not found\nError: kubernetes cluster unreachable: connection refused",
]

OPERATIONS: dict[str, Callable[[Helm], object]] = {
    "status": lambda h: h.release("dask-1", "ns"),
    "install": lambda h: h.install("dask-1", "ns", {"job": {"pandaId": "1"}}),
    "uninstall": lambda h: h.uninstall("dask-1", "ns"),
    "get values": lambda h: h.get_values("dask-1", "ns"),
    "list": lambda h: h.list_releases("ns"),
    "template": lambda h: h.template("dask-1", "ns", {}),
}


def failing(fake: Callable[[str], FakeHelm], stderr: str, code: int = 1) -> FakeHelm:
    f = fake(f'cat "$D/stderr.txt" >&2\nexit {code}\n')
    (f.dir / "stderr.txt").write_text(stderr + "\n")
    return f


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("stderr", UNREACHABLE)
def test_cluster_unreachable_is_temporary_on_every_command(
    fake: Callable[[str], FakeHelm], stderr: str, operation: str
) -> None:
    helm = failing(fake, stderr).helm()
    with pytest.raises(HelmUnavailable, match="cluster unreachable"):
        OPERATIONS[operation](helm)


@pytest.mark.parametrize(
    "stderr",
    [
        "Error: INSTALLATION FAILED: cannot re-use a name that is still in use",  # Helm 3
        "Error: INSTALLATION FAILED: cannot reuse a name that is still in use",  # Helm 4
        "Error: INSTALLATION FAILED: release: already exists",  # two installs racing in storage
    ],
)
def test_install_finding_the_name_in_use(fake: Callable[[str], FakeHelm], stderr: str) -> None:
    with pytest.raises(HelmReleaseExists, match="name is in use"):
        OPERATIONS["install"](failing(fake, stderr).helm())


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        (
            "Error: INSTALLATION FAILED: failed pre-install: 1 error occurred:\n"
            "\t* timed out waiting for the condition",
            HelmTimeout,
        ),
        (
            "Error: values don't meet the specifications of the schema(s) in the following chart(s):\n"
            "dask-panda-session:\n- at '/job/mode': value must be one of 'batch', 'interactive'",
            HelmRenderError,
        ),
        (
            "Error: execution error at (dask-panda-session/templates/scheduler.yaml:1:4): sharedVolume: no claim",
            HelmRenderError,
        ),
        ("Error: INSTALLATION FAILED: admission webhook denied the request", HelmError),
    ],
)
def test_other_helm_errors(fake: Callable[[str], FakeHelm], stderr: str, error: type[HelmError]) -> None:
    with pytest.raises(HelmError) as info:
        OPERATIONS["install"](failing(fake, stderr).helm())
    assert type(info.value) is error
    assert stderr.split()[-1] in str(info.value)  # helm's own words are kept


def test_a_render_error_is_an_input_error(fake: Callable[[str], FakeHelm]) -> None:
    f = failing(fake, "Error: execution error at (x.yaml:1:4): bad")
    with pytest.raises(InputError):
        OPERATIONS["template"](f.helm())


def test_a_missing_release_is_none_for_status_and_false_for_uninstall(
    fake: Callable[[str], FakeHelm],
) -> None:
    helm = failing(fake, "Error: uninstall: Release not loaded: dask-1: release: not found").helm()
    assert helm.release("dask-1", "ns") is None
    assert helm.uninstall("dask-1", "ns") is False


def test_secrets_are_scrubbed_from_errors(fake: Callable[[str], FakeHelm]) -> None:
    secret = "hunter2-Ünïcødé-😀"
    f = failing(fake, f"Error: INSTALLATION FAILED: bad password {secret} for user")
    with pytest.raises(HelmError) as info:
        f.helm().install("dask-1", "ns", {}, secrets=[secret])
    assert secret not in str(info.value)
    assert "<redacted>" in str(info.value)


# -- the client stays lazy and shared -------------------------------------------------------------
def test_constructing_helm_runs_nothing(fake: Callable[[str], FakeHelm]) -> None:
    f = fake("printf '[]'\n")
    helm = f.helm()
    assert helm._client is None
    assert f.calls() == []
    assert helm.version == "4.1.4"
    assert f.calls() == ["version --template {{ .Version }}"]


def test_a_missing_executable_is_unavailable(tmp_path: Path) -> None:
    helm = Helm(executable=str(tmp_path / "no-helm"))
    with pytest.raises(HelmUnavailable, match="not found"):
        helm.list_releases("ns")


def test_threads_share_one_client(fake: Callable[[str], FakeHelm]) -> None:
    helm = fake("printf '[]'\n").helm()
    results: list[object] = []
    clients: list[object] = []

    def work() -> None:
        results.append(helm.list_releases("ns"))
        clients.append(helm.client)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[], [], [], []]
    assert len({id(c) for c in clients}) == 1


def test_no_private_pyhelm3_attribute_is_used() -> None:
    assert "._command" not in Path(helm_mod.__file__).read_text(encoding="utf-8")


# -- (c) values reach helm's stdin exactly ---------------------------------------------------------
ECHO = """
cat > "$D/stdin.bin"
printf '%s\\n' "$@" > "$D/argv.txt"
if [ "$1" = install ]; then cat "$D/release.json"; else echo '---'; fi
"""

NASTY_TEXT = "😀 𠮷 é \u2028 \u2029 \ufeff \\ \" ' {{ .Values }} $(x) " + "".join(
    chr(c) for c in range(1, 32)
)
VALUES: dict[str, Any] = {
    "job": {
        "pandaId": "1",
        "name": NASTY_TEXT,
        "user": "𠮷野家 😀",
        "numbers": [MAX_EXACT_INT, -MAX_EXACT_INT, 0, 2**31, 0.1, 1e300],
        "😀 key": {"𠮷": True, "": None},
    }
}


def echoing(fake: Callable[[str], FakeHelm]) -> FakeHelm:
    f = fake(ECHO)
    (f.dir / "release.json").write_text(RELEASE_JSON)
    return f


@pytest.mark.parametrize("operation", ["install", "template"])
def test_values_round_trip_byte_exact_on_stdin(fake: Callable[[str], FakeHelm], operation: str) -> None:
    f = echoing(fake)
    helm = f.helm()
    if operation == "install":
        info = helm.install("dask-1", "ns", VALUES)
        assert (info.status, info.revision) == ("deployed", 1)
    else:
        assert helm.template("dask-1", "ns", VALUES) == []

    data = (f.dir / "stdin.bin").read_bytes()
    assert data == encode_values(VALUES)
    decoded = data.decode("utf-8")  # strict: valid UTF-8
    assert json.loads(decoded) == VALUES
    assert [type(n) for n in json.loads(decoded)["job"]["numbers"]] == [int, int, int, int, float, float]
    # non-BMP characters raw, not as surrogate-pair escapes that helm's YAML rejects
    assert "😀".encode() in data and "𠮷".encode() in data
    assert b"\\ud83d" not in data.lower()
    # what YAML reads as a line break is escaped, so it cannot be folded away
    assert "\u2028".encode() not in data and b"\\u2028" in data

    argv = (f.dir / "argv.txt").read_text(encoding="utf-8").splitlines()
    assert argv[0] == operation
    assert argv[argv.index("--values") + 1] == "-"
    assert "😀" not in " ".join(argv) and "upgrade" not in argv


@pytest.mark.parametrize(
    ("values", "path", "why"),
    [
        ({"job": {"user": "a\udc80b"}}, "values.job.user", "lone surrogate"),
        ({"job": {"items": ["ok", {"x": "\ud83d"}]}}, "values.job.items[1].x", "lone surrogate"),
        ({"job": {"k\udfff": 1}}, "values.job", "lone surrogate"),
        ({"job": {"big": [0, MAX_EXACT_INT + 1]}}, "values.job.big[1]", "2\\*\\*53"),
        ({"job": {"neg": -(2**64)}}, "values.job.neg", "2\\*\\*53"),
        ({"job": {"f": math.nan}}, "values.job.f", "finite"),
        ({"job": {"f": -math.inf}}, "values.job.f", "finite"),
        ({"job": {"when": dt.date(2026, 1, 1)}}, "values.job.when", "not a JSON value"),
        ({"job": {1: "x"}}, "values.job", "not a string"),
        ({"job": {"name": "a\x85b"}}, "values.job.name", "U\\+0085"),
        ({"job": {"name": "a\x7f"}}, "values.job.name", "U\\+007F"),
        ({"job": {"name": "\uffff"}}, "values.job.name", "U\\+FFFF"),
    ],
)
@pytest.mark.parametrize("operation", ["install", "template"])
def test_values_helm_would_change_are_refused_before_helm_runs(
    fake: Callable[[str], FakeHelm], values: dict[str, Any], path: str, why: str, operation: str
) -> None:
    f = echoing(fake)
    helm = f.helm()
    call = helm.install if operation == "install" else helm.template
    with pytest.raises(InputError, match=why) as info:
        call("dask-1", "ns", values)
    message = str(info.value)
    assert message.startswith(path)
    message.encode("utf-8")  # printable, loggable: no lone surrogate copied into the message
    assert f.calls() == []  # helm never ran


def test_nesting_is_bounded_and_never_recursive(fake: Callable[[str], FakeHelm]) -> None:
    helm = echoing(fake).helm()
    ok: Any = "leaf"
    for _ in range(MAX_DEPTH - 2):
        ok = [ok]
    helm.template("dask-1", "ns", {"deep": ok})

    deep: Any = "leaf"
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = {"d": deep}
    with pytest.raises(InputError, match=f"deeper than {MAX_DEPTH}"):
        helm.template("dask-1", "ns", {"deep": deep})


def test_the_runner_reencodes_pyhelm3_json(fake: Callable[[str], FakeHelm]) -> None:
    """pyhelm3's own methods hand `run` ASCII-escaped JSON; helm still gets exact UTF-8."""
    f = echoing(fake)
    command = command_class()(executable=str(f.path))
    asyncio.run(command.template("dask-1", "chart", {"user": "𠮷 😀"}))
    assert (f.dir / "stdin.bin").read_bytes() == '{"user":"𠮷 😀"}'.encode()


@pytest.mark.parametrize("operation", ["status", "install", "list", "template"])
def test_unreadable_output_is_a_helm_error(fake: Callable[[str], FakeHelm], operation: str) -> None:
    f = fake("cat > /dev/null\nprintf 'not: [json\\n'\n")
    with pytest.raises(HelmError, match="unreadable output"):
        OPERATIONS[operation](f.helm())


# -- what one install costs: no OpenAPI probe, a persistent private cache ---------------------------
ENV_ECHO = """
cat > /dev/null
printf '%s\\n' "$@" > "$D/argv.txt"
printf '%s\\n' "HELM_CACHE_HOME=$HELM_CACHE_HOME" "KUBECACHEDIR=$KUBECACHEDIR" > "$D/env.txt"
cat "$D/release.json"
"""


def env_echoing(fake: Callable[[str], FakeHelm]) -> FakeHelm:
    f = fake(ENV_ECHO)
    (f.dir / "release.json").write_text(RELEASE_JSON)
    return f


@pytest.fixture
def cache_fake(fake: Callable[[str], FakeHelm], monkeypatch: pytest.MonkeyPatch) -> FakeHelm:
    """An environment-echoing helm, run from an environment that sets no helm cache itself."""
    monkeypatch.delenv("HELM_CACHE_HOME", raising=False)
    monkeypatch.delenv("KUBECACHEDIR", raising=False)
    return env_echoing(fake)


def helm_env(f: FakeHelm) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (f.dir / "env.txt").read_text().splitlines())


@pytest.mark.parametrize("openapi_validation", [False, True])
def test_install_skips_helms_openapi_probe_unless_asked(
    fake: Callable[[str], FakeHelm], openapi_validation: bool
) -> None:
    f = env_echoing(fake)
    f.helm(openapi_validation=openapi_validation).install("dask-1", "ns", {"job": {"pandaId": "1"}})
    argv = (f.dir / "argv.txt").read_text().splitlines()
    assert argv[:2] == ["install", "dask-1"]
    assert ("--disable-openapi-validation" in argv) is not openapi_validation
    # the chart's own values schema is still checked by helm: no flag turns it off
    assert "--skip-schema-validation" not in argv


def test_other_commands_never_get_the_install_flag(fake: Callable[[str], FakeHelm]) -> None:
    f = fake("printf '%s\\n' \"$@\" >> \"$D/argv.txt\"\nprintf '[]'\n")
    f.helm().list_releases("ns")
    assert "--disable-openapi-validation" not in (f.dir / "argv.txt").read_text().splitlines()


def test_helm_runs_with_a_private_persistent_cache(cache_fake: FakeHelm) -> None:
    f = cache_fake
    cache = f.dir / "cache"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)  # an earlier, looser directory is tightened
    helm = f.helm(cache_dir=cache)
    helm.install("dask-1", "ns", {})
    assert helm_env(f) == {"HELM_CACHE_HOME": str(cache / "helm"), "KUBECACHEDIR": str(cache / "kube")}
    assert cache.stat().st_mode & 0o777 == 0o700
    helm.install("dask-1", "ns", {})  # the same directory for every helm process of this client
    assert helm_env(f)["KUBECACHEDIR"] == str(cache / "kube")


def test_an_operators_cache_setting_wins(cache_fake: FakeHelm, monkeypatch: pytest.MonkeyPatch) -> None:
    f = cache_fake
    helm = f.helm()
    helm.install("dask-1", "ns", {})
    assert helm_env(f)["KUBECACHEDIR"] == str(f.dir / "cache" / "kube")
    monkeypatch.setenv("KUBECACHEDIR", "/somewhere/kube")  # the environment is read at every run
    helm.install("dask-1", "ns", {})
    assert helm_env(f) == {
        "HELM_CACHE_HOME": str(f.dir / "cache" / "helm"),
        "KUBECACHEDIR": "/somewhere/kube",
    }


def test_a_cache_that_is_a_link_is_not_used(cache_fake: FakeHelm) -> None:
    f = cache_fake
    target = f.dir / "elsewhere"
    target.mkdir(mode=0o700)
    (f.dir / "link").symlink_to(target)
    assert helm_mod.prepare_cache_dir(f.dir / "link") is None
    f.helm(cache_dir=f.dir / "link").install("dask-1", "ns", {})
    assert helm_env(f) == {"HELM_CACHE_HOME": "", "KUBECACHEDIR": ""}  # helm's own defaults


def test_the_default_cache_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert helm_mod.default_cache_dir() == tmp_path / "xdg" / "dask-panda-session" / "helm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert helm_mod.default_cache_dir() == tmp_path / "home" / ".cache" / "dask-panda-session" / "helm"
