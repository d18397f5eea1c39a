"""A small stand-in for the kubelet: run the chart's rendered Pods as local processes.

Why: on the test cluster pods never run (kwok nodes), so nothing there proves that the scheduler,
worker, gate, hook and JupyterLab commands the chart renders work together. This harness takes a
rendered Pod (or hook Job) and does what the kubelet would do, as faithfully as a test can:

- init containers one after the other, each must exit 0, then the main container;
- env resolved with Kubernetes semantics: `value` with `$(VAR)` expansion of earlier variables,
  `fieldRef` (metadata.name, metadata.namespace, status.podIP, ...), `resourceFieldRef` (limit or
  request divided by the divisor and rounded up, node capacity when no limit is set),
  `secretKeyRef` / `configMapKeyRef` from local dicts standing in for the objects;
- `$(VAR)` expansion in command and args (`$$` escapes, unknown references stay as written);
- volumes: emptyDir -> a temp dir, secret -> files (mode and fsGroup like the kubelet),
  persistentVolumeClaim -> one temp dir per claim with `subPath` inside it;
- the pod's runAsUser / runAsGroup / fsGroup (when the tests run as root);
- Service DNS names (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<domain>`) resolve to
  127.0.0.1 through a private /etc/hosts, and every container sees its volumes at their mountPaths:
  both through a private mount namespace (podroot.py), so the rendered command runs unchanged.
  A Service whose port differs from its target port is reached at the target port only (pods
  connect to each other by Service name and the same port in this chart, so that is enough).

What is not emulated: images (the pinned `.venv-smoke` stands in for them: same versions), network
isolation (all pods share the host's loopback; ports come from values so they can be chosen
free), probes, restarts and deadlines.
"""

from __future__ import annotations

import base64
import json
import math
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

PODROOT = Path(__file__).with_name("podroot.py")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOOPBACK = "127.0.0.1"

Manifest = dict[str, Any]


class KubeletError(RuntimeError):
    """The rendered object asks for something this stand-in cannot do (a test failure, not a skip)."""


# --- quantities, expansion, env -------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text: str | int | float) -> Fraction:
    """A Kubernetes resource.Quantity as an exact fraction ("500m" -> 1/2, "1536Mi" -> 1610612736)."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise KubeletError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        return value * Fraction(10) ** int(exponent[1:])
    suffix = suffix or ""
    return value * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` is a literal `$`, unknown references stay unexpanded."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(variables[name] if name in variables else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def node_capacity() -> dict[str, Fraction]:
    """What a resourceFieldRef yields for a resource without a limit: the node's allocatable."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": Fraction(os.cpu_count() or 1),
        "memory": Fraction(memory),
        "ephemeral-storage": Fraction(0),
    }


def resource_field_value(pod: Manifest, container: Manifest, ref: Mapping[str, Any]) -> str:
    """resourceFieldRef with the kubelet's rounding: ceil(quantity / divisor) for cpu and memory."""
    target = container
    if ref.get("containerName"):
        target = find_container(pod, str(ref["containerName"]))
    resource = str(ref["resource"])
    kind, _, name = resource.partition(".")
    if kind not in {"limits", "requests"} or name not in {"cpu", "memory", "ephemeral-storage"}:
        raise KubeletError(f"unsupported resourceFieldRef resource {resource!r}")
    declared = (target.get("resources") or {}).get(kind, {}) or {}
    if name in declared:
        quantity = parse_quantity(declared[name])
    elif kind == "requests" and name in ((target.get("resources") or {}).get("limits") or {}):
        quantity = parse_quantity(target["resources"]["limits"][name])  # requests default to limits
    elif kind == "limits":
        quantity = node_capacity()[name]
    else:
        quantity = Fraction(0)
    divisor = parse_quantity(ref.get("divisor", "1"))
    if divisor <= 0:
        raise KubeletError(f"bad divisor in {ref!r}")
    return str(math.ceil(quantity / divisor))


def field_value(pod: Manifest, namespace: str, path: str) -> str:
    meta = pod.get("metadata", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", namespace),
        "metadata.uid": f"smoke-{meta.get('name', '')}",
        "spec.nodeName": "smoke-node",
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.hostIP": LOOPBACK,
        "status.hostIPs": LOOPBACK,
        "status.podIP": LOOPBACK,
        "status.podIPs": LOOPBACK,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise KubeletError(f"unsupported fieldRef {path!r}")


def find_container(pod: Manifest, name: str) -> Manifest:
    spec = pod["spec"]
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        if container["name"] == name:
            return dict(container)
    raise KubeletError(f"pod {pod['metadata']['name']} has no container {name!r}")


def resolve_env(
    pod: Manifest,
    container: Manifest,
    namespace: str,
    secrets: Mapping[str, Mapping[str, str]],
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment the way the kubelet builds it (in order, later wins)."""
    config_maps = config_maps or {}
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            data = secrets.get(source["secretRef"]["name"])
        else:
            data = config_maps.get(source["configMapRef"]["name"])
        if data is None:
            raise KubeletError(f"envFrom references a missing object: {source}")
        env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            env[name] = field_value(pod, namespace, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[name] = resource_field_value(pod, container, ref["resourceFieldRef"])
        elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind = "secretKeyRef" if "secretKeyRef" in ref else "configMapKeyRef"
            store = secrets if kind == "secretKeyRef" else config_maps
            key_ref = ref[kind]
            value = (store.get(key_ref["name"]) or {}).get(key_ref["key"])
            if value is None:
                if key_ref.get("optional"):
                    continue
                raise KubeletError(f"{kind} {key_ref['name']}/{key_ref['key']} does not exist")
            env[name] = value
        else:
            raise KubeletError(f"unsupported valueFrom for {name}: {sorted(ref)}")
    return env


def container_argv(container: Manifest, env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded; a container without command relies on its image."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        raise KubeletError(
            f"container {container['name']} has no command: the smoke tier has no image ENTRYPOINT"
        )
    return [expand(part, env) for part in [*command, *args]]


# --- rendering ------------------------------------------------------------------------------------


def helm_template(
    helm: Path,
    chart: Path,
    release: str,
    namespace: str,
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    set_strings: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """`helm template` with the given values; the tests only ever add values, never edit output."""
    argv = [str(helm), "template", release, str(chart), "--namespace", namespace]
    for path in values_files:
        argv += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        argv += ["--set", f"{key}={value}"]
    for key, value in (set_strings or {}).items():
        argv += ["--set-string", f"{key}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KubeletError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def free_ports(count: int) -> list[int]:
    """Ports free on every interface right now (the processes bind 0.0.0.0 like in a pod)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- running pods ---------------------------------------------------------------------------------


@dataclass
class ContainerRun:
    """One started container: its process, its log file and when it started / ended."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    ended: float | None = None
    returncode: int | None = None


@dataclass
class PodRun:
    """A pod being run: init containers in order, then (optionally) the main container."""

    name: str
    manifest: Manifest
    runs: list[ContainerRun] = field(default_factory=list)
    phase: str = "Pending"
    error: str = ""
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def container(self, name: str) -> ContainerRun | None:
        for run in self.runs:
            if run.name == name:
                return run
        return None

    @property
    def main(self) -> ContainerRun | None:
        return self.container(self.manifest["spec"]["containers"][0]["name"])


class Kubelet:
    """Runs the pods of one rendered release as local processes (see the module docstring)."""

    def __init__(
        self,
        documents: list[Manifest],
        namespace: str,
        workdir: Path,
        venv: Path,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        cluster_domain: str = "cluster.local",
    ) -> None:
        self.documents = documents
        self.namespace = namespace
        self.workdir = workdir
        self.venv = venv
        # Secrets the release itself renders (the chart's debugging aid), then the given ones.
        self.secrets = {**_rendered_secrets(documents), **(secrets or {})}
        self.cluster_domain = cluster_domain
        self.claims = workdir / "claims"
        self.logs = workdir / "logs"
        self.pods: dict[str, PodRun] = {}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        for path in (self.claims, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.hosts_file = workdir / "hosts"
        self.hosts_file.write_text(self._hosts())

    # objects

    def objects(self, kind: str) -> list[Manifest]:
        return [d for d in self.documents if d.get("kind") == kind]

    def object(self, kind: str, name: str) -> Manifest:
        for doc in self.objects(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise KubeletError(f"no {kind} {name} in the rendered release")

    def pod(self, name: str) -> Manifest:
        """A Pod, or the pod template of a Job (hooks), as a Pod manifest."""
        for doc in self.documents:
            if doc.get("kind") == "Pod" and doc["metadata"]["name"] == name:
                return doc
            if doc.get("kind") == "Job" and doc["metadata"]["name"] == name:
                template = doc["spec"]["template"]
                meta = {**template.get("metadata", {}), "name": f"{name}-smoke"}
                return {"kind": "Pod", "metadata": meta, "spec": template["spec"]}
        raise KubeletError(f"no Pod or Job {name} in the rendered release")

    def _hosts(self) -> str:
        """kube-dns for this release: every Service name form -> 127.0.0.1."""
        lines = [f"{LOOPBACK} localhost", "::1 localhost ip6-localhost ip6-loopback"]
        for service in self.objects("Service"):
            name = service["metadata"]["name"]
            ns = service["metadata"].get("namespace", self.namespace)
            forms = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{self.cluster_domain}"]
            lines.append(f"{LOOPBACK} {' '.join(forms)}")
        return "\n".join(lines) + "\n"

    # volumes

    def _volume_sources(self, pod: Manifest, root: Path) -> dict[str, Path]:
        """Materialise every volume of the pod; returns volume name -> host path."""
        security = pod["spec"].get("securityContext") or {}
        fs_group = security.get("fsGroup")
        uid, gid = security.get("runAsUser"), security.get("runAsGroup")
        sources: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "emptyDir" in volume:
                path = root / "volumes" / name
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(0o777)  # the kubelet's emptyDir mode
            elif "secret" in volume:
                path = self._secret_volume(volume["secret"], root / "volumes" / name, fs_group)
            elif "persistentVolumeClaim" in volume:
                path = self.claims / volume["persistentVolumeClaim"]["claimName"]
                with self._lock:  # pods start in parallel threads; the claim is made once
                    if path.exists():
                        sources[name] = path
                        continue
                    path.mkdir(parents=True)
                    # the site's share is prepared for the queue's identity
                    _chown(path, uid, fs_group if fs_group is not None else gid)
                    path.chmod(0o2775)
            else:
                raise KubeletError(f"volume {name}: unsupported type {sorted(set(volume) - {'name'})}")
            sources[name] = path
        return sources

    def _secret_volume(self, spec: Manifest, path: Path, fs_group: int | None) -> Path:
        data = self.secrets.get(spec["secretName"])
        if data is None:
            raise KubeletError(
                f"Secret {spec['secretName']} is referenced but not given to the smoke kubelet"
            )
        path.mkdir(parents=True, exist_ok=True)
        items = spec.get("items") or [{"key": k, "path": k} for k in data]
        default_mode = int(spec.get("defaultMode", 0o644))
        for item in items:
            if item["key"] not in data:
                raise KubeletError(f"Secret {spec['secretName']} has no key {item['key']}")
            file = path / item["path"]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[item["key"]].encode("utf-8"))  # byte-exact, whatever the locale
            mode = int(item.get("mode", default_mode))
            if fs_group is not None and os.geteuid() == 0:
                os.chown(file, 0, int(fs_group))
                mode |= 0o440  # the kubelet's ownership management of read-only volumes
            file.chmod(mode)
        path.chmod(0o755)
        return path

    def _mounts(
        self, pod: Manifest, container: Manifest, sources: Mapping[str, Path], tmp: Path
    ) -> list[Manifest]:
        mounts: list[Manifest] = [
            {"target": "/tmp", "source": str(tmp)},
            {"target": "/etc/hosts", "source": str(self.hosts_file), "readOnly": True},
        ]
        # The "image": the smoke venv and its interpreter stay visible at their own paths even
        # when they live under a path the pod mounts over (a checkout under /tmp, say).
        for path in sorted({os.path.realpath(self.venv), os.path.realpath(sys.base_prefix)}):
            mounts.append({"target": path, "source": path, "readOnly": True})
        for mount in container.get("volumeMounts") or []:
            source = sources.get(mount["name"])
            if source is None:
                raise KubeletError(
                    f"volumeMount {mount['name']} has no volume in pod {pod['metadata']['name']}"
                )
            if mount.get("subPath"):
                volume_root = source
                source = source / mount["subPath"]
                with self._lock:
                    if not source.exists():
                        # the kubelet creates a missing subPath as root with the volume root's mode
                        # (its group follows a setgid volume root)
                        source.mkdir(parents=True)
                        source.chmod(stat.S_IMODE(volume_root.stat().st_mode))
            mounts.append(
                {"target": mount["mountPath"], "source": str(source), "readOnly": bool(mount.get("readOnly"))}
            )
        return mounts

    # processes

    def _spec(
        self, pod: Manifest, container: Manifest, argv: list[str] | None, root: Path
    ) -> tuple[Path, dict[str, str]]:
        """Write the podroot.py spec of one container start; returns (spec file, env)."""
        name = container["name"]
        security = {**(pod["spec"].get("securityContext") or {}), **(container.get("securityContext") or {})}
        run_dir = root / "containers" / f"{name}-{time.monotonic_ns()}"
        (run_dir / "root").mkdir(parents=True)
        tmp = root / "tmp" / name  # each container has its own /tmp, as in its own image layer
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o1777)
        sources = self._volume_sources(pod, root)
        base = {
            "PATH": f"{self.venv / 'bin'}:{SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "HOSTNAME": pod["metadata"]["name"],
        }
        env = resolve_env(pod, container, self.namespace, self.secrets, base=base)
        user: dict[str, Any] | None = None
        if os.geteuid() == 0 and security.get("runAsUser") is not None:
            uid = int(security["runAsUser"])
            gid = int(security.get("runAsGroup", uid))
            groups = sorted(
                {gid, *([int(security["fsGroup"])] if security.get("fsGroup") is not None else [])}
            )
            user = {"uid": uid, "gid": gid, "groups": groups}
            env.setdefault("HOME", _home_of(uid))
        else:
            env.setdefault("HOME", _home_of(os.geteuid()))
        command = argv if argv is not None else container_argv(container, env)
        spec = {
            "root": str(run_dir / "root"),
            "mounts": self._mounts(pod, container, sources, tmp),
            "workingDir": container.get("workingDir") or "/tmp",
            "argv": command,
            "env": env,
            "user": user,
            "traversable": sorted(self._traversable()),
        }
        spec_file = run_dir / "spec.json"
        spec_file.write_text(json.dumps(spec))
        spec_file.chmod(0o600)  # it may hold secret env values
        return spec_file, env

    def _traversable(self) -> set[str]:
        """Directories a non-root container user must pass through to reach the smoke venv."""
        paths = {str(self.venv), os.path.realpath(self.venv / "bin" / "python"), sys.base_prefix}
        out: set[str] = set()
        for path in paths:
            out |= {str(p) for p in Path(path).parents if str(p) != "/"}
        return out

    def _launch(self, spec_file: Path, log: Path) -> subprocess.Popen[bytes]:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise KubeletError("unshare (util-linux) is required by the smoke tier")
        prefix = [unshare, "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            prefix = [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"]
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*prefix, sys.executable, str(PODROOT), str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self._processes.append(process)
        return process

    def start(self, name: str, *, main: bool = True) -> PodRun:
        """Start a pod in the background: init containers in order, then the main container.

        main=False stops after the init containers (e.g. the pilot, whose real main container would
        talk to the PanDA server; its payload is run with exec() instead).
        """
        manifest = self.pod(name)
        run = PodRun(name=name, manifest=manifest)
        self.pods[name] = run
        run.thread = threading.Thread(target=self._run_pod, args=(run, main), name=f"pod-{name}", daemon=True)
        run.thread.start()
        return run

    def _run_pod(self, run: PodRun, main: bool) -> None:
        root = self.workdir / "pods" / run.name
        root.mkdir(parents=True, exist_ok=True)
        spec = run.manifest["spec"]
        containers = [*(spec.get("initContainers") or [])]
        if main:
            containers.append(spec["containers"][0])
        try:
            for index, container in enumerate(containers):
                is_init = index < len(spec.get("initContainers") or [])
                run.phase = f"Init:{container['name']}" if is_init else "Running"
                spec_file, _ = self._spec(run.manifest, container, None, root)
                log = self.logs / f"{run.name}.{container['name']}.log"
                process = self._launch(spec_file, log)
                record = ContainerRun(container["name"], process, log, time.monotonic())
                run.runs.append(record)
                while process.poll() is None and not run.stop.is_set():
                    time.sleep(0.1)
                if run.stop.is_set():
                    run.phase = "Stopped"
                    return
                record.returncode = process.returncode
                record.ended = time.monotonic()
                if is_init and process.returncode != 0:
                    run.phase = "Failed"
                    run.error = f"init container {container['name']} exited {process.returncode}"
                    return
            run.phase = (
                "InitDone" if not main else ("Succeeded" if run.runs[-1].returncode == 0 else "Failed")
            )
        except Exception as exc:  # surfaced to the test through run.phase / run.error
            run.phase = "Failed"
            run.error = f"{type(exc).__name__}: {exc}"

    def run_to_completion(self, name: str, timeout: float = 120) -> PodRun:
        """Run a pod (e.g. a hook Job's pod) and wait until all its containers ended."""
        run = self.start(name)
        assert run.thread is not None
        run.thread.join(timeout)
        if run.thread.is_alive():
            raise KubeletError(f"pod {name} did not finish within {timeout}s")
        return run

    def exec(
        self, pod_name: str, container_name: str, argv: list[str], timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Like `kubectl exec`: a command in a container's environment, volumes and user."""
        manifest = self.pod(pod_name)
        container = find_container(manifest, container_name)
        root = self.workdir / "pods" / pod_name
        root.mkdir(parents=True, exist_ok=True)
        spec_file, _ = self._spec(manifest, container, argv, root)
        log = self.logs / f"{pod_name}.{container_name}.exec-{time.monotonic_ns()}.log"
        process = self._launch(spec_file, log)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise
        return subprocess.CompletedProcess(argv, process.returncode, log.read_text(errors="replace"), "")

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        phases = "\n".join(f"pod {run.name}: {run.phase} {run.error}" for run in self.pods.values())
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{phases}\n{self.log_tails()}")

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def all_logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in sorted(self.logs.glob("*.log")))

    def shutdown(self) -> None:
        for run in self.pods.values():
            run.stop.set()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            _kill_group(process)
        for run in self.pods.values():
            if run.thread is not None:
                run.thread.join(10)


def _kill_group(process: subprocess.Popen[bytes], grace: float = 5) -> None:
    """SIGTERM the container's process group (as the kubelet would), SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(5)


def _rendered_secrets(documents: list[Manifest]) -> dict[str, dict[str, str]]:
    """name -> data of every Secret in the rendered release (data is base64, stringData is not)."""
    found: dict[str, dict[str, str]] = {}
    for doc in documents:
        if doc.get("kind") != "Secret":
            continue
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
        found[doc["metadata"]["name"]] = data
    return found


def _home_of(uid: int) -> str:
    """HOME as a container runtime sets it: the passwd entry's home, else /."""
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return "/"


def _chown(path: Path, uid: Any, gid: Any) -> None:
    if os.geteuid() == 0 and (uid is not None or gid is not None):
        os.chown(path, int(uid) if uid is not None else -1, int(gid) if gid is not None else -1)
