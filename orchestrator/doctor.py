"""`doctor`: can this caller run sessions in this namespace? Every check, no printing.

The rights checked are not a list kept here: they are read from the Role the project ships
(`deploy/orchestrator-rbac.yaml`), every verb of every resource of every rule asked of the API
server with a SelfSubjectAccessReview, so the Role and the check cannot drift apart (a unit test
keeps the Role equal to what the code and helm use). A claim that is not Bound is explained
(its events, and the volume it waits for when the caller may read it), since a Pending shared
claim stops every session at its first pod with no word of why.

The CLI only shows the result; any other adapter can run the same checks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from orchestrator import kube as kube_mod
from orchestrator import resources
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.netprobe import CHECK_NAME as NETWORK_POLICY_CHECK
from orchestrator.netprobe import DEFAULT_PROBE_IMAGE, NetworkPolicyProbe
from orchestrator.seams import KubeSeam
from orchestrator.service import SessionService

__all__ = [
    "CLOCK_SKEW_WARNING_SECONDS",
    "PROBE_IMAGE_ENV",
    "ROLE_FILE",
    "Check",
    "Permission",
    "check_claim",
    "check_clock",
    "check_network_policies",
    "check_permissions",
    "role_permissions",
    "run_doctor",
]

ROLE_FILE: Final = resources.role_file()
"""deploy/orchestrator-rbac.yaml: the checkout's, or the copy an installed wheel carries."""
PROBE_IMAGE_ENV: Final = "DPS_PROBE_IMAGE"
"""The NetworkPolicy probe's image (any image with `python3`), e.g. a mirror the cluster can pull."""

# Above this host-vs-API-server skew, doctor warns (the orchestrator's verdicts use the server's
# clock and are not affected; Harvester's own bookkeeping on the host is).
CLOCK_SKEW_WARNING_SECONDS: Final = 60.0

_ONE_CLAIM_PER_VOLUME: Final = (
    "a PersistentVolume binds one claim: give this namespace its own volume "
    "(deploy/GOOGLE_DASK-namespace.yaml names it after the namespace)"
)
_SSAR: Final = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass(frozen=True)
class Check:
    """One line of the report; `ok` None is a warning (shown, but not a failure)."""

    name: str
    ok: bool | None
    detail: str
    error: DaskPandaSessionError | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource (optionally one named object) in the sessions' namespace."""

    group: str
    resource: str
    verb: str
    name: str = ""

    @property
    def subject(self) -> str:
        """`resource[.group][/name]`, as kubectl writes it."""
        base = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{base}/{self.name}" if self.name else base


def role_permissions(path: Path = ROLE_FILE) -> list[Permission]:
    """Every (group, resource, verb, name) the Role in `path` grants, sorted, no duplicates."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as err:
        raise InputError(f"role file {path}: cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise InputError(f"role file {path}: not valid YAML: {err}") from None
    roles = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == "Role"]
    if len(roles) != 1:
        raise InputError(f"role file {path}: must hold exactly one Role, found {len(roles)}")
    found: set[Permission] = set()
    for index, rule in enumerate(roles[0].get("rules") or []):
        if not isinstance(rule, Mapping):
            raise InputError(f"role file {path}: rules[{index}] must be a mapping")
        names = list(rule.get("resourceNames") or [""])
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    for name in names:
                        found.add(Permission(str(group), str(resource), str(verb), str(name)))
    if not found:
        raise InputError(f"role file {path}: the Role grants nothing")
    return sorted(found)


def _allowed(kube: KubeSeam, namespace: str, permission: Permission) -> bool:
    attributes = {
        "namespace": namespace,
        "verb": permission.verb,
        "resource": permission.resource,
        "group": permission.group,
    }
    if permission.name:
        attributes["name"] = permission.name
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = kube.request("POST", _SSAR, body=body)
    return bool((answer or {}).get("status", {}).get("allowed"))


def check_permissions(kube: KubeSeam, namespace: str, permissions: Iterable[Permission]) -> list[Check]:
    """One check per resource (and named object): every verb the Role grants on it, asked."""
    by_subject: dict[str, list[Permission]] = {}
    for permission in permissions:
        by_subject.setdefault(permission.subject, []).append(permission)
    checks = []
    for subject, wanted in sorted(by_subject.items()):
        verbs = [p.verb for p in wanted]
        missing = [p.verb for p in wanted if not _allowed(kube, namespace, p)]
        detail = f"missing: {', '.join(missing)} (of {', '.join(verbs)})" if missing else ", ".join(verbs)
        checks.append(Check(f"rights on {subject}", not missing, detail))
    return checks


def check_clock(svc: SessionService) -> Check:
    """How far the host's clock is from the API server's; a warning above the threshold."""
    skew = svc.clock_skew()
    side = "ahead of" if skew >= 0 else "behind"
    detail = f"the host is {abs(skew):.0f} s {side} the API server"
    if abs(skew) > CLOCK_SKEW_WARNING_SECONDS:
        return Check(
            "clock",
            None,
            f"{detail} (more than {CLOCK_SKEW_WARNING_SECONDS:.0f} s: synchronise the host clock)",
        )
    return Check("clock", True, detail)


def _claim_events(kube: KubeSeam, namespace: str, claim: str) -> list[str]:
    selector = f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={claim}"
    data = kube.request("GET", kube_mod.EVENT.path(namespace), query={"fieldSelector": selector})
    items = sorted(
        (data or {}).get("items", []),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    return [str(e.get("message", "")).strip() for e in items if e.get("message")]


def _volume_owner(kube: KubeSeam, volume: str) -> tuple[bool, str | None]:
    """(the volume exists, `namespace/claim` it is reserved for or bound to); (True, None) when
    the caller may not read volumes (a namespaced Role cannot: nothing more is said)."""
    try:
        pv = kube.request("GET", f"/api/v1/persistentvolumes/{volume}", missing_ok=True)
    except kube_mod.KubeUnavailable:
        raise
    except kube_mod.KubeError:
        return True, None
    if pv is None:
        return False, None
    ref = pv.get("spec", {}).get("claimRef") or {}
    if not ref.get("name"):
        return True, None
    return True, f"{ref.get('namespace', '')}/{ref['name']}"


def check_claim(kube: KubeSeam, namespace: str, claim: str) -> Check:
    """Is the shared claim Bound; if not, why (events, the volume it names and its owner)."""
    obj = kube.get(kube_mod.PVC, namespace, claim)
    if obj is None:
        return Check("shared claim", False, f"{claim}: no such claim in namespace {namespace}")
    phase = obj.get("status", {}).get("phase") or "Unknown"
    if phase == "Bound":
        return Check("shared claim", True, f"{claim}: Bound")
    why: list[str] = []
    taken = False
    volume = obj.get("spec", {}).get("volumeName")
    if volume:
        exists, owner = _volume_owner(kube, str(volume))
        if not exists:
            why.append(f"the volume {volume} it names does not exist")
        elif owner is not None and owner != f"{namespace}/{claim}":
            why.append(f"the volume {volume} belongs to the claim {owner}")
            taken = True
    events = _claim_events(kube, namespace, claim)
    if events:
        why.append(f"last event: {events[-1]}")
        taken = taken or any("bound to a different claim" in e for e in events)
    if taken:
        why.append(_ONE_CLAIM_PER_VOLUME)
    detail = f"{claim}: {phase}" + (f": {'; '.join(why)}" if why else "")
    return Check("shared claim", False, detail)


def check_network_policies(kube: KubeSeam, namespace: str, probe: NetworkPolicyProbe) -> Check:
    """Whether the cluster enforces NetworkPolicies (a pod pair tries); a cluster that does not, or
    a probe that cannot tell, is a warning: sessions still hold by their TLS, but a multi-user
    queue requires enforcement."""
    result = probe.run(kube, namespace)
    return Check(NETWORK_POLICY_CHECK, True if result.enforced else None, result.detail)


def _guard(name: str, probe: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one probe; a failure of the probe itself is that check's failure, not the end."""
    try:
        result = probe()
    except DaskPandaSessionError as err:
        return [Check(name, False, str(err), err)]
    return result if isinstance(result, list) else [result]


def run_doctor(
    svc: SessionService,
    namespace: str,
    *,
    queue: str | None = None,
    values_files: Sequence[str] = (),
    role_file: Path = ROLE_FILE,
    netpol_probe: NetworkPolicyProbe | None = None,
) -> list[Check]:
    """Every check, in order: helm, cluster, clock, namespace, each right of the Role, the
    queue's shared claim and its proxy Secret, and whether NetworkPolicies are enforced (a short
    probe; `netpol_probe` sets its image and timeout, by default a small Python image, or the one
    named by the environment variable DPS_PROBE_IMAGE, and the queue's image pull secrets). Bad input (the queue, the role file) raises InputError;
    anything the cluster says is a failed check."""
    config = svc.queue(queue, values_files)
    permissions = role_permissions(role_file)
    kube = svc.kube
    checks: list[Check] = []
    checks += _guard(
        "helm", lambda: Check("helm", True, f"{svc.settings.helm_executable} {svc.helm.version}")
    )
    checks += _guard("cluster", lambda: Check("cluster", True, f"Kubernetes {kube.version()}"))
    if checks[-1].ok is False:
        return checks  # nothing more can be learnt from a cluster that cannot be reached
    checks += _guard("clock", lambda: check_clock(svc))
    checks += _guard(
        "namespace",
        lambda: Check(
            "namespace",
            kube.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
            namespace,
        ),
    )
    checks += _guard("rights", lambda: check_permissions(kube, namespace, permissions))
    values = config.values
    claim = (values.get("sharedVolume") or {}).get("existingClaim")
    if claim:
        checks += _guard("shared claim", lambda: check_claim(kube, namespace, str(claim)))
    proxy = ((values.get("pilot") or {}).get("proxy") or {}).get("secretName", "proxy-secret")
    checks += _guard(
        "proxy Secret",
        lambda: Check(
            "proxy Secret", kube.exists(f"/api/v1/namespaces/{namespace}/secrets/{proxy}"), str(proxy)
        ),
    )
    probe = netpol_probe or NetworkPolicyProbe(
        image=os.environ.get(PROBE_IMAGE_ENV) or DEFAULT_PROBE_IMAGE, sleep=svc.sleep
    )
    if not probe.image_pull_secrets:  # the queue's registry credentials reach the probe's pods too
        probe = dataclasses.replace(probe, image_pull_secrets=_pull_secrets(values))
    checks += _guard(NETWORK_POLICY_CHECK, lambda: check_network_policies(kube, namespace, probe))
    return checks


def _pull_secrets(values: Mapping[str, Any]) -> list[str]:
    """The queue's image pull secrets (names), for the probe's pods."""
    return [str(s) for s in values.get("imagePullSecrets") or [] if s]
