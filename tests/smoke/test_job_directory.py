"""The job's directory on the shared volume, run for real with the chart's rendered commands.

Why: kwok never execs a container, so only here can a test see what the kernel does with the
rendered hooks: a definition carried in one env string over 128 KiB fails exec (E2BIG). Here a
1,000-file job's definition goes through the orchestrator's data path into the per-job Secret, and
the rendered prepare hook and the pilot's definition gate run on it as real processes. Then the
things a payload can leave behind (a symlink out of its directory, a `chmod 0500` sub-directory)
are planted as the session's user, and the rendered cleanup hook must neither follow them nor be
blocked by them, and must say so with its exit status when it cannot remove the directory.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.smoke.conftest import (
    SMOKE_VENV,
    JobRelease,
    job_release,
    make_kubelet,
    new_panda_id,
    new_ports,
    render,
)
from tests.smoke.kubelet import Kubelet, PodRun

EXEC_ARG_LIMIT = 128 * 1024  # MAX_ARG_STRLEN: the kernel's limit for one argv or env string


@dataclass
class Release:
    kubelet: Kubelet
    release: str
    job: JobRelease
    job_dir: Path

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"

    def log(self, run: PodRun) -> str:
        return "".join(c.log.read_text(errors="replace") for c in run.runs)


@pytest.fixture
def make_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (SMOKE_VENV / "bin" / "dask").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    made: list[Kubelet] = []

    def make(input_files: int = 2, checksum: str | None = None) -> Release:
        panda_id = new_panda_id()
        release = f"dask-{panda_id}"
        ports = new_ports()
        job = job_release(tmp_path_factory, panda_id, "batch", ports, input_files=input_files)
        extra = {"job.mode": "batch", "workers.replicas": "1"}
        if checksum is not None:
            extra["job.definitionSha256"] = checksum
        documents = render(release, panda_id, ports, extra, values_files=[job.values_file])
        secrets = {job.secret_name: job.secret, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}}
        kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents, secrets)
        made.append(kubelet)
        (claim,) = {
            v["persistentVolumeClaim"]["claimName"]
            for d in documents
            if d.get("kind") == "Pod"
            for v in d["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        return Release(kubelet, release, job, kubelet.claims / claim / job.job_dir)

    yield make
    for kubelet in made:
        kubelet.shutdown()


def test_this_machine_refuses_an_env_string_over_128_kib() -> None:
    """The limit the old design hit is real here, so the tests below would have seen it."""
    with pytest.raises(OSError, match="Argument list too long") as err:
        subprocess.run(["true"], env={"JOB": "x" * EXEC_ARG_LIMIT}, check=False)
    assert err.value.errno == errno.E2BIG


def test_a_1000_file_job_through_the_prepare_hook_and_the_pilots_gate(make_release: object) -> None:
    r: Release = make_release(input_files=1000)  # type: ignore[operator]
    assert len(r.job.definition) > EXEC_ARG_LIMIT
    prepare = r.kubelet.run_to_completion(r.name("prepare"), timeout=60)
    assert prepare.phase == "Succeeded", f"{prepare.error}\n{r.log(prepare)}"
    placed = r.job_dir / "pilot" / "pandaJobData.out"
    assert placed.read_bytes() == r.job.definition  # byte for byte the Secret's key
    assert stat.S_IMODE(placed.parent.stat().st_mode) & 0o777 == 0o700
    assert sorted(p.name for p in r.job_dir.iterdir()) == ["data", "pilot"]

    r.kubelet.start(r.name("scheduler"))
    pilot = r.kubelet.start(r.name("pilot"), main=False)
    r.kubelet.wait_for(lambda: pilot.phase in {"InitDone", "Failed"}, 120, "the pilot's gates")
    assert pilot.phase == "InitDone", f"{pilot.error}\n{r.log(pilot)}"
    assert "is in place, sha256" in r.log(pilot)


def test_the_pilots_gate_refuses_a_changed_definition(make_release: object) -> None:
    r: Release = make_release()  # type: ignore[operator]
    assert r.kubelet.run_to_completion(r.name("prepare"), timeout=60).phase == "Succeeded"
    placed = r.job_dir / "pilot" / "pandaJobData.out"
    placed.write_bytes(placed.read_bytes().replace(b'"PandaID":', b'"PandaID" :', 1))
    r.kubelet.start(r.name("scheduler"))
    pilot = r.kubelet.start(r.name("pilot"), main=False)
    r.kubelet.wait_for(lambda: pilot.phase in {"InitDone", "Failed"}, 120, "the pilot's gates")
    assert pilot.phase == "Failed"
    assert "refusing to start the pilot" in r.log(pilot)


def test_prepare_refuses_a_definition_whose_checksum_differs(make_release: object) -> None:
    r: Release = make_release(checksum="0" * 64)  # type: ignore[operator]
    prepare = r.kubelet.run_to_completion(r.name("prepare"), timeout=60)
    assert prepare.phase == "Failed"
    assert "job.definitionSha256" in r.log(prepare)
    assert not (r.job_dir / "pilot").exists()


def test_prepare_refuses_a_non_empty_directory_and_follows_no_planted_link(
    make_release: object, tmp_path: Path
) -> None:
    r: Release = make_release()  # type: ignore[operator]
    # the cleanup hook on a job that has no directory yet: exits 0, and makes the share appear
    nothing = r.kubelet.run_to_completion(r.name("cleanup"), timeout=60)
    assert nothing.phase == "Succeeded" and "nothing to remove" in r.log(nothing)
    elsewhere = r.job_dir.parent / "another-job"
    elsewhere.mkdir(mode=0o777)
    r.job_dir.mkdir(parents=True)
    (r.job_dir / "pilot").symlink_to(elsewhere)  # a payload's leftover, aimed at another job
    prepare = r.kubelet.run_to_completion(r.name("prepare"), timeout=60)
    assert prepare.phase == "Failed"
    assert "is not empty" in r.log(prepare)
    assert list(elsewhere.iterdir()) == []  # nothing written through the link


def _plant(r: Release, script: str) -> None:
    """Run a shell script as the session's user in a worker container (it sees /mnt/dask only)."""
    done = r.kubelet.exec(r.name("worker-0"), "worker", ["/bin/sh", "-c", script])
    assert done.returncode == 0, done.stdout


def test_cleanup_follows_no_symlink_and_beats_a_read_only_directory(make_release: object) -> None:
    r: Release = make_release()  # type: ignore[operator]
    assert r.kubelet.run_to_completion(r.name("prepare"), timeout=60).phase == "Succeeded"
    # another job's directory next to ours, read-only to its owner (the session's uid)
    other = r.job_dir.parent / "7000000001-0"
    other.mkdir()
    (other / "precious").write_text("keep me")
    if os.geteuid() == 0:
        context = r.kubelet.pod(r.name("worker-0"))["spec"]["securityContext"]
        uid, gid = context["runAsUser"], context["runAsGroup"]
        os.chown(other, uid, gid)
        os.chown(other / "precious", uid, gid)
    other.chmod(0o500)
    _plant(
        r,
        "set -e; cd /mnt/dask\n"
        "ln -s /shared/7000000001-0 escape-absolute\n"  # the path as the cleanup hook sees it
        "ln -s ../../7000000001-0 escape-relative\n"
        "mkdir -p locked/deeper && echo data > locked/deeper/file\n"
        "ln -s /shared/7000000001-0 locked/deeper/escape\n"
        "chmod 0500 locked/deeper locked\n",
    )
    assert stat.S_IMODE((r.job_dir / "data" / "locked").stat().st_mode) & 0o777 == 0o500
    cleanup = r.kubelet.run_to_completion(r.name("cleanup"), timeout=60)
    assert cleanup.phase == "Succeeded", f"{cleanup.error}\n{r.log(cleanup)}"
    assert not r.job_dir.exists()
    # the links were removed, never followed: the other job's directory is as it was
    assert stat.S_IMODE(other.stat().st_mode) & 0o777 == 0o500
    assert (other / "precious").read_text() == "keep me"


def test_cleanup_reports_what_it_cannot_remove(make_release: object) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a file the session's uid cannot remove (CI runs as root)")
    r: Release = make_release()  # type: ignore[operator]
    assert r.kubelet.run_to_completion(r.name("prepare"), timeout=60).phase == "Succeeded"
    stuck = r.job_dir / "data" / "root-owned"
    stuck.mkdir()
    (stuck / "file").write_text("x")
    stuck.chmod(0o755)  # owned by root: the hook's uid can neither chmod nor empty it
    try:
        cleanup = r.kubelet.run_to_completion(r.name("cleanup"), timeout=60)
        assert cleanup.phase == "Failed"
        assert "FAILED to remove" in r.log(cleanup)
    finally:
        subprocess.run(["rm", "-rf", "--", str(r.job_dir)], check=True)
