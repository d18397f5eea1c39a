"""Directories of releases that no longer exist: the `gc` Job that finds and removes them.

The orchestrator cannot list the shared volume itself, so `gc` runs a small Job made from the
chart's own cleanup Job (its image, its volume mounted at the jobs directory, its security
settings and deadline) with this module's script instead of the cleanup's. The script looks only
at direct sub-directories named `<PandaID>-<attempt>` (never through a symbolic link), spares those
of live releases (`KEEP`) and those modified within the grace period, restores permissions and
removes the rest (none with dry run), at most `LIMIT` a run so that one run stays short. Its
counts come back as the container's termination message (read from the pod's status: no log
access needed), one line `found=N removed=N young=N failed=N kept=N`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.names import (
    APP_NAME,
    COMPONENT_LABEL,
    GC_COMPONENT,
    GC_RUN_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
)

__all__ = ["GC_COMPONENT", "GC_RUN_LABEL", "GC_SCRIPT", "DirectoryCounts", "gc_job", "parse_counts"]

MAX_PER_RUN = 200

GC_SCRIPT = r"""set -u
log="${TERMINATION_LOG:-/dev/termination-log}"
cd "${JOBS_ROOT:-/shared}" || { echo "found=0 removed=0 young=0 failed=1 kept=0" > "$log"; exit 1; }
found=0 removed=0 young=0 failed=0 kept=0
for d in *; do
  case "$d" in ''|-*|*-|*[!0-9-]*) continue ;; esac
  case "$d" in *-*) ;; *) continue ;; esac
  if [ -L "$d" ] || [ ! -d "$d" ]; then continue; fi
  case " $KEEP " in *" $d "*) kept=$((kept + 1)); continue ;; esac
  found=$((found + 1))
  if [ -n "$(find "$d" -maxdepth 0 -mmin "-$GRACE_MINUTES")" ]; then
    young=$((young + 1)); echo "young: $d"; continue
  fi
  if [ "$DRY_RUN" = 1 ]; then echo "would remove: $d"; continue; fi
  if [ $((removed + failed)) -ge "$LIMIT" ]; then continue; fi
  chmod -R u+rwX -- "$d" 2>/dev/null || true
  if rm -rf -- "$d" 2>/dev/null && [ ! -e "$d" ]; then
    removed=$((removed + 1)); echo "removed: $d"
  else
    failed=$((failed + 1)); echo "FAILED to remove: $d" >&2
  fi
done
summary="found=$found removed=$removed young=$young failed=$failed kept=$kept"
echo "$summary"
echo "$summary" > "$log" 2>/dev/null || true
[ "$failed" -eq 0 ]
"""


@dataclass(frozen=True)
class DirectoryCounts:
    """What the `gc` Job saw: directories of gone releases found, removed (or, with dry run,
    that would be), spared as younger than the grace period, that could not be removed, and the
    directories of live releases it left alone."""

    found: int = 0
    removed: int = 0
    young: int = 0
    failed: int = 0
    kept: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "found": self.found,
            "removed": self.removed,
            "young": self.young,
            "failed": self.failed,
            "kept": self.kept,
        }


_COUNTS = re.compile(r"found=(\d+) removed=(\d+) young=(\d+) failed=(\d+) kept=(\d+)")


def parse_counts(message: str) -> DirectoryCounts | None:
    """The counts of the script's summary line, or None when the message holds none."""
    match = _COUNTS.search(message or "")
    if match is None:
        return None
    found, removed, young, failed, kept = (int(g) for g in match.groups())
    return DirectoryCounts(found=found, removed=removed, young=young, failed=failed, kept=kept)


def gc_job(
    cleanup_job: Mapping[str, Any],
    *,
    name: str,
    keep: Iterable[str],
    grace_seconds: float,
    dry_run: bool,
    limit: int = MAX_PER_RUN,
) -> dict[str, Any]:
    """The `gc` Job, made from a rendered cleanup Job: same image, volume, security and deadline;
    this module's script; labels of its own (no release's instance label, so no sweep or orphan
    search takes it for part of a session). ValueError when the cleanup Job has no container."""
    job = copy.deepcopy(dict(cleanup_job))
    labels = {
        NAME_LABEL: APP_NAME,
        COMPONENT_LABEL: GC_COMPONENT,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    job["metadata"] = {"name": name, "labels": dict(labels)}
    spec = job.setdefault("spec", {})
    spec["backoffLimit"] = 0
    spec.pop("selector", None)
    template = spec.setdefault("template", {})
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**dict(labels), GC_RUN_LABEL: name}
    containers = template.setdefault("spec", {}).setdefault("containers", [])
    if not containers:
        raise ValueError("the cleanup Job has no container")
    container = containers[0]
    container["name"] = "gc"
    container["command"] = ["/bin/sh", "-c"]
    container["args"] = [GC_SCRIPT]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["terminationMessagePolicy"] = "File"
    minutes = max(1, int((grace_seconds + 59) // 60))
    container["env"] = [
        {"name": "KEEP", "value": " ".join(sorted(set(keep)))},
        {"name": "GRACE_MINUTES", "value": str(minutes)},
        {"name": "DRY_RUN", "value": "1" if dry_run else "0"},
        {"name": "LIMIT", "value": str(limit)},
    ]
    template["spec"]["containers"] = [container]
    return job
