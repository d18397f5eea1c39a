"""Enter a container's filesystem view, then exec its command: the last step of the smoke kubelet.

Run as `unshare --mount --propagation private python podroot.py SPEC.json` (see kubelet.py).

Why this exists: the chart's commands use the container paths of their volumeMounts
(`--local-directory=/scratch`, `DPS_JUPYTER_PASSWORD_FILE=/etc/dask-panda-session/jupyter-password`,
`/mnt/dask`, ...). To run those commands unchanged on this machine, each container gets a private
root: a tmpfs that mirrors the host's tree through bind mounts, plus the pod's volumes bound at
their mountPaths, a private /tmp and an /etc/hosts that resolves the release's Service names to
127.0.0.1 (kube-dns's job). Nothing of it is visible outside the mount namespace, and the host
filesystem is never written: every new directory lives in the tmpfs.

Standard library only: it runs before the container's environment exists.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import PurePosixPath

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); raises OSError with the target named, so a failed sandbox is easy to read."""
    result = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} -> {target}: {os.strerror(errno)}")


def _ancestors(path: str) -> list[str]:
    parts = PurePosixPath(path).parents
    return [str(p) for p in parts if str(p) != "/"]


def _mirror(real_dir: str, root: str, targets: set[str], shadow: set[str], traversable: set[str]) -> None:
    """Recreate real_dir under root: bind what is not touched, descend into what is."""
    for entry in sorted(os.scandir(real_dir), key=lambda e: e.name):
        path = os.path.join(real_dir, entry.name)
        new = root + path
        if path in targets:
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(path), new)
        elif path in shadow and entry.is_dir(follow_symlinks=False):
            mode = os.stat(path).st_mode & 0o7777
            if path in traversable:
                mode |= 0o711
            os.mkdir(new)
            os.chmod(new, mode)
            _mirror(path, root, targets, shadow, traversable)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(new)
            _mount(path, new, None, MS_BIND | MS_REC)
        else:
            try:
                with open(new, "w"):
                    pass
                _mount(path, new, None, MS_BIND)
            except OSError:
                # sockets, fifos or files that vanished: not needed by any container
                continue


def inside(root: str, path: str, _depth: int = 0) -> str:
    """`path` as the container will see it after chroot(root), as a host path under root: each
    symbolic link met on the way (the mirror copies the host's, e.g. /var/run -> /run) is
    followed within root, never out of it, so the mount's directories are made in the tmpfs and
    the host filesystem is not written. A missing component ends the walk (it will be made)."""
    if _depth > 40:
        raise OSError(f"too many levels of symbolic links under {root} for {path}")
    current = root
    parts = [p for p in PurePosixPath(path).parts if p != "/"]
    for index, part in enumerate(parts):
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            link = os.readlink(candidate)
            base = link if link.startswith("/") else os.path.join(current[len(root) :] or "/", link)
            rest = "/".join(parts[index + 1 :])
            return inside(root, os.path.normpath(os.path.join(base, rest)), _depth + 1)
        current = candidate
    return current


def main(spec_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    root: str = spec["root"]
    mounts: list[dict[str, object]] = spec["mounts"]
    targets = {str(m["target"]) for m in mounts}
    traversable = set(spec.get("traversable", []))
    shadow = {a for t in targets for a in _ancestors(t)} | traversable
    shadow |= {a for t in traversable for a in _ancestors(t)}

    _mount("tmpfs", root, "tmpfs", 0, "mode=0755")
    _mirror("/", root, targets, shadow, traversable)

    for mount in sorted(mounts, key=lambda m: len(PurePosixPath(str(m["target"])).parts)):
        target = inside(root, str(mount["target"]))
        source = str(mount["source"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            with open(target, "w"):
                pass
        _mount(source, target, None, MS_BIND | MS_REC)
        if mount.get("readOnly"):
            _mount(source, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)

    os.chroot(root)
    os.chdir(spec["workingDir"])
    user = spec.get("user")
    if user is not None:
        os.setgroups([int(g) for g in user["groups"]])
        os.setgid(int(user["gid"]))
        os.setuid(int(user["uid"]))
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)  # noqa: S606 - exec is the point: the container command replaces us


if __name__ == "__main__":
    main(sys.argv[1])
