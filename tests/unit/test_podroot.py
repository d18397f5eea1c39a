"""The smoke kubelet's pod root: a mount target under a mirrored symbolic link stays inside the
pod's root (the host filesystem is never written, whatever links the host has)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.smoke.podroot import inside

pytestmark = pytest.mark.unit


def test_links_are_followed_within_the_root(tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    os.makedirs(f"{root}/var")
    os.makedirs(f"{root}/etc")
    os.symlink("/run", f"{root}/var/run")  # absolute, as on hosts where /var/run -> /run
    os.symlink("../opt", f"{root}/etc/alt")  # relative
    os.symlink("../../../../../srv", f"{root}/up")  # climbs above /: stays at the root
    assert inside(root, "/var/run/secrets/x") == f"{root}/run/secrets/x"
    assert inside(root, "/etc/alt/y") == f"{root}/opt/y"
    assert inside(root, "/up/z") == f"{root}/srv/z"
    assert inside(root, "/mnt/dask") == f"{root}/mnt/dask"  # no link: as written


def test_a_link_loop_is_refused(tmp_path: Path) -> None:
    root = str(tmp_path)
    os.symlink("/b", f"{root}/a")
    os.symlink("/a", f"{root}/b")
    with pytest.raises(OSError, match="too many levels"):
        inside(root, "/a/c")
