"""scripts/demo.sh's choice of cluster: its own local cluster whatever KUBECONFIG says.

Why: the cluster README's recipe, `eval "$(scripts/test-cluster.sh env)"`, points KUBECONFIG at
the local cluster; the demo then took it for a site's configured cluster, skipped the namespace
set-up and failed on a missing namespace. These tests source the script (its `main` does not run
when sourced) and drive `choose_cluster` with a stand-in `kubectl` that answers or not, so no
cluster is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

DEMO = ROOT / "scripts" / "demo.sh"


def choose(tmp_path: Path, kubeconfig: str | None, *, answers: bool) -> str:
    """`choose_cluster` with DPS_CLUSTER_STATE under tmp_path and a kubectl that answers or not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!/bin/sh\nexit {0 if answers else 1}\n")
    kubectl.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "DPS_CLUSTER_STATE": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    result = subprocess.run(
        # $0 is not the script: sourced, its main must not run
        ["bash", "-c", 'source "$1" && choose_cluster', "test_demo", str(DEMO)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def own_kubeconfig(tmp_path: Path) -> Path:
    """What `scripts/test-cluster.sh env` exports for the test's state directory."""
    return tmp_path / "state" / "kubeconfig"


def test_the_cluster_readmes_recipe_is_the_local_cluster(tmp_path: Path) -> None:
    """KUBECONFIG exactly as `eval "$(scripts/test-cluster.sh env)"` sets it, and the API answers."""
    env = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-cluster.sh"), "env"],
        env={**os.environ, "DPS_CLUSTER_STATE": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = subprocess.run(
        ["bash", "-c", f'{env}\nprintf "%s" "$KUBECONFIG"'], capture_output=True, text=True, check=True
    ).stdout
    assert Path(exported) == own_kubeconfig(tmp_path)
    assert choose(tmp_path, exported, answers=True) == "local"


def test_the_local_kubeconfig_however_spelled_is_the_local_cluster(tmp_path: Path) -> None:
    own = own_kubeconfig(tmp_path)
    own.parent.mkdir()
    own.write_text("apiVersion: v1\nkind: Config\n")
    link = tmp_path / "link"
    link.symlink_to(own.parent)
    copy = tmp_path / "copy.yaml"
    shutil.copy(own, copy)
    for spelling in (f"{own.parent}/./kubeconfig", "state/kubeconfig", f"{link}/kubeconfig", str(copy)):
        assert choose(tmp_path, spelling, answers=True) == "local", spelling
    # one of several files, as kubectl accepts them
    assert choose(tmp_path, f"{tmp_path / 'other.yaml'}:{own}", answers=True) == "local"


def test_another_kubeconfig_that_answers_is_the_configured_cluster(tmp_path: Path) -> None:
    own = own_kubeconfig(tmp_path)
    own.parent.mkdir()
    own.write_text("apiVersion: v1\nkind: Config\n")
    site = tmp_path / "site.yaml"
    site.write_text("apiVersion: v1\nkind: Config\ncurrent-context: site\n")
    assert choose(tmp_path, str(site), answers=True) == "configured"


def test_no_answer_or_no_kubeconfig_is_the_local_cluster(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("apiVersion: v1\nkind: Config\ncurrent-context: site\n")
    assert choose(tmp_path, str(site), answers=False) == "local"
    assert choose(tmp_path, None, answers=True) == "local"
    assert choose(tmp_path, "", answers=True) == "local"
