"""Run the pinned PanDA pilot as the chart renders it, confined, against the stub PanDA server.

Why a harness of its own: the smoke kubelet runs the chart's pods but never the pilot's main
container. Here it does, with three additions and nothing else changed in the rendered pod:

- the "image": the unpacked sdist of the pinned ``panda-pilot`` (``scripts/bootstrap.sh --pilot``)
  appears at ``/opt/pilot3`` (the pilot image's path); the interpreter is the smoke venv's, with the
  images' dask set, so the payload's dask client matches the scheduler;
- ConfigMap volumes (the pilot's configuration file), from dicts standing in for the objects;
- projected volumes (the address gate's token, CA and namespace): a ServiceAccount token from a
  dict standing in for the TokenRequest API, ConfigMaps as above, the downward API's fields; and
  the API server's address in every container's environment (``KUBERNETES_SERVICE_HOST``/``PORT``,
  as a kubelet sets them), pointing at a stub API server;
- CONFINEMENT. At the end of a job the pilot kills every process of its uid whose parent is PID 1
  (``kill_orphans``): on a test machine that is the local cluster, CI and other people's work. The
  main container is therefore started only inside ``setsid --wait unshare --pid --fork
  --kill-child --mount-proc`` (its own PID namespace: PID 1 is its own) and only when its environment, as
  rendered, holds ``PILOT_NOKILL=1``; anything else is refused before a process exists.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.smoke.kubelet import PODROOT, Kubelet, KubeletError, Manifest, _chown, field_value

PILOT_HOME = ROOT / ".venv-pilot"
PILOT_SOURCE = PILOT_HOME / "pilot3"  # the pinned sdist, unpacked as in the pilot image
PILOT_IMAGE_PATH = "/opt/pilot3"
CONFINED_CONTAINER = "pilot"


class UnconfinedPilotError(KubeletError):
    """The pilot was about to start without PILOT_NOKILL=1 or outside its own PID namespace."""


def confinement_prefix(env: Mapping[str, str]) -> list[str]:
    """The only way a pilot process may start on a test machine; refuses without PILOT_NOKILL=1."""
    if env.get("PILOT_NOKILL") != "1":
        raise UnconfinedPilotError(
            "refusing to start the pilot: PILOT_NOKILL=1 is not in its environment "
            "(it would kill every process of its uid whose parent is PID 1)"
        )
    setsid, unshare = shutil.which("setsid"), shutil.which("unshare")
    if setsid is None or unshare is None:
        raise UnconfinedPilotError(
            "refusing to start the pilot: setsid and unshare (util-linux) are required"
        )
    if os.geteuid() != 0:
        raise UnconfinedPilotError("refusing to start the pilot: a private PID namespace needs root")
    # --kill-child: the pilot puts itself in a process group of its own, so a killpg of ours would
    # miss it; when unshare dies, its child (PID 1 of the namespace) and with it everything dies
    return [
        setsid,
        "--wait",
        unshare,
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
    ]


class PilotKubelet(Kubelet):
    """The smoke kubelet plus ConfigMap volumes and the confined pilot container (module docstring)."""

    def __init__(
        self,
        *args: Any,
        config_maps: Mapping[str, Mapping[str, str]] | None = None,
        pilot_source: Path = PILOT_SOURCE,
        service_account_tokens: Mapping[str, str] | None = None,
        api_server_env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.config_maps = {k: dict(v) for k, v in (config_maps or {}).items()}
        self.service_account_tokens = dict(service_account_tokens or {})
        self.api_server_env = dict(api_server_env or {})
        self.pilot_source = pilot_source
        self._confined: set[str] = set()
        self._confined_processes: list[subprocess.Popen[bytes]] = []
        # more of the "image" of the pilot container: mount target -> host directory
        self.extra_mounts: dict[str, Path] = {}
        self.pilot_env: dict[str, str] = {}
        self.pilot_argv: list[str] = []

    def _volume_sources(self, pod: Manifest, root: Path) -> dict[str, Path]:
        volumes = pod["spec"].get("volumes") or []
        plain = copy.deepcopy(pod)
        plain["spec"]["volumes"] = [v for v in volumes if "configMap" not in v and "projected" not in v]
        sources = super()._volume_sources(plain, root)
        for volume in volumes:
            if "configMap" in volume:
                sources[volume["name"]] = self._config_map_volume(
                    volume["configMap"], root / "volumes" / volume["name"]
                )
            elif "projected" in volume:
                sources[volume["name"]] = self._projected_volume(
                    pod, volume["projected"], root / "volumes" / volume["name"]
                )
        return sources

    def _projected_volume(self, pod: Manifest, spec: Manifest, path: Path) -> Path:
        """The token of the pod's ServiceAccount, ConfigMap keys and downward-API fields, as files."""
        path.mkdir(parents=True, exist_ok=True)
        security = pod["spec"].get("securityContext") or {}
        for source in spec["sources"]:
            if "serviceAccountToken" in source:
                account = pod["spec"].get("serviceAccountName", "default")
                token = self.service_account_tokens.get(account)
                if token is None:
                    raise KubeletError(f"no token for the ServiceAccount {account} was given to the kubelet")
                files = {source["serviceAccountToken"]["path"]: token}
            elif "configMap" in source:
                data = self.config_maps.get(source["configMap"]["name"])
                if data is None:
                    raise KubeletError(f"ConfigMap {source['configMap']['name']} is not given to the kubelet")
                files = {item["path"]: data[item["key"]] for item in source["configMap"]["items"]}
            elif "downwardAPI" in source:
                files = {
                    item["path"]: field_value(pod, self.namespace, item["fieldRef"]["fieldPath"])
                    for item in source["downwardAPI"]["items"]
                }
            else:
                raise KubeletError(f"unsupported projected source {sorted(source)}")
            for name, text in files.items():
                file = path / name
                file.write_text(text)
                file.chmod(0o600)  # a projected token is private to the pod's user
                _chown(file, security.get("runAsUser"), security.get("fsGroup"))
        path.chmod(0o755)
        return path

    def _config_map_volume(self, spec: Manifest, path: Path) -> Path:
        data = self.config_maps.get(spec["name"])
        if data is None:
            raise KubeletError(f"ConfigMap {spec['name']} is referenced but not given to the kubelet")
        path.mkdir(parents=True, exist_ok=True)
        for item in spec.get("items") or [{"key": k, "path": k} for k in data]:
            file = path / item["path"]
            file.write_text(data[item["key"]])
            file.chmod(0o644)
        path.chmod(0o755)
        return path

    def _spec(
        self, pod: Manifest, container: Manifest, argv: list[str] | None, root: Path
    ) -> tuple[Path, dict[str, str]]:
        spec_file, env = super()._spec(pod, container, argv, root)
        if self.api_server_env:
            spec = json.loads(spec_file.read_text())
            spec["env"] = {**self.api_server_env, **spec["env"]}
            env = {**self.api_server_env, **env}
            spec_file.write_text(json.dumps(spec))
        if container["name"] == CONFINED_CONTAINER and pod["spec"]["containers"][0] is container:
            spec = json.loads(spec_file.read_text())
            image = {PILOT_IMAGE_PATH: self.pilot_source, **self.extra_mounts}
            for target, source in image.items():
                spec["mounts"].append({"target": target, "source": str(source), "readOnly": True})
            spec_file.write_text(json.dumps(spec))
            self._confined.add(str(spec_file))
            self.pilot_env = dict(env)
            self.pilot_argv = list(spec["argv"])
        return spec_file, env

    def shutdown(self) -> None:
        """Kill each confined pilot's namespace by its PID 1, then stop the other pods.

        The pilot puts itself in a process group of its own, and the parent-death signal of
        ``--kill-child`` is cleared when the container switches to the pod's uid; killing PID 1 of
        the namespace (the child of unshare) ends everything in it.
        """
        with self._lock:
            confined = list(self._confined_processes)
        for process in confined:
            for child in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        super().shutdown()

    def _launch(self, spec_file: Path, log: Path) -> subprocess.Popen[bytes]:
        if str(spec_file) not in self._confined:
            return super()._launch(spec_file, log)
        env = json.loads(spec_file.read_text())["env"]
        prefix = confinement_prefix(env)
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*prefix, sys.executable, str(PODROOT), str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # no new session here: setsid makes this process its group's leader without a
                # fork, so the kubelet's killpg(pid) reaches the whole confined pilot
            )
        with self._lock:
            self._processes.append(process)
            self._confined_processes.append(process)
        return process


def _children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]
