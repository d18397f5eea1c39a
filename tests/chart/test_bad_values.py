"""Bad values are rejected by helm before anything is applied, each with a message naming the field.

Both Helm majors are checked: Helm 3 names schema fields as `a.b`, Helm 4 as `/a/b`; the chart's own
`fail` messages name them as `a.b`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import RELEASE, job_values, run_helm
from tests.conftest import CHART, VALUES_DIR


def with_value(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


BATCH = job_values("batch")
INTERACTIVE = job_values("interactive")

# (id, values, field that the message must name, release name)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("replicas-wrong-type", with_value(BATCH, "workers.replicas", "three"), "workers.replicas", RELEASE),
    ("replicas-negative", with_value(BATCH, "workers.replicas", -1), "workers.replicas", RELEASE),
    ("replicas-huge", with_value(BATCH, "workers.replicas", 10**9), "workers.replicas", RELEASE),
    ("replicas-over-queue-limit", with_value(BATCH, "workers.replicas", 500), "workers.replicas", RELEASE),
    ("unknown-mode", with_value(BATCH, "job.mode", "party"), "job.mode", RELEASE),
    ("pandaid-shell", with_value(BATCH, "job.pandaId", "12; rm -rf /"), "job.pandaId", RELEASE),
    ("pandaid-missing", with_value(BATCH, "job.pandaId", ""), "job.pandaId", RELEASE),
    ("definition-as-a-value", with_value(BATCH, "job.definition", {"PandaID": 1}), "definition", RELEASE),
    ("checksum-missing", with_value(BATCH, "job.definitionSha256", ""), "job.definitionSha256", RELEASE),
    ("checksum-malformed", with_value(BATCH, "job.definitionSha256", "abc"), "job.definitionSha256", RELEASE),
    ("attempt-negative", with_value(BATCH, "job.attempt", -1), "job.attempt", RELEASE),
    (
        "batch-without-secret",
        with_value(BATCH, "secrets.existingSecret", ""),
        "secrets.existingSecret",
        RELEASE,
    ),
    ("chart-made-secret", with_value(BATCH, "secrets.create", True), "create", RELEASE),
    (
        "no-ephemeral-storage-limit",
        # null deletes the chart default's key (Helm's merge)
        with_value(BATCH, "pilot.resources.limits", {"ephemeral-storage": None}),
        "ephemeral-storage",
        RELEASE,
    ),
    (
        "image-repository-malformed",
        with_value(BATCH, "images.dask.repository", "Bad Image!"),
        "images.dask.repository",
        RELEASE,
    ),
    ("image-tag-malformed", with_value(BATCH, "images.pilot.tag", "v1:latest"), "images.pilot.tag", RELEASE),
    (
        "image-digest-malformed",
        with_value(BATCH, "images.dask.digest", "sha256:xyz"),
        "images.dask.digest",
        RELEASE,
    ),
    (
        "subpath-dotdot",
        with_value(BATCH, "sharedVolume.jobsDirectory", "../etc"),
        "sharedVolume.jobsDirectory",
        RELEASE,
    ),
    (
        "subpath-inner-dotdot",
        with_value(BATCH, "sharedVolume.jobsDirectory", "jobs/../../x"),
        "sharedVolume.jobsDirectory",
        RELEASE,
    ),
    (
        "subpath-absolute",
        with_value(BATCH, "sharedVolume.jobsDirectory", "/etc"),
        "sharedVolume.jobsDirectory",
        RELEASE,
    ),
    ("release-name-too-long", BATCH, "release name", "dask-" + "1" * 40),
    ("missing-claim", with_value(BATCH, "sharedVolume.existingClaim", ""), "sharedVolume", RELEASE),
    ("unknown-key", with_value(BATCH, "workers.replica", 3), "replica", RELEASE),
    ("lifetime-zero", with_value(BATCH, "timeouts.lifetimeSeconds", 0), "timeouts.lifetimeSeconds", RELEASE),
    ("port-out-of-range", with_value(BATCH, "scheduler.port", 70000), "scheduler.port", RELEASE),
    (
        "interactive-without-secret",
        with_value(INTERACTIVE, "secrets.existingSecret", ""),
        "secrets.existingSecret",
        RELEASE,
    ),
    (
        "loadbalancer-open",
        with_value(
            with_value(INTERACTIVE, "jupyterlab.service.type", "LoadBalancer"),
            "jupyterlab.service.loadBalancerSourceRanges",
            [],
        ),
        "jupyterlab.service.loadBalancerSourceRanges",
        RELEASE,
    ),
    (
        "ingress-without-host",
        with_value(INTERACTIVE, "jupyterlab.ingress.enabled", True),
        "jupyterlab.ingress.host",
        RELEASE,
    ),
    (
        "ingress-route-shared-by-every-session",
        with_value(
            with_value(INTERACTIVE, "jupyterlab.ingress.enabled", True),
            "jupyterlab.ingress.host",
            "jupyter.example.org",
        ),
        "jupyterlab.ingress.path",
        RELEASE,
    ),
    (
        "egress-to-the-metadata-server",
        with_value(BATCH, "networkPolicy.egress.pilot", [{"cidr": "169.254.169.254/32"}]),
        "networkPolicy.egress.pilot",
        RELEASE,
    ),
    (
        "egress-cidr-malformed",
        with_value(BATCH, "networkPolicy.egress.allowed", [{"cidr": "everything"}]),
        "networkPolicy.egress.allowed",
        RELEASE,
    ),
    *[
        (
            f"reserved-{where}-{key}".replace("/", "-"),
            with_value(BATCH, where, {key: "x"}),
            key,
            RELEASE,
        )
        for where, key in [
            ("commonPodLabels", "app.kubernetes.io/instance"),
            ("commonPodLabels", "app.kubernetes.io/component"),
            ("scheduler.podLabels", "helm.sh/chart"),
            ("workers.podLabels", "dask-panda-session/pandaid"),
            ("pilot.podLabels", "app.kubernetes.io/name"),
            ("jupyterlab.podLabels", "app.kubernetes.io/instance"),
            ("commonPodAnnotations", "dask-panda-session/lifetime-seconds"),
            ("workers.podAnnotations", "dask-panda-session/lease-seconds"),
            ("tests.podAnnotations", "helm.sh/hook"),
            ("hooks.podAnnotations", "helm.sh/hook-delete-policy"),
            ("hooks.podLabels", "app.kubernetes.io/managed-by"),
        ]
    ],
    (
        "idle-shorter-than-lease",
        with_value(INTERACTIVE, "timeouts.schedulerIdleSeconds", 60),
        "timeouts.schedulerIdleSeconds",
        RELEASE,
    ),
    (
        "memory-quantity-malformed",
        with_value(
            BATCH,
            "workers.resources",
            {
                "requests": {"cpu": "1", "memory": "lots", "ephemeral-storage": "1Gi"},
                "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
            },
        ),
        "workers.resources",
        RELEASE,
    ),
    (
        "proxy-secret-name-hostile",
        with_value(BATCH, "pilot.proxy.secretName", "proxy;$(id)"),
        "pilot.proxy.secretName",
        RELEASE,
    ),
]


def names_field(message: str, field: str) -> bool:
    return field in message or "/" + field.replace(".", "/") in message


@pytest.mark.parametrize(("values", "field", "release"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_values_rejected(helm_bin: Path, values: dict[str, Any], field: str, release: str) -> None:
    proc = run_helm(
        helm_bin,
        ["template", release, str(CHART), "--namespace", "panda-jobs"],
        values=[values],
        files=[VALUES_DIR / "GOOGLE_DASK.yaml"],
    )
    assert proc.returncode != 0, f"accepted bad values: {field}"
    message = proc.stderr
    assert names_field(message, field), message
    assert "apiVersion" not in proc.stdout  # nothing rendered, so nothing could be applied


def test_cases_cover_at_least_twelve_kinds() -> None:
    assert len(CASES) >= 12
    assert len({c[0] for c in CASES}) == len(CASES)


def test_non_reserved_keys_and_the_release_in_the_route_are_accepted(helm_bin: Path) -> None:
    """The reserved-key and route rules refuse only what they must: a site's own label, an
    annotation of another tool and a per-release ingress path still render."""
    values = with_value(INTERACTIVE, "commonPodLabels", {"example.org/team": "atlas", "tier": "x"})
    values = with_value(
        values, "workers.podAnnotations", {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    )
    values = with_value(
        values, "jupyterlab.ingress", {"enabled": True, "host": "j.example.org", "path": f"/{RELEASE}/"}
    )
    proc = run_helm(
        helm_bin, ["template", RELEASE, str(CHART)], values=[values], files=[VALUES_DIR / "GOOGLE_DASK.yaml"]
    )
    assert proc.returncode == 0, proc.stderr
    assert "example.org/team" in proc.stdout and f'path: "/{RELEASE}/"' in proc.stdout


def test_good_values_accepted(helm_bin: Path) -> None:
    """The negative cases are variations of values that pass: prove the base passes."""
    for values in (BATCH, INTERACTIVE):
        proc = run_helm(
            helm_bin,
            ["template", RELEASE, str(CHART)],
            values=[values],
            files=[VALUES_DIR / "GOOGLE_DASK.yaml"],
        )
        assert proc.returncode == 0, proc.stderr
