"""The chart's names, labels and kinds equal the orchestrator's (`orchestrator/names.py`): every
object of the render matrix (each queue file x batch/interactive x Helm 3/4, and each queue file
with every optional object switched on) is checked against the Python constants, and the sweep's
kinds are exactly what the chart and the orchestrator can create."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator import names
from orchestrator.job import release_name
from orchestrator.values import deep_merge
from tests.chart.conftest import MODES, PANDA_ID, QUEUE_FILES, RELEASE, Rendered, job_values, render
from tests.conftest import CHART, VALUES_DIR

pytestmark = pytest.mark.chart

# Every optional object on: the chart's own claim, the Ingress, the per-component egress policies.
EVERYTHING: dict[str, Any] = {
    "sharedVolume": {"existingClaim": "", "create": {"enabled": True, "storageClassName": "standard"}},
    "jupyterlab": {"ingress": {"enabled": True, "host": "lab.example.org", "path": f"/{RELEASE}/"}},
    "networkPolicy": {
        "egress": {
            "pilot": [{"cidr": "192.0.2.0/24", "ports": [443]}],
            "jupyterlab": [{"cidr": "198.51.100.0/24", "ports": [443]}],
        }
    },
    "tests": {"enabled": True},
}
# The objects an Ingress excludes: the pilot's address gate, on for a LoadBalancer whose address
# the cloud assigns (no reserved IP, no Ingress), with its API-server egress policy.
ADDRESS_GATE: dict[str, Any] = {
    "jupyterlab": {
        "service": {
            "type": "LoadBalancer",
            "loadBalancerIP": "",
            "loadBalancerSourceRanges": ["192.0.2.0/24"],
        },
        "ingress": {"enabled": False},
        "addressGate": {"enabled": "auto", "apiServerEgress": [{"cidr": "172.16.0.2/32", "ports": [443]}]},
    },
}
OWN_PREFIXES = ("app.kubernetes.io/", "helm.sh/", f"{names.APP_NAME}/")
KINDS_BY_NAME = {kind.name: kind for kind in names.CHART_KINDS}


def expected_objects(release: str, workers: int) -> dict[tuple[str, str], str]:
    """(kind, name) -> component of every object the chart can render, from the Python names."""
    policy, pod = names.NETWORK_POLICY.name, names.POD.name
    out = {
        (pod, names.scheduler_name(release)): names.SCHEDULER,
        (names.SERVICE.name, names.scheduler_name(release)): names.SCHEDULER,
        (policy, names.scheduler_name(release)): names.SCHEDULER,
        (policy, names.workers_policy_name(release)): names.WORKER,
        (pod, names.pilot_name(release)): names.PILOT,
        (policy, names.pilot_name(release)): names.PILOT,
        (policy, names.egress_policy_name(release, names.PILOT)): names.PILOT,
        (pod, names.jupyterlab_name(release)): names.JUPYTERLAB,
        (names.SERVICE.name, names.jupyterlab_name(release)): names.JUPYTERLAB,
        (names.INGRESS.name, names.jupyterlab_name(release)): names.JUPYTERLAB,
        (policy, names.jupyterlab_name(release)): names.JUPYTERLAB,
        (policy, names.egress_policy_name(release, names.JUPYTERLAB)): names.JUPYTERLAB,
        (policy, names.egress_policy_name(release)): names.EGRESS,
        (names.JOB.name, names.hook_job_name(release, names.PREPARE)): names.PREPARE,
        (names.JOB.name, names.hook_job_name(release, names.CLEANUP)): names.CLEANUP,
        (pod, names.helm_test_name(release)): names.TEST,
        (names.PVC.name, names.claim_name(release)): names.SHARED_VOLUME,
        (names.SERVICE_ACCOUNT.name, names.address_gate_name(release)): names.ADDRESS_GATE,
        (names.ROLE.name, names.address_gate_name(release)): names.ADDRESS_GATE,
        (names.ROLE_BINDING.name, names.address_gate_name(release)): names.ADDRESS_GATE,
        (policy, names.address_gate_name(release)): names.ADDRESS_GATE,
    }
    out |= {(pod, names.worker_name(release, i)): names.WORKER for i in range(workers)}
    return out


def workers_of(rendered: Rendered) -> int:
    return sum(
        1 for o in rendered.of_kind("Pod") if o["metadata"]["labels"][names.COMPONENT_LABEL] == names.WORKER
    )


def check_object(obj: dict[str, Any], expected: dict[tuple[str, str], str], mode: str) -> None:
    """One object: its kind and API version, its name and component, its labels and annotations."""
    kind, meta = obj["kind"], obj["metadata"]
    assert kind in KINDS_BY_NAME, f"{kind} is not in names.CHART_KINDS"
    assert obj["apiVersion"] == KINDS_BY_NAME[kind].group_version, obj["apiVersion"]
    key = (kind, meta["name"])
    assert key in expected, f"{key} is not a name orchestrator/names.py builds"
    labels = meta["labels"]
    assert labels[names.COMPONENT_LABEL] == expected[key], key
    assert labels[names.COMPONENT_LABEL] in names.CHART_COMPONENTS
    assert labels[names.NAME_LABEL] == names.APP_NAME
    assert labels[names.INSTANCE_LABEL] == RELEASE
    assert labels[names.PART_OF_LABEL] == names.PART_OF
    assert labels[names.PANDAID_LABEL] == PANDA_ID
    assert labels[names.MODE_LABEL] == mode
    own = {k for k in labels if k.startswith(OWN_PREFIXES)}
    assert own == names.CHART_LABELS, f"{key}: {sorted(own ^ names.CHART_LABELS)}"
    if kind == "Pod" and labels[names.COMPONENT_LABEL] in {
        names.SCHEDULER,
        names.WORKER,
        names.PILOT,
        names.JUPYTERLAB,
    }:
        annotations = {k for k in meta.get("annotations", {}) if k.startswith(f"{names.APP_NAME}/")}
        wanted = names.SESSION_ANNOTATIONS - ({names.ANN_JUPYTER_URL} if mode == "batch" else set())
        assert annotations == wanted, f"{key}: {sorted(annotations ^ wanted)}"


def check_selectors(rendered: Rendered) -> None:
    """Services and NetworkPolicies select by the selector labels of names.py and nothing else."""
    for svc in rendered.of_kind("Service"):
        assert set(svc["spec"]["selector"]) == set(names.SELECTOR_LABELS), svc["metadata"]["name"]
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        assert set(selector) <= set(names.SELECTOR_LABELS), policy["metadata"]["name"]
        assert selector[names.INSTANCE_LABEL] == RELEASE


@pytest.fixture(
    scope="module", params=[(q, m) for q in QUEUE_FILES for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


def test_the_matrix_release_is_the_orchestrators() -> None:
    assert release_name(int(PANDA_ID)) == RELEASE  # the name every render below is checked with


def test_every_object_named_labelled_and_kinded_as_in_python(helm_bin: Path, case: tuple[str, str]) -> None:
    queue_file, mode = case
    rendered = render(helm_bin, [job_values(mode)], [VALUES_DIR / queue_file])
    expected = expected_objects(RELEASE, workers_of(rendered))
    assert rendered.objects
    for obj in rendered.objects:
        check_object(obj, expected, mode)
    check_selectors(rendered)


@pytest.mark.parametrize("queue_file", QUEUE_FILES)
def test_every_object_the_chart_can_make_is_rendered_and_known(helm_bin: Path, queue_file: str) -> None:
    """With every optional object on (in two renders: the Ingress excludes the address gate), the
    renders hold each name names.py builds, each once per render (the claim twice: its pre-install
    hook and its post-delete stand-in), and together exactly the CHART_KINDS."""
    seen_all: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    expected: dict[tuple[str, str], str] = {}
    for extra in (EVERYTHING, deep_merge(EVERYTHING, ADDRESS_GATE)):
        rendered = render(helm_bin, [job_values("interactive", **extra)], [VALUES_DIR / queue_file])
        expected = expected_objects(RELEASE, workers_of(rendered))
        for obj in rendered.objects:
            check_object(obj, expected, "interactive")
        check_selectors(rendered)
        seen = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
        claim = (names.PVC.name, names.claim_name(RELEASE))
        assert all(seen.count(k) == (2 if k == claim else 1) for k in set(seen)), seen
        seen_all |= set(seen)
        kinds |= {o["kind"] for o in rendered.objects}
    assert seen_all == set(expected), sorted(seen_all ^ set(expected))
    assert kinds == {k.name for k in names.CHART_KINDS}


def test_the_templates_hold_no_other_kind() -> None:
    """A kind written in a template but not rendered above (a new template) fails here."""
    found: set[str] = set()
    for path in (CHART / "templates").rglob("*.yaml"):
        found |= set(re.findall(r"^kind:\s*(\w+)", path.read_text(encoding="utf-8"), re.M))
    assert found == {k.name for k in names.CHART_KINDS}


def test_no_template_builds_a_name_by_hand() -> None:
    """Every `name:` of an object's metadata comes from _helpers-names.tpl."""
    for path in (CHART / "templates").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        for line in re.findall(r"^kind: \w+\nmetadata:\n  name: (.*)$", text, re.M):
            assert re.fullmatch(r'\{\{ include "dps\.\w+Name" .*\}\}', line), f"{path.name}: {line}"


def test_the_sweep_deletes_exactly_what_can_be_created() -> None:
    """The sweep's kinds are the chart's and the orchestrator's own, no more (the Role grants the
    sweep's list and delete on these only)."""
    assert set(names.LEFTOVER_KINDS) == names.CHART_KINDS | names.ORCHESTRATOR_KINDS
    assert len(names.LEFTOVER_KINDS) == len(set(names.LEFTOVER_KINDS))
    order = [k.name for k in names.LEFTOVER_KINDS]
    assert order[0] == "Job" and order[-1] == "PersistentVolumeClaim"  # owners first, claims last
