"""The smoke kubelet with real processes on a hand-written pod: what it must refuse and provide.

Why: the session tests pass only if this harness starts containers the way the kubelet does;
here a tiny pod checks the parts a broken chart would trip over: a failing init container stops
the pod, `$(VAR)` reaches argv, secret files carry the kubelet's mode and group, subPath volumes
land inside their claim, and Service names resolve to loopback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.smoke.conftest import SMOKE_VENV
from tests.smoke.kubelet import Kubelet

PROBE = r"""
import json, os, socket, stat, sys
secret = "/etc/creds/pw"
st = os.stat(secret)
with open("/data/probe.txt", "w") as handle:
    handle.write("written by the container")
print(json.dumps({
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "secret_mode": oct(stat.S_IMODE(st.st_mode)),
    "secret_gid": st.st_gid,
    "secret_readable": open(secret).read() == os.environ["EXPECTED"],
    "resolved": socket.gethostbyname("web.ns1.svc.cluster.local"),
    "resolved_short": socket.gethostbyname("web"),
    "uid": os.getuid(),
}))
"""


def _pod(init_exit: int) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "ns1"},
        "spec": {
            "securityContext": {"runAsUser": 4242, "runAsGroup": 4343, "fsGroup": 4444},
            "initContainers": [
                {"name": "gate", "command": ["python", "-c", f"import sys; sys.exit({init_exit})"]}
            ],
            "containers": [
                {
                    "name": "main",
                    "command": ["python", "-c", PROBE],
                    "args": ["--pod=$(POD_NAME)", "$$(NOT_EXPANDED)", "$(UNKNOWN)"],
                    "workingDir": "/data",
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "EXPECTED", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}},
                    ],
                    "volumeMounts": [
                        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                        {"name": "shared", "mountPath": "/data", "subPath": "job-7"},
                    ],
                }
            ],
            "volumes": [
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "shared", "persistentVolumeClaim": {"claimName": "share"}},
            ],
        },
    }


def _kubelet(tmp_path: Path, pod: dict[str, Any]) -> Kubelet:
    if not (SMOKE_VENV / "bin" / "python").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    service = {"kind": "Service", "metadata": {"name": "web", "namespace": "ns1"}, "spec": {"ports": []}}
    tmp_path.chmod(0o755)
    return Kubelet([pod, service], "ns1", tmp_path, SMOKE_VENV, secrets={"creds": {"pw": "s3cret-value"}})


def test_a_failing_init_container_stops_the_pod(tmp_path: Path) -> None:
    kubelet = _kubelet(tmp_path, _pod(init_exit=3))
    try:
        run = kubelet.run_to_completion("probe", timeout=60)
    finally:
        kubelet.shutdown()
    assert run.phase == "Failed"
    assert run.error == "init container gate exited 3"
    assert run.main is None


def test_env_argv_volumes_identity_and_dns_reach_the_process(tmp_path: Path) -> None:
    kubelet = _kubelet(tmp_path, _pod(init_exit=0))
    try:
        run = kubelet.run_to_completion("probe", timeout=60)
    finally:
        kubelet.shutdown()
    assert run.main is not None
    output = run.main.log.read_text()
    assert run.phase == "Succeeded", output
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen["argv"] == ["--pod=probe", "$(NOT_EXPANDED)", "$(UNKNOWN)"]
    assert seen["cwd"] == "/data"
    assert seen["secret_readable"] is True
    assert seen["resolved"] == "127.0.0.1"
    assert seen["resolved_short"] == "127.0.0.1"
    assert (kubelet.claims / "share" / "job-7" / "probe.txt").read_text() == "written by the container"
    if os.geteuid() == 0:
        assert seen["uid"] == 4242
        assert seen["secret_mode"] == "0o440"  # defaultMode 0400 plus the fsGroup's read bit
        assert seen["secret_gid"] == 4444
