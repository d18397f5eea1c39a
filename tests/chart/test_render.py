"""The render matrix: every object validated strictly against Kubernetes, and the chart's properties
asserted on every render (batch/interactive x each queue values file x Helm 3/4)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.conftest import (
    MODES,
    NAMESPACE,
    PANDA_ID,
    QUEUE_FILES,
    RELEASE,
    Rendered,
    job_values,
    render,
)
from tests.conftest import CHART, VALUES_DIR

# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the one we build and test on.
KUBE_VERSIONS = ("1.30.0", "1.35.0")
PILOT_ENV_CONTRACT = {
    "PILOT_WORKFLOW",
    "PILOT_QUEUE",
    "PILOT_LIFETIME",
    "PILOT_LEASETIME",
    "PILOT_WORKDIR",
    "PILOT_JOB_LABEL",
    "PILOT_USER",
    "PILOT_PANDA_SERVER",
    "X509_USER_PROXY",
    "X509_CERT_DIR",
    "DASK_SCHEDULER_ADDRESS",
    "DASK_SCHEDULER_IP",
}
PILOT_ARG_CONTRACT = [
    "--pod",
    "--noproxyverification",
    "-w",
    "-j",
    "-q",
    "--workdir",
    "--pilot-user",
    "--url",
    "--lifetime",
    "--leasetime",
]
HOOK_COMPONENTS = {"prepare", "cleanup"}
SECRET_CANARY = "CANARY-pw-7c1e"

VALIDATED: Counter[str] = Counter()


@pytest.fixture(
    scope="module", params=[(q, m) for q in QUEUE_FILES for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def rendered(helm_bin: Path, case: tuple[str, str]) -> Rendered:
    queue_file, mode = case
    values = job_values(mode)
    values["job"]["definition"]["secrets"] = {
        "jupyter": json.dumps({"username": "u", "password": SECRET_CANARY})
    }
    return render(helm_bin, [values], [VALUES_DIR / queue_file])


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_validates_strictly(rendered: Rendered, kube_version: str) -> None:
    for obj in rendered.objects:
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {kube_version}: {err}")
        VALIDATED[kube_version] += 1
    assert rendered.objects


def test_expected_objects(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    pods = {o["metadata"]["name"] for o in rendered.of_kind("Pod")}
    workers = [p for p in pods if p.startswith(f"{RELEASE}-worker-")]
    assert {f"{RELEASE}-scheduler", f"{RELEASE}-pilot", f"{RELEASE}-test"} <= pods
    assert len(workers) >= 1
    assert (f"{RELEASE}-jupyterlab" in pods) == (mode == "interactive")
    assert {o["metadata"]["name"] for o in rendered.of_kind("Job")} == {
        f"{RELEASE}-prepare",
        f"{RELEASE}-cleanup",
    }
    assert len(rendered.of_kind("NetworkPolicy")) == (4 if mode == "interactive" else 3)


def test_names_prefixed_and_labels_complete(rendered: Rendered) -> None:
    for obj in rendered.objects:
        meta = obj["metadata"]
        name = meta["name"]
        labels = meta["labels"]
        assert name.startswith(f"{RELEASE}-"), name
        assert len(name) <= 63, name
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "dask-panda-session"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["dask-panda-session/pandaid"] == PANDA_ID
        assert labels["dask-panda-session/worker-id"] == "4242"
        assert labels["app.kubernetes.io/component"]


def test_selectors_unique_per_component(rendered: Rendered, helm_bin: Path, case: tuple[str, str]) -> None:
    """Every Service and NetworkPolicy selects pods of exactly one component of this release,
    and nothing of a second release in the same namespace."""
    queue_file, mode = case
    other = render(helm_bin, [job_values(mode)], [VALUES_DIR / queue_file], release="dask-99")
    all_pods = rendered.of_kind("Pod") + other.of_kind("Pod")
    all_pods = [p for p in all_pods if component(p) != "test"]
    selectors = [(s["metadata"]["name"], s["spec"]["selector"]) for s in rendered.of_kind("Service")]
    selectors += [
        (n["metadata"]["name"], n["spec"]["podSelector"]["matchLabels"])
        for n in rendered.of_kind("NetworkPolicy")
    ]
    for name, selector in selectors:
        matched = [
            p for p in all_pods if all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        assert matched, f"{name} selects nothing"
        assert {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in matched} == {RELEASE}, name
        assert len({component(p) for p in matched}) == 1, name
    names = Counter((o["kind"], o["metadata"]["name"]) for o in rendered.objects + other.objects)
    assert max(names.values()) == 1, [n for n, c in names.items() if c > 1]


def test_restricted_security_and_deadlines(rendered: Rendered) -> None:
    for name, spec in rendered.pod_specs():
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        assert spec["automountServiceAccountToken"] is False, name
        assert int(spec["activeDeadlineSeconds"]) > 0, name
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert "add" not in sc["capabilities"], (name, c["name"])
            assert sc["runAsNonRoot"] is True, (name, c["name"])
            assert sc.get("privileged", False) is False, (name, c["name"])
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, (name, volume)


def test_one_lifetime_on_every_session_pod(rendered: Rendered) -> None:
    deadlines = {
        spec["activeDeadlineSeconds"]
        for name, spec in rendered.pod_specs()
        if name.split(f"{RELEASE}-")[1].split("-")[0] in {"scheduler", "worker", "pilot", "jupyterlab"}
    }
    assert len(deadlines) == 1


def test_resources_on_every_container(rendered: Rendered) -> None:
    for name, spec in rendered.pod_specs():
        for c in containers(spec):
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), (
                name,
                c,
            )


def test_no_duplicate_env_names(rendered: Rendered) -> None:
    """Helm 4 applies server-side: a repeated env name in one container is an error there."""
    for name, spec in rendered.pod_specs():
        for c in containers(spec):
            env_names = [e["name"] for e in c.get("env", [])]
            assert len(env_names) == len(set(env_names)), (name, c["name"], env_names)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_pilot_contract(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    pilot = rendered.named("Pod", f"{RELEASE}-pilot")
    spec = pilot["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    env = env_of(container)
    assert set(env) >= PILOT_ENV_CONTRACT, PILOT_ENV_CONTRACT - set(env)
    assert env["PILOT_WORKFLOW"] == ("stager" if mode == "interactive" else "generic")
    assert env["PILOT_WORKDIR"] == "/mnt/dask"
    assert env["PILOT_JOB_LABEL"] == "user" and env["PILOT_USER"] == "atlas"
    assert env["X509_USER_PROXY"].startswith("/")
    args = container["args"]
    for flag in PILOT_ARG_CONTRACT:
        assert flag in args, flag
    # Every $(VAR) in the arguments is defined in the container's env (Kubernetes expands them).
    for arg in args:
        if arg.startswith("$("):
            assert arg[2:-1] in env, arg
    # The proxy Secret is mounted in the pilot only.
    assert any("secret" in v and v["secret"]["secretName"] == "proxy-secret" for v in spec["volumes"])
    for name, other in rendered.pod_specs():
        if name != f"{RELEASE}-pilot":
            for v in other.get("volumes", []):
                assert v.get("secret", {}).get("secretName") != "proxy-secret", name
    # The pilot starts after the scheduler and after its job definition.
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-scheduler", "wait-for-job-definition"]


def job_definition(rendered: Rendered) -> dict[str, Any]:
    prepare = rendered.named("Job", f"{RELEASE}-prepare")
    (container,) = prepare["spec"]["template"]["spec"]["containers"]
    return json.loads(env_of(container)["PANDA_JOB_DEFINITION"])  # type: ignore[no-any-return]


def test_job_definition(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    definition = job_definition(rendered)
    assert list(definition) == [PANDA_ID]
    job = definition[PANDA_ID]
    assert job["PandaID"] == int(PANDA_ID)
    assert "secrets" not in job
    assert job["jobName"] == "user.test.$(rm -rf /) {{ .Values }}"
    if mode == "interactive":
        assert job["scheduler_ip"].startswith(f"tcp://{RELEASE}-scheduler.{NAMESPACE}.svc.")
        assert job["session_ip"]
    else:
        # A pilot bug runs the payload twice when scheduler_ip is set in batch mode.
        assert "scheduler_ip" not in job and "session_ip" not in job


def test_scheduler_reached_by_service_dns(rendered: Rendered) -> None:
    service = rendered.named("Service", f"{RELEASE}-scheduler")
    assert service["spec"]["type"] == "ClusterIP"
    host = f"{RELEASE}-scheduler.{NAMESPACE}.svc.cluster.local"
    for name, spec in rendered.pod_specs():
        for c in containers(spec):
            env = env_of(c)
            if c["name"] == "wait-for-scheduler":
                assert env["GATE_HOST"] == host, name
            if "DASK_SCHEDULER_ADDRESS" in env:
                assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://{host}:8786", name
            if c["name"] == "worker":
                assert c["args"][0] == f"tcp://{host}:8786"
    for name in (o["metadata"]["name"] for o in rendered.of_kind("Pod")):
        if "-worker-" in name or name.endswith(("-pilot", "-jupyterlab")):
            spec = rendered.named("Pod", name)["spec"]
            assert spec["initContainers"][0]["name"] == "wait-for-scheduler", name


def test_scheduler_probes(rendered: Rendered) -> None:
    (container,) = rendered.named("Pod", f"{RELEASE}-scheduler")["spec"]["containers"]
    assert container["command"] == ["dask", "scheduler"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "livenessProbe" not in container


def test_workers_resources_and_local_directory(rendered: Rendered) -> None:
    for pod in rendered.of_kind("Pod"):
        if component(pod) != "worker":
            continue
        (container,) = pod["spec"]["containers"]
        env = env_of(container)
        assert env["DASK_NTHREADS"]["resourceFieldRef"]["resource"] == "limits.cpu"
        assert env["DASK_MEMORY_LIMIT"]["resourceFieldRef"]["resource"] == "limits.memory"
        assert "--nthreads=$(DASK_NTHREADS)" in container["args"]
        assert "--memory-limit=$(DASK_MEMORY_LIMIT)" in container["args"]
        assert "--local-directory=/scratch" in container["args"]
        scratch = next(v for v in pod["spec"]["volumes"] if v["name"] == "scratch")
        assert "emptyDir" in scratch


def test_shared_volume_sub_path_per_job(rendered: Rendered) -> None:
    for name, spec in rendered.pod_specs():
        for c in containers(spec):
            for m in c.get("volumeMounts", []):
                if m["name"] == "shared" and not name.endswith(("-prepare", "-cleanup")):
                    assert m["subPath"].split("/")[-1] == PANDA_ID, (name, m)
                    assert m["mountPath"] == "/mnt/dask"


def test_hooks(rendered: Rendered) -> None:
    events = {}
    for job in rendered.of_kind("Job"):
        ann = job["metadata"]["annotations"]
        events[component(job)] = ann["helm.sh/hook"]
        policies = set(ann["helm.sh/hook-delete-policy"].split(","))
        assert {"before-hook-creation", "hook-succeeded", "hook-failed"} <= policies
        spec = job["spec"]
        assert spec["backoffLimit"] <= 1
        assert spec["activeDeadlineSeconds"] > 0
        assert "ttlSecondsAfterFinished" not in spec
        script = spec["template"]["spec"]["containers"][0]["args"][0]
        assert "*[!0-9]*" in script  # the strict path guard
    assert events == {"prepare": "pre-install", "cleanup": "pre-delete"}
    test_pod = rendered.named("Pod", f"{RELEASE}-test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_network_policies(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    policies = {component(p): p for p in rendered.of_kind("NetworkPolicy")}
    scheduler = policies["scheduler"]["spec"]
    (rule,) = scheduler["ingress"]
    (peer,) = rule["from"]
    exprs = {e["key"]: e["values"] for e in peer["podSelector"]["matchExpressions"]}
    assert exprs["app.kubernetes.io/instance"] == [RELEASE]
    assert set(exprs["app.kubernetes.io/component"]) == {"worker", "pilot", "jupyterlab", "test"}
    assert policies["pilot"]["spec"].get("ingress") is None
    if mode == "interactive":
        jupyter = policies["jupyterlab"]["spec"]
        for rule in jupyter.get("ingress", []):
            for peer in rule["from"]:
                assert peer, "an empty peer would allow everyone"


def test_jupyterlab_password_never_on_command_line(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    if mode != "interactive":
        with pytest.raises(KeyError):  # batch mode has no JupyterLab at all
            rendered.named("Pod", f"{RELEASE}-jupyterlab")
        return
    pod = rendered.named("Pod", f"{RELEASE}-jupyterlab")
    (container,) = pod["spec"]["containers"]
    env = env_of(container)
    assert env["JUPYTER_TOKEN_FILE"].startswith("/etc/dask-panda-session/")
    assert env["PANDA_WORKDIR"] == "/mnt/dask"
    assert env["DASK_SCHEDULER_ADDRESS"].startswith("tcp://")
    assert not any("token" in a.lower() or "password" in a.lower() for a in container["args"])
    secret_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "password")
    assert secret_volume["secret"]["secretName"] == f"{RELEASE}-secret"


def test_no_secret_in_rendered_output(rendered: Rendered) -> None:
    """With an existing Secret, no password or token appears anywhere (job secrets are dropped)."""
    assert SECRET_CANARY not in rendered.stdout
    assert not rendered.of_kind("Secret")
    for cm in rendered.of_kind("ConfigMap"):
        assert SECRET_CANARY not in json.dumps(cm)


def test_session_annotations_for_the_monitor(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    for pod in rendered.of_kind("Pod"):
        if component(pod) == "test":
            continue
        ann = pod["metadata"]["annotations"]
        assert ann["dask-panda-session/scheduler-address"].startswith("tcp://")
        assert int(ann["dask-panda-session/workers-wanted"]) >= 1
        assert ("dask-panda-session/jupyter-url" in ann) == (mode == "interactive")


def test_debug_secret_created_only_on_request(helm_bin: Path) -> None:
    values = job_values(
        "interactive", secrets={"existingSecret": "", "create": True, "jupyterPassword": "debugging1"}
    )
    rendered = render(helm_bin, [values], [VALUES_DIR / "example.yaml"])
    (secret,) = rendered.of_kind("Secret")
    assert secret["metadata"]["name"] == f"{RELEASE}-secret"
    assert "debugging1" not in rendered.stdout  # base64 in data, never plain


def test_chart_created_claim_is_removed_by_helm(helm_bin: Path) -> None:
    """A claim made by the chart exists before the prepare hook and has a post-delete stand-in."""
    values = job_values(
        "batch",
        sharedVolume={
            "existingClaim": "",
            "create": {"enabled": True, "volumeName": "pv-1", "size": "1Gi"},
            "mountPath": "/mnt/dask",
            "jobsDirectory": "",
        },
    )
    rendered = render(helm_bin, [values], [VALUES_DIR / "example.yaml"])
    claims = rendered.of_kind("PersistentVolumeClaim")
    hooks = sorted(c["metadata"]["annotations"]["helm.sh/hook"] for c in claims)
    assert hooks == ["post-delete", "pre-install"]
    assert {c["metadata"]["name"] for c in claims} == {f"{RELEASE}-shared"}
    pre = next(c for c in claims if c["metadata"]["annotations"]["helm.sh/hook"] == "pre-install")
    prepare = rendered.named("Job", f"{RELEASE}-prepare")
    assert int(pre["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        prepare["metadata"]["annotations"]["helm.sh/hook-weight"]
    )


def test_report_validated_count() -> None:
    """Runs last in this module: the matrix validated objects against both Kubernetes versions."""
    assert CHART.exists()
    if VALIDATED:
        assert set(VALIDATED) == set(KUBE_VERSIONS)
