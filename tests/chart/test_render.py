"""The render matrix: every object validated strictly against Kubernetes, and the chart's properties
asserted on every render (batch/interactive x each queue values file x Helm 3/4)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from orchestrator.job import parse_job
from orchestrator.session.services import DASHBOARD_PROXY_NAME, proxied_dashboard_url
from orchestrator.values import load_queue, render_values
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
from tests.chart.jobs import job_with_input_files
from tests.conftest import CHART, VALUES_DIR

# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the one we build and test on.
KUBE_VERSIONS = ("1.30.0", "1.35.0")
PILOT_ENV_CONTRACT = {
    "PILOT_WORKFLOW",
    "PILOT_QUEUE",
    "PILOT_LIFETIME",
    "PILOT_LEASETIME",
    "PILOT_WORKDIR",
    "PILOT_RUN_DIR",
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
JOB_DIR = f"{PANDA_ID}-2"  # <PandaID>-<attempt> of job_values()
PILOT_RUN_DIR = "/home/pilot/run"

VALIDATED: Counter[str] = Counter()


@pytest.fixture(
    scope="module", params=[(q, m) for q in QUEUE_FILES for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def rendered(helm_bin: Path, case: tuple[str, str]) -> Rendered:
    queue_file, mode = case
    return render(helm_bin, [job_values(mode)], [VALUES_DIR / queue_file])


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
    queue_file, _ = case
    egress = yaml.safe_load((VALUES_DIR / queue_file).read_text()).get("networkPolicy", {}).get("egress", {})
    policies = {o["metadata"]["name"] for o in rendered.of_kind("NetworkPolicy")}
    want = {f"{RELEASE}-{c}" for c in ("scheduler", "worker", "pilot", "egress")}
    if egress.get("pilot"):
        want.add(f"{RELEASE}-pilot-egress")
    if mode == "interactive":
        want.add(f"{RELEASE}-jupyterlab")
        if egress.get("jupyterlab"):
            want.add(f"{RELEASE}-jupyterlab-egress")
    assert policies == want


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
    release_wide = f"{RELEASE}-egress"  # the egress policy covers every pod of its release
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
        if name == release_wide:
            own = [p for p in all_pods if p["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE]
            assert len(matched) == len(own), name
        else:
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
            wanted = {"cpu", "memory", "ephemeral-storage"}
            assert wanted <= set(res["requests"]) and wanted <= set(res["limits"]), (name, c["name"])


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
    # PILOT_WORKDIR: the shared data directory (the stager moves inputs there for JupyterLab);
    # --workdir and cwd: the pilot's private directory, where its pandaJobData.out is
    assert env["PILOT_WORKDIR"] == "/mnt/dask"
    assert env["PILOT_RUN_DIR"] == container["workingDir"] == PILOT_RUN_DIR
    assert args_after(container["args"], "--workdir") == "$(PILOT_RUN_DIR)"
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
    # The pilot starts after the scheduler and after its job definition, and where the cloud
    # assigns JupyterLab's address (GOOGLE_DASK's LoadBalancer) after its address gate.
    gates = ["wait-for-scheduler", "wait-for-job-definition"]
    if address_gate(case):
        gates.append("wait-for-address")
    assert [c["name"] for c in spec["initContainers"]] == gates


def address_gate(case: tuple[str, str]) -> bool:
    """Does this render have the pilot's address gate (an interactive LoadBalancer without a
    reserved IP: of the queue files, GOOGLE_DASK's)?"""
    queue_file, mode = case
    return mode == "interactive" and queue_file == "GOOGLE_DASK.yaml"


def args_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_pilot_lifetime_leaves_room_for_pulls_gates_and_its_end(
    rendered: Rendered, case: tuple[str, str]
) -> None:
    queue_file, _ = case
    gates = 3 if address_gate(case) else 2
    spec = rendered.named("Pod", f"{RELEASE}-pilot")["spec"]
    (container,) = spec["containers"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())["timeouts"]
    values.update(yaml.safe_load((VALUES_DIR / queue_file).read_text()).get("timeouts", {}))
    lifetime = int(env_of(container)["PILOT_LIFETIME"])
    reserve = values["pullSeconds"] + gates * values["gateSeconds"] + values["pilotEndSeconds"]
    assert lifetime == max(values["lifetimeSeconds"] - reserve, values["lifetimeSeconds"] // 2)
    assert lifetime < spec["activeDeadlineSeconds"]
    assert spec["terminationGracePeriodSeconds"] == values["pilotEndSeconds"] >= 300


def test_job_definition_is_nowhere_in_the_manifests(rendered: Rendered, case: tuple[str, str]) -> None:
    """The definition lives in the per-job Secret; the manifests carry its checksum and the Secret's name."""
    _, mode = case
    assert "user.test.$(rm -rf /)" not in rendered.stdout
    assert "PANDA_JOB_DEFINITION" not in rendered.stdout
    checksum = job_values(mode)["job"]["definitionSha256"]
    prepare = rendered.named("Job", f"{RELEASE}-prepare")["spec"]["template"]["spec"]
    (hook,) = prepare["containers"]
    assert env_of(hook)["JOB_DEFINITION_SHA256"] == checksum
    (volume,) = [v for v in prepare["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == f"{RELEASE}-secret"
    assert volume["secret"]["items"] == [{"key": "pandaJobData.out", "path": "pandaJobData.out"}]
    gate = rendered.named("Pod", f"{RELEASE}-pilot")["spec"]["initContainers"][1]
    assert env_of(gate)["JOB_DEFINITION_SHA256"] == checksum


def test_who_mounts_what(rendered: Rendered) -> None:
    """The chart README's table: the session shares <job dir>/data only; <job dir>/pilot is the
    pilot's (its gate reads it read-only); prepare mounts the job's own directory, cleanup the jobs
    directory; the definition's Secret key reaches prepare only."""
    seen: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    (cleanup,) = rendered.named("Job", f"{RELEASE}-cleanup")["spec"]["template"]["spec"]["containers"]
    jobs_directory = cleanup["volumeMounts"][0].get("subPath", "")
    prefix = f"{jobs_directory}/" if jobs_directory else ""
    for name, spec in rendered.pod_specs():
        who = name.removeprefix(f"{RELEASE}-")
        who = "worker" if who.startswith("worker-") else who
        for c in containers(spec):
            seen[(who, c["name"])] = sorted(
                (m["mountPath"], m.get("subPath", "").removeprefix(prefix), bool(m.get("readOnly")))
                for m in c.get("volumeMounts", [])
                if m["name"] == "shared"
            )
        for v in spec.get("volumes", []):
            items = v.get("secret", {}).get("items", [])
            if any(i["key"] == "pandaJobData.out" for i in items):
                assert who == "prepare", who
    data = ("/mnt/dask", f"{JOB_DIR}/data", False)
    assert seen[("prepare", "prepare")] == [("/job", JOB_DIR, False)]
    assert seen[("cleanup", "cleanup")] == [("/shared", jobs_directory.removeprefix(prefix), False)]
    assert seen[("pilot", "pilot")] == sorted([data, (PILOT_RUN_DIR, f"{JOB_DIR}/pilot", False)])
    assert seen[("pilot", "wait-for-job-definition")] == [(PILOT_RUN_DIR, f"{JOB_DIR}/pilot", True)]
    for (who, container), mounts in seen.items():
        if who in {"prepare", "cleanup", "pilot"}:
            continue
        assert mounts in ([], [data]), (who, container, mounts)
        if container in {"worker", "scheduler", "jupyterlab"}:
            assert mounts == [data], (who, container)


def test_two_attempts_of_one_job_never_share_a_directory(helm_bin: Path) -> None:
    paths = []
    for attempt in (1, 2):
        values = job_values("batch")
        values["job"]["attempt"] = attempt
        rendered = render(
            helm_bin, [values], [VALUES_DIR / "GOOGLE_DASK.yaml"], release=f"dask-{PANDA_ID}-a{attempt}"
        )
        (hook,) = rendered.named("Job", f"dask-{PANDA_ID}-a{attempt}-prepare")["spec"]["template"]["spec"][
            "containers"
        ]
        paths.append(hook["volumeMounts"][0]["subPath"])
    assert paths[0] != paths[1]
    assert not paths[0].startswith(paths[1]) and not paths[1].startswith(paths[0])


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
                assert env["DASK_SCHEDULER_ADDRESS"] == f"tls://{host}:8786", name
            if c["name"] == "worker":
                assert c["args"][0] == f"tls://{host}:8786"
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
                    assert m["subPath"].split("/")[-2] == JOB_DIR, (name, m)
                    assert m["subPath"].split("/")[-1] in {"data", "pilot"}, (name, m)


def test_hooks(rendered: Rendered) -> None:
    events = {}
    for job in rendered.of_kind("Job"):
        ann = job["metadata"]["annotations"]
        events[component(job)] = ann["helm.sh/hook"]
        policies = set(ann["helm.sh/hook-delete-policy"].split(","))
        assert {"before-hook-creation", "hook-succeeded", "hook-failed"} <= policies
        spec = job["spec"]
        assert spec["backoffLimit"] == (0 if component(job) == "prepare" else 1)
        assert spec["activeDeadlineSeconds"] > 0
        assert "ttlSecondsAfterFinished" not in spec
        (container,) = spec["template"]["spec"]["containers"]
        assert "*[!0-9-]*" in container["args"][0]  # the strict path guard
        assert env_of(container)["JOB_DIR_NAME"] == JOB_DIR
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
    # the password is read from the Secret's file at start and kept only as a hash; never a token
    assert env["DPS_JUPYTER_PASSWORD_FILE"].startswith("/etc/dask-panda-session/")
    assert not any(name.startswith("JUPYTER_TOKEN") for name in env)
    # the dashboard's proxy entry is the name the orchestrator reports the dashboard under
    assert env["DPS_DASHBOARD_PROXY_NAME"] == DASHBOARD_PROXY_NAME
    assert env["DPS_DASHBOARD_TARGET"] == f"{RELEASE}-scheduler.{NAMESPACE}.svc.cluster.local:8787"
    assert json.loads(env["DPS_DASK_LABEXTENSION_SETTINGS"])["defaultURL"] == f"/{DASHBOARD_PROXY_NAME}"
    assert env["PANDA_WORKDIR"] == "/mnt/dask"
    assert env["DASK_SCHEDULER_ADDRESS"].startswith("tls://")
    assert not any("token" in a.lower() or "password" in a.lower() for a in container["args"])
    secret_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "password")
    assert secret_volume["secret"]["secretName"] == f"{RELEASE}-secret"


def test_the_chart_never_makes_a_secret(rendered: Rendered) -> None:
    """Passwords and the definition live in the per-job Secret made before the install, never in
    the release (whose record Helm keeps, values included)."""
    assert not rendered.of_kind("Secret")
    assert not rendered.of_kind("ConfigMap")


def test_session_annotations_for_the_monitor(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    for pod in rendered.of_kind("Pod"):
        if component(pod) == "test":
            continue
        ann = pod["metadata"]["annotations"]
        assert ann["dask-panda-session/scheduler-address"].startswith("tls://")
        assert int(ann["dask-panda-session/workers-wanted"]) >= 1
        assert ("dask-panda-session/jupyter-url" in ann) == (mode == "interactive")


@pytest.mark.parametrize("files", [1000])
def test_a_job_with_1000_input_files_renders_small(helm_bin: Path, files: int) -> None:
    """The definition of a 1,000-file job (over 128 KiB, exec's limit for one env string or argument)
    never reaches the manifests: every env value and argument stays far below that limit."""
    params = job_with_input_files(files, pandaid=int(PANDA_ID))
    definition = json.dumps({PANDA_ID: params}, ensure_ascii=False).encode()
    assert len(definition) > 128 * 1024
    values = job_values("interactive")
    values["job"]["definitionSha256"] = hashlib.sha256(definition).hexdigest()
    rendered = render(helm_bin, [values], [VALUES_DIR / "GOOGLE_DASK.yaml"])
    largest = 0
    for name, spec in rendered.pod_specs():
        for c in containers(spec):
            strings = [*c.get("command", []), *c.get("args", [])]
            strings += [str(e.get("value", "")) for e in c.get("env", [])]
            for text in strings:
                largest = max(largest, len(text.encode()))
                assert len(text.encode()) < 16 * 1024, (name, c["name"], text[:80])
    assert 0 < largest < 16 * 1024
    assert "EVNT.153937._000999.pool.root.1" not in rendered.stdout
    assert values["job"]["definitionSha256"] in rendered.stdout
    assert len(rendered.stdout) < 256 * 1024


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


@pytest.mark.parametrize(("lifetime", "pilot"), [(30, 15), (600, 300), (86400, 84300)])
def test_a_short_session_still_gives_its_pilot_a_lifetime(helm_bin: Path, lifetime: int, pilot: int) -> None:
    timeouts = {"lifetimeSeconds": lifetime, "startupSeconds": 10, "leaseSeconds": 30}
    rendered = render(helm_bin, [job_values("batch", timeouts=timeouts)], [VALUES_DIR / "GOOGLE_DASK.yaml"])
    (container,) = rendered.named("Pod", f"{RELEASE}-pilot")["spec"]["containers"]
    assert env_of(container)["PILOT_LIFETIME"] == str(pilot)


@pytest.mark.parametrize(
    "jupyterlab",
    [
        {},
        {"service": {"type": "LoadBalancer", "loadBalancerIP": "10.9.8.7", "port": 8080,
                     "loadBalancerSourceRanges": ["10.0.0.0/8"]}},
        {"ingress": {"enabled": True, "host": "jupyter.example.org", "path": f"/{RELEASE}/", "tlsSecretName": "tls"}},
    ],
    ids=["service-dns", "loadbalancer-ip", "ingress-tls"],
)  # fmt: skip
def test_the_definitions_addresses_are_the_charts(helm_bin: Path, jupyterlab: dict[str, Any]) -> None:
    """The orchestrator writes scheduler_ip/session_ip into the definition in Python; the chart
    renders the same addresses into the pods' annotations. They must never drift apart."""
    queue = load_queue("GOOGLE_DASK")
    params = {**job_with_input_files(1, pandaid=int(PANDA_ID)), "daskMode": "interactive"}
    params["secrets"] = {"password": "a-long-enough-password"}
    rendered_values = render_values(
        parse_job(params, queue_limits=queue.limits),
        queue,
        namespace=NAMESPACE,
        overrides={"jupyterlab": jupyterlab},
    )
    definition = json.loads(rendered_values.secret.reveal()["pandaJobData.out"])[PANDA_ID]
    rendered = render(helm_bin, [dict(rendered_values.values)], [VALUES_DIR / "GOOGLE_DASK.yaml"])
    annotations = rendered.named("Pod", f"{RELEASE}-scheduler")["metadata"]["annotations"]
    assert definition["scheduler_ip"] == annotations["dask-panda-session/scheduler-address"]
    assert definition["session_ip"] == annotations["dask-panda-session/jupyter-url"]
    # the dashboard the orchestrator reports (status, Harvester) is where the chart's JupyterLab
    # serves it, and where dask-labextension starts
    reported = proxied_dashboard_url(
        annotations["dask-panda-session/jupyter-url"], annotations["dask-panda-session/dashboard-url"]
    )
    assert reported is not None
    (lab,) = [c for c in rendered.named("Pod", f"{RELEASE}-jupyterlab")["spec"]["containers"] if c["name"] == "jupyterlab"]
    preset = json.loads(env_of(lab)["DPS_DASK_LABEXTENSION_SETTINGS"])["defaultURL"]
    assert urlsplit(reported).path == f"{preset}/status"
    base_url = next((a.split("=", 1)[1] for a in lab["args"] if a.startswith("--ServerApp.base_url=")), "/")
    assert preset == f"{base_url.rstrip('/')}/{env_of(lab)['DPS_DASHBOARD_PROXY_NAME']}"
