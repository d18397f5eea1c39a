"""What the plugins read from and write to a Harvester WorkSpec: where its session lives.

No per-worker state lives in a plugin object, because Harvester builds a new plugin object every
cycle: it lives in the cluster and in the WorkSpec, as the ``batchID`` (the release name) and the
one work attribute :data:`ATTRIBUTE_KEY`. Harvester's WorkSpec has no namespace column, and a
schema change would need a database migration on every Harvester instance, so the namespace
travels in the work attribute, which Harvester stores as a JSON blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "ATTRIBUTE_KEY",
    "PANDA_URL_ATTRIBUTE",
    "jupyter_diag",
    "merge_attribute",
    "naive_to_utc",
    "session_attribute",
    "worker_location",
]

ATTRIBUTE_KEY: Final = "dask_panda_session"
"""The one work attribute (``WorkSpec.workAttributes[ATTRIBUTE_KEY]``) this package writes.

It holds where the session lives (``namespace``, ``release``), so that the monitor and the sweeper
find it without a schema change in Harvester, and what the monitor last saw (phase, addresses,
timings).
"""


PANDA_URL_ATTRIBUTE: Final = "stdOut"
"""The work attribute that carries the JupyterLab URL to PanDA.

Harvester's ``update_workers`` sends PanDA only ``diagMessage``, ``nativeStatus``,
``nativeExitCode``, ``errorCode`` and, of the work attributes, ``stdOut``, ``stdErr``,
``batchLog`` and ``jdl`` (``WorkSpec.convert_to_propagate``): :data:`ATTRIBUTE_KEY` never leaves
Harvester. ``stdOut`` is the worker's output link on the PanDA worker page; this package writes
no log there, so it holds the address the user opens.
"""

JUPYTER_DIAG_PREFIX: Final = "JupyterLab: "


def jupyter_diag(url: str, diag: str) -> str:
    """The worker's diagMessage with the JupyterLab URL first (Harvester cuts it at 500 chars)."""
    head = f"{JUPYTER_DIAG_PREFIX}{url}"
    return f"{head}; {diag}" if diag else head


def session_attribute(workspec: Any) -> dict[str, Any]:
    """A copy of the worker's ``dask_panda_session`` attribute ({} when it has none)."""
    getter = getattr(workspec, "get_work_attribute", None)
    if callable(getter):
        found, value = getter(ATTRIBUTE_KEY)
        return dict(value) if found and isinstance(value, Mapping) else {}
    attributes = getattr(workspec, "workAttributes", None)
    value = attributes.get(ATTRIBUTE_KEY) if isinstance(attributes, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def worker_location(workspec: Any) -> tuple[str | None, str] | None:
    """(namespace, release) of a worker, or None when it has no batchID (never submitted).

    The release is the batchID; the namespace is the one the submitter recorded in the work
    attribute (None when there is none: the caller uses the configured namespace). A batchID of
    the form ``namespace/release`` is accepted too, for workers made by hand or whose attribute
    was lost.
    """
    batch_id = getattr(workspec, "batchID", None)
    if batch_id in (None, ""):
        return None
    text = str(batch_id)
    recorded = session_attribute(workspec).get("namespace")
    namespace = recorded if isinstance(recorded, str) and recorded else None
    if "/" in text:
        ns, _, release = text.partition("/")
        return (namespace or ns or None, release)
    return (namespace, text)


def merge_attribute(workspec: Any, update: Mapping[str, Any]) -> None:
    """Merge ``update`` into the worker's ``dask_panda_session`` attribute (only if it changes).

    Harvester's ``set_work_attributes`` replaces a top-level key and marks the blob for a DB
    write when the value differs: writing the merged whole keeps earlier keys (the namespace)
    and leaves the row alone when nothing changed.
    """
    current = session_attribute(workspec)
    merged = {**current, **update}
    if merged != current:
        workspec.set_work_attributes({ATTRIBUTE_KEY: merged})


def naive_to_utc(value: object) -> datetime | None:
    """Harvester keeps naive UTC datetimes; the service wants aware ones."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None
