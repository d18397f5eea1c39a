"""The smoke kubelet's own rules, checked against what the real kubelet does.

Why: every other smoke test trusts this harness to build a container's env like the kubelet.
A wrong rounding or expansion rule would let a broken chart pass, so the rules are pinned here.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.smoke.kubelet import KubeletError, expand, parse_quantity, resolve_env


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
        ("1536Mi", Fraction(1536 * 2**20)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("128974848", Fraction(128974848)),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_a_bad_quantity_is_an_error() -> None:
    with pytest.raises(KubeletError):
        parse_quantity("1.5 cores")


def test_expansion_like_kubernetes() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$$(A)", env) == "$(A)"  # escaped
    assert expand("$(MISSING)", env) == "$(MISSING)"  # unknown references stay
    assert expand("$A ${B} $", env) == "$A ${B} $"  # only $(...) is a reference
    assert expand("$(A", env) == "$(A"


def _pod(limits: dict[str, str], requests: dict[str, str] | None = None) -> dict[str, object]:
    container = {
        "name": "worker",
        "resources": {"limits": limits, "requests": requests or limits},
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "ADDR", "value": "tcp://$(POD).$(NS):8786"},
        ],
    }
    return {"metadata": {"name": "p-worker-0"}, "spec": {"containers": [container]}}


def test_env_resolution_rounds_up_and_expands_in_order() -> None:
    pod = _pod({"cpu": "1500m", "memory": "1536Mi"})
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    env = resolve_env(pod, container, "ns1", {"s": {"k": "v"}})
    assert env["POD"] == "p-worker-0"
    assert env["NS"] == "ns1"
    assert env["IP"] == "127.0.0.1"
    assert env["CPU"] == "2"  # ceil(1.5)
    assert env["CPU_M"] == "1500"
    assert env["MEM"] == str(1536 * 2**20)
    assert env["MEM_MI"] == "1536"
    assert env["PW"] == "v"
    assert env["ADDR"] == "tcp://p-worker-0.ns1:8786"


def test_a_missing_secret_key_fails_the_container() -> None:
    pod = _pod({"cpu": "1", "memory": "1Gi"})
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    with pytest.raises(KubeletError, match="does not exist"):
        resolve_env(pod, container, "ns1", {"s": {}})
