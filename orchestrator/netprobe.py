"""Does this cluster enforce NetworkPolicies? One short-lived pod pair finds out.

Isolation between sessions of different users rests on the chart's NetworkPolicies and on the
session's TLS; the policies do nothing on a cluster whose network plug-in does not implement them
(GKE enforces them only with Dataplane V2 or Calico), and the API server accepts them all the
same. So `doctor` tries: a server pod listens on two ports under a NetworkPolicy that denies all
ingress but the first (the control), and a client pod connects to both. The control port must
answer (else the probe proves nothing and says so); the other must not (else the cluster does not
enforce, and doctor warns loudly).

The verdict is never "enforced" without the client's own report, written as its termination
message with the probe's run id: pods on simulated nodes (kwok, whose nodes carry the annotation
``kwok.x-k8s.io/node: fake``) never run a container, and pods that do not run in time report
nothing, and both give "cannot tell". The three objects carry the probe's labels and are deleted
whatever happens; the pods follow the restricted Pod Security Standard, have a deadline, and use a
small Python image (configurable: any image with ``python3`` on its PATH).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from orchestrator import kube as kube_mod
from orchestrator.names import (
    COMPONENT_LABEL,
    KWOK_NODE_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NETWORK_POLICY,
    POD,
    PROBE_COMPONENT,
    PROBE_LABEL,
    PROBE_NAME_PREFIX,
)
from orchestrator.seams import KubeSeam

__all__ = [
    "CHECK_NAME",
    "CLIENT_SCRIPT",
    "DEFAULT_PROBE_IMAGE",
    "DENIED_PORT",
    "OPEN_PORT",
    "SERVER_SCRIPT",
    "NetworkPolicyProbe",
    "ProbeResult",
    "parse_report",
]

CHECK_NAME: Final = "NetworkPolicy enforcement"
DEFAULT_PROBE_IMAGE: Final = "docker.io/library/python:3.13-alpine"
OPEN_PORT: Final = 8081
"""The port the probe's policy admits: the control (it must answer)."""
DENIED_PORT: Final = 8080
"""The port the probe's policy does not admit (it must not answer on an enforcing cluster)."""
RUN_AS: Final = 65534  # nobody: the restricted standard wants a non-root numeric user

SERVER_SCRIPT: Final = """\
import os, select, socket
def listen(port):
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", port))
ports = (int(os.environ["OPEN_PORT"]), int(os.environ["DENIED_PORT"]))
servers = [listen(port) for port in ports]
print("listening on", *ports, flush=True)
while True:
    for ready in select.select(servers, [], [])[0]:
        ready.accept()[0].close()
"""

CLIENT_SCRIPT: Final = """\
import os, socket, time
host = os.environ["SERVER_IP"]
def reach(port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "refused"
deadline = time.monotonic() + float(os.environ["CONTROL_SECONDS"])
control = reach(int(os.environ["OPEN_PORT"]))
while control != "connected" and time.monotonic() < deadline:
    time.sleep(1)
    control = reach(int(os.environ["OPEN_PORT"]))
denied = "untried"
if control == "connected":
    tries = [reach(int(os.environ["DENIED_PORT"])) for _ in range(3)]
    denied = "connected" if "connected" in tries else tries[-1]
report = f"probe={os.environ['PROBE_ID']} control={control} denied={denied}"
with open(os.environ.get("REPORT_PATH", "/dev/termination-log"), "w") as out:
    out.write(report)
print(report, flush=True)
"""

_REPORT_RE: Final = re.compile(
    r"probe=(?P<id>[0-9a-f]+) control=(?P<control>connected|timeout|refused) "
    r"denied=(?P<denied>connected|timeout|refused|untried)"
)


@dataclass(frozen=True)
class ProbeResult:
    """The verdict: True enforced, False not enforced, None cannot tell; and why."""

    enforced: bool | None
    detail: str


def parse_report(message: str | None, run_id: str) -> ProbeResult | None:
    """The client's own report (its termination message) as a verdict; None when there is no
    report of this run (a container that never ran, or another run's)."""
    match = _REPORT_RE.search(message or "")
    if match is None or match["id"] != run_id:
        return None
    control, denied = match["control"], match["denied"]
    if control != "connected":
        return ProbeResult(
            None,
            f"cannot tell: the probe client could not reach the server even on the port the policy "
            f"admits ({OPEN_PORT}: {control}); something else blocks pod-to-pod traffic here",
        )
    if denied == "connected":
        return ProbeResult(
            False,
            f"NOT ENFORCED: a pod under a NetworkPolicy that denies all ingress but port {OPEN_PORT} "
            f"accepted a connection on port {DENIED_PORT}. The network plug-in ignores NetworkPolicies: "
            "sessions are isolated by their TLS alone. Multi-user queues require a cluster that "
            "enforces them (GKE: Dataplane V2 or Calico)",
        )
    return ProbeResult(
        True,
        f"enforced: a pod under a NetworkPolicy that admits only port {OPEN_PORT} answered there and "
        f"not on port {DENIED_PORT} ({denied})",
    )


def _labels(run_id: str, role: str) -> dict[str, str]:
    return {
        COMPONENT_LABEL: f"{PROBE_COMPONENT}-{role}",
        MANAGED_BY_LABEL: MANAGED_BY,
        PROBE_LABEL: run_id,
    }


@dataclass
class NetworkPolicyProbe:
    """The probe's settings; :meth:`run` probes one namespace and always removes what it made."""

    image: str = DEFAULT_PROBE_IMAGE
    timeout: float = 90.0
    """Seconds for both pods to be scheduled, pull the image, run and report."""
    poll: float = 1.0
    image_pull_secrets: Sequence[str] = ()
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:10], repr=False)

    def run(self, kube: KubeSeam, namespace: str) -> ProbeResult:
        """Probe `namespace`: the verdict, with the cleanup's trouble (if any) appended."""
        run_id = self.new_id()
        base = f"{PROBE_NAME_PREFIX}-{run_id}"
        made: list[tuple[kube_mod.Kind, str]] = []
        try:
            result = self._probe(kube, namespace, run_id, base, made)
        finally:
            left = self._remove(kube, namespace, made)
        if left:
            return ProbeResult(
                result.enforced,
                f"{result.detail}; could not delete the probe's {', '.join(left)} "
                f"(label {PROBE_LABEL}={run_id}): delete them by hand",
            )
        return result

    # -- the steps ---------------------------------------------------------------------------------
    def _probe(
        self,
        kube: KubeSeam,
        namespace: str,
        run_id: str,
        base: str,
        made: list[tuple[kube_mod.Kind, str]],
    ) -> ProbeResult:
        deadline = _Deadline(self.clock, self.clock() + self.timeout, self.timeout)
        kube.create(NETWORK_POLICY, namespace, self._policy(base, run_id))
        made.append((NETWORK_POLICY, base))
        server_name = f"{base}-server"
        kube.create(POD, namespace, self._server(server_name, run_id))
        made.append((POD, server_name))
        server, waited = self._wait(kube, namespace, server_name, deadline, running=True)
        if server is None:
            return waited
        client_name = f"{base}-client"
        kube.create(POD, namespace, self._client(client_name, run_id, str(server["status"]["podIP"])))
        made.append((POD, client_name))
        client, waited = self._wait(kube, namespace, client_name, deadline, running=False)
        if client is None:
            return waited
        report = parse_report(_termination_message(client), run_id)
        if report is None:
            phase = client.get("status", {}).get("phase")
            return ProbeResult(None, f"cannot tell: the probe client ended ({phase}) without a report")
        return report

    def _wait(
        self, kube: KubeSeam, namespace: str, name: str, deadline: _Deadline, *, running: bool
    ) -> tuple[dict[str, Any] | None, ProbeResult]:
        """Poll one pod until it runs with an address (`running`) or has ended; (None, why not)
        when it is on a simulated node, ends early, vanishes or the deadline passes."""
        checked_node = ""
        pod: dict[str, Any] | None = None
        while True:
            pod = kube.get(POD, namespace, name)
            if pod is None:
                return None, ProbeResult(None, f"cannot tell: the probe pod {name} vanished")
            node = str(pod.get("spec", {}).get("nodeName") or "")
            if node and node != checked_node:
                checked_node = node
                if _simulated(kube, node):
                    return None, ProbeResult(
                        None,
                        f"cannot tell: the probe pod {name} was placed on the simulated node {node} "
                        f"({KWOK_NODE_ANNOTATION}=fake), where no container runs; run doctor against "
                        "a cluster with real nodes",
                    )
            status = pod.get("status", {})
            phase = status.get("phase")
            if running and phase == "Running" and status.get("podIP"):
                return pod, ProbeResult(None, "")
            if phase in ("Succeeded", "Failed"):
                if running:
                    return None, ProbeResult(None, f"cannot tell: the probe server {name} ended ({phase})")
                return pod, ProbeResult(None, "")
            if deadline.passed():
                why = _waiting_reason(pod) or str(phase or "not scheduled")
                return None, ProbeResult(
                    None,
                    f"cannot tell: the probe pod {name} did not {'run' if running else 'finish'} within "
                    f"{self.timeout:.0f} s ({why}; image {self.image})",
                )
            self.sleep(self.poll)
            deadline.slept += self.poll

    @staticmethod
    def _remove(kube: KubeSeam, namespace: str, made: list[tuple[kube_mod.Kind, str]]) -> list[str]:
        """Delete every object made, pods first; the ones that could not be deleted, named."""
        left = []
        for kind, name in sorted(made, key=lambda item: item[0] != POD):
            try:
                kube.delete(kind, namespace, name)
            except kube_mod.KubeError:
                left.append(f"{kind.name} {name}")
        return left

    # -- the objects -------------------------------------------------------------------------------
    def _policy(self, name: str, run_id: str) -> dict[str, Any]:
        return {
            "apiVersion": NETWORK_POLICY.group_version,
            "kind": NETWORK_POLICY.name,
            "metadata": {"name": name, "labels": _labels(run_id, "policy")},
            "spec": {
                "podSelector": {"matchLabels": _labels(run_id, "server")},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": OPEN_PORT}]}],
            },
        }

    def _pod(self, name: str, run_id: str, role: str, script: str, env: Mapping[str, str]) -> dict[str, Any]:
        """A pod of the restricted Pod Security Standard that runs `script` and then ends."""
        return {
            "apiVersion": POD.group_version,
            "kind": POD.name,
            "metadata": {"name": name, "labels": _labels(run_id, role)},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": int(self.timeout) + 30,
                "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "imagePullSecrets": [{"name": s} for s in self.image_pull_secrets],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS,
                    "runAsGroup": RUN_AS,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": role,
                        "image": self.image,
                        "command": ["python3", "-c", script],
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "resources": {
                            "requests": {"cpu": "10m", "memory": "32Mi"},
                            "limits": {"cpu": "200m", "memory": "64Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
            },
        }

    def _server(self, name: str, run_id: str) -> dict[str, Any]:
        env = {"OPEN_PORT": str(OPEN_PORT), "DENIED_PORT": str(DENIED_PORT), "PYTHONDONTWRITEBYTECODE": "1"}
        return self._pod(name, run_id, "server", SERVER_SCRIPT, env)

    def _client(self, name: str, run_id: str, server_ip: str) -> dict[str, Any]:
        env = {
            "SERVER_IP": server_ip,
            "OPEN_PORT": str(OPEN_PORT),
            "DENIED_PORT": str(DENIED_PORT),
            "CONTROL_SECONDS": "20",
            "PROBE_ID": run_id,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return self._pod(name, run_id, "client", CLIENT_SCRIPT, env)


@dataclass
class _Deadline:
    """Passed when the clock says so, or when the probe has slept its whole budget: an injected
    sleep that returns at once (tests, a caller's own pacing) still ends the wait."""

    clock: Callable[[], float]
    at: float
    budget: float
    slept: float = 0.0

    def passed(self) -> bool:
        return self.clock() >= self.at or self.slept >= self.budget


def _simulated(kube: KubeSeam, node: str) -> bool:
    """True for a kwok node; False when it is real or cannot be read (a namespaced Role cannot
    read nodes: then only the client's missing report shows that nothing ran)."""
    try:
        obj = kube.request("GET", f"/api/v1/nodes/{node}", missing_ok=True)
    except kube_mod.KubeUnavailable:
        raise
    except kube_mod.KubeError:
        return False
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(KWOK_NODE_ANNOTATION, "")) == "fake"


def _termination_message(pod: Mapping[str, Any]) -> str | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"])
    return None


def _waiting_reason(pod: Mapping[str, Any]) -> str:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("status") == "False" and condition.get("message"):
            return str(condition["message"])
    return ""
