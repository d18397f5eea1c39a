"""Parse and validate one PanDA job into an immutable :class:`PandaJob`.

This is the first step of the data path: everything later (values, helm, the cluster) trusts a
``PandaJob``, so every check on the job happens here, before anything touches the cluster, and a
bad job fails with ONE :class:`JobError` that names the field and the reason.

Accepted input shapes (see :func:`parse_job`):

(a) Harvester's ``pandaJobData.out``: ``{"<PandaID>": {...jobParams...}}`` with exactly one entry;
    the key must equal the inner ``PandaID`` when the inner one is present;
(b) the bare job dict (it has a ``PandaID``);
(c) a Harvester ``JobSpec``-like object with ``.PandaID`` and ``.jobParams`` (duck-typed).

Real jobs carry ``"NULL"`` strings and numbers as strings (``"coreCount": "NULL"``,
``"taskID": "4"``): optional fields treat ``"NULL"`` and ``""`` as absent, integer fields accept
decimal strings.

Reserved job fields (an extension of the PanDA job record; set them e.g. through the task's job
parameters; they win over everything else):

``daskMode``
    ``batch`` or ``interactive`` (``non_interactive`` and ``non-interactive`` mean ``batch``).
``daskWorkers``
    the number of dask workers wanted (an integer, or a string holding one).

Mode and worker count, first match wins, each decided on its own:

1. the reserved job fields above;
2. the user's secrets entry named ``dask`` holding JSON such as
   ``{"mode": "interactive", "workers": 4}`` (both keys optional, no other keys);
3. mode only, the original's legacy convention: ``realDatasets`` contains ``interactive`` and not
   ``non_interactive``/``non-interactive`` -> interactive (with one of those -> batch);
4. the queue default (:class:`QueueLimits`).

The worker count is then clamped into the queue's ``[min_workers, max_workers]``; a clamp is
recorded in :attr:`PandaJob.adjustments`, never silent. Non-integers and booleans are errors, not
clamped: they are typos, not requests.

Secrets: the job field ``secrets`` is a dict (Harvester >= 2023-07 decodes it) or a JSON string
(older Harvester); entry values may themselves be JSON strings. The JupyterLab password is taken,
in this order, from an entry named ``password`` (plain string, or JSON holding ``password``),
an entry named ``jupyter`` (same), else the first entry whose JSON holds ``username``/``password``
(as the original read it). An interactive job without a password is rejected: unlike the
original (which fell back to the well-known ``user``), there is NO default password. A secret
value never appears in a message, a repr or a log line: :class:`SecretStr` redacts itself.

Bounds (every input path: a file, a bare dict, a Harvester JobSpec): the job definition as the
pilot gets it (``{PandaID: jobParams}`` without ``secrets``, UTF-8 JSON) is at most
:data:`MAX_DEFINITION_BYTES` (768 KiB: it travels in the per-job Secret, whose data Kubernetes caps
at 1 MiB); JSON nests at most :data:`MAX_NESTING` levels (the job, the secrets, and JSON held in a
secrets string); every string is valid Unicode (no lone surrogates). Numbers are kept exactly:
Python ints of any size stay ints, never floats.

This module is pure: it reads a file at most (:func:`load_job_file`), never runs helm and never
talks to the cluster, and it never mutates the caller's job (the original deleted ``secrets``
from Harvester's JobSpec in place).
"""

from __future__ import annotations

import copy
import hmac
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from orchestrator.errors import InputError
from orchestrator.names import MAX_RELEASE_NAME, RELEASE_PREFIX

__all__ = [
    "DASK_SECRET",
    "MAX_DEFINITION_BYTES",
    "MAX_JOB_FILE_BYTES",
    "MAX_NESTING",
    "MODE_FIELD",
    "WORKERS_FIELD",
    "JobError",
    "Mode",
    "PandaJob",
    "QueueLimits",
    "SecretStr",
    "definition_bytes",
    "load_job_file",
    "parse_job",
    "parse_release_name",
    "release_name",
]

MODE_FIELD: Final = "daskMode"
"""Reserved job field: the session mode (``batch`` or ``interactive``)."""
WORKERS_FIELD: Final = "daskWorkers"
"""Reserved job field: the number of dask workers."""
DASK_SECRET: Final = "dask"  # noqa: S105 - an entry name, not a password
"""Name of the user's secrets entry that may hold ``{"mode": ..., "workers": ...}``."""

MAX_JOB_FILE_BYTES: Final = 1024 * 1024
"""A job file (definition plus secrets) above 1 MiB cannot fit the per-job Secret: refused unread."""
MAX_DEFINITION_BYTES: Final = 768 * 1024
"""The job definition (``pandaJobData.out`` bytes) travels in the per-job Secret, whose data
Kubernetes caps at 1 MiB; 768 KiB leaves room for the password, the session addresses and
Kubernetes' own overhead. About 1,400 input files at ~560 bytes of per-file fields each."""
MAX_NESTING: Final = 32
"""JSON nesting bound of a job, its secrets and JSON inside a secrets string. A PanDA job nests
3 levels; the bound keeps every later step (copy, json, YAML, helm) far from recursion limits."""
MAX_ID: Final = 10**15
"""PandaIDs are ~10**10 today; the bound keeps release names short and labels sane."""
MAX_ATTEMPT: Final = 999
MAX_WORKERS_LIMIT: Final = 10_000
MAX_NAME_FIELD: Final = 255
MAX_TEXT_FIELD: Final = 4096
PASSWORD_MIN: Final = 8
PASSWORD_MAX: Final = 256

# Job fields the orchestrator writes into the pilot's job definition itself; a job that brings
# its own would redirect the pilot (and `scheduler_ip` in batch mode triggers the pilot bug that
# runs the payload twice: its payload command already ends with ';' when the address is added,
# see https://github.com/PanDAWMS/pilot3 pilot/user/atlas/common.py).
_ORCHESTRATOR_FIELDS: Final = ("scheduler_ip", "session_ip")
_NULLS: Final = frozenset({"NULL", ""})
_INT_RE: Final = re.compile(r"\s*[+-]?[0-9]{1,30}\s*")
_IMAGE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")
_PREFIX_RE: Final = re.compile(r"[a-z](?:[a-z0-9-]{0,16}[a-z0-9])?")
_DNS1123_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_USER_FIELDS: Final = ("prodUserName", "produserName", "prodUserID")


class JobError(InputError):
    """A job was rejected; ``field`` names the offending field, ``reason`` says why.

    ``str(err)`` is one line: ``job field 'PandaID': must be a positive integer, got '12a'``.
    ``field`` is ``""`` for problems with the input as a whole (unreadable file, wrong type).
    Messages never carry a secret value: callers build them with :func:`_got`, which hides
    anything that came from the secrets.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.field:
            return f"job field {self.field!r}: {self.reason}"
        return f"job: {self.reason}"

    def __repr__(self) -> str:
        return f"JobError(field={self.field!r}, reason={self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickling (a process pool) must rebuild it from both arguments, not the message
        return (type(self), (self.field, self.reason))


class SecretStr:
    """A string that does not print itself: ``repr``/``str``/``format`` give ``<redacted>``.

    Why: a password inside a dataclass leaks through every ``repr`` in a log line or a traceback.
    Read the value explicitly with :meth:`get`, at the one place that needs it (the Secret).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretStr holds a str")
        self._value = value

    def get(self) -> str:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class Mode(StrEnum):
    """How the session runs: the pilot runs the payload (batch) or stages in for a user (interactive)."""

    BATCH = "batch"
    INTERACTIVE = "interactive"


_MODE_WORDS: Final = {
    "batch": Mode.BATCH,
    "non_interactive": Mode.BATCH,
    "non-interactive": Mode.BATCH,
    "interactive": Mode.INTERACTIVE,
}


@dataclass(frozen=True)
class QueueLimits:
    """A queue's worker limits and defaults (from ``values/<QUEUE>.yaml``).

    Validated on construction so a broken queue file fails once, loudly, instead of clamping every
    job into nonsense.
    """

    min_workers: int = 1
    max_workers: int = 10
    default_workers: int = 2
    default_mode: Mode = Mode.BATCH

    def __post_init__(self) -> None:
        for name in ("min_workers", "max_workers", "default_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"queue limit {name} must be an integer, got {value!r}")
        if not 0 <= self.min_workers <= self.default_workers <= self.max_workers <= MAX_WORKERS_LIMIT:
            raise InputError(
                "queue limits must satisfy 0 <= min_workers <= default_workers <= max_workers "
                f"<= {MAX_WORKERS_LIMIT}, got min={self.min_workers} default={self.default_workers} "
                f"max={self.max_workers}"
            )
        mode = _MODE_WORDS.get(str(self.default_mode).strip().lower())
        if mode is None:
            raise InputError(f"queue default_mode must be batch or interactive, got {self.default_mode!r}")
        object.__setattr__(self, "default_mode", mode)


@dataclass(frozen=True)
class PandaJob:
    """One validated PanDA job: everything the rest of the orchestrator needs, nothing mutable.

    ``definition`` is the pilot's job definition (``jobParams`` without ``secrets``), a private deep
    copy behind a read-only mapping; :meth:`job_data` gives a fresh ``pandaJobData.out`` dict.
    """

    pandaid: int
    mode: Mode
    workers: int
    mode_source: str
    workers_source: str
    attempt: int = 0
    taskid: int | None = None
    harvester_worker_id: int | None = None
    user: str | None = None
    container_name: str | None = None
    transformation: str | None = None
    prod_source_label: str | None = None
    core_count: int | None = None
    min_ram_count: int | None = None
    max_walltime: int | None = None
    password: SecretStr | None = None
    user_secrets: SecretStr | None = None
    adjustments: tuple[str, ...] = ()
    definition: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, hash=False
    )

    def __post_init__(self) -> None:
        # a PandaJob built directly (not by parse_job) still gets a private, read-only definition
        if not isinstance(self.definition, MappingProxyType):
            object.__setattr__(self, "definition", MappingProxyType(copy.deepcopy(dict(self.definition))))

    def __reduce__(self) -> tuple[Any, ...]:
        # a mappingproxy cannot be pickled or deep-copied: travel as a plain dict, re-frozen on load
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["definition"] = dict(self.definition)
        return (_restore_job, (values,))

    @property
    def release(self) -> str:
        """The deterministic Helm release name of this job (see :func:`release_name`)."""
        return release_name(self.pandaid, self.attempt)

    @property
    def interactive(self) -> bool:
        return self.mode is Mode.INTERACTIVE

    def job_data(self) -> dict[str, dict[str, Any]]:
        """A fresh ``pandaJobData.out`` dict ``{"<PandaID>": definition}`` the caller may modify."""
        return {str(self.pandaid): copy.deepcopy(dict(self.definition))}

    def job_data_bytes(self, extra: Mapping[str, str] | None = None) -> bytes:
        """The ``pandaJobData.out`` file the pilot reads, plus ``extra`` fields (the session addresses).

        UTF-8 JSON with every character as itself and every number exact (see
        :func:`definition_bytes`).
        """
        return definition_bytes(self.pandaid, {**self.definition, **(extra or {})})


def definition_bytes(pandaid: int, definition: Mapping[str, Any]) -> bytes:
    """``{"<PandaID>": definition}`` as compact UTF-8 JSON: non-ASCII characters written as
    themselves (``ensure_ascii=False``, so a character outside the Basic Multilingual Plane is
    never split into surrogate escapes) and Python ints exact, whatever their size."""
    text = json.dumps(
        {str(pandaid): dict(definition)}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return text.encode("utf-8")


def _restore_job(values: dict[str, Any]) -> PandaJob:
    return PandaJob(**values)


# --------------------------------------------------------------------------------------------
# small helpers


def _is_null(value: object) -> bool:
    """PanDA writes absent values as the string ``"NULL"`` (or an empty string)."""
    return value is None or (isinstance(value, str) and value.strip() in _NULLS)


def _got(field: str, value: object) -> str:
    """``got <value>`` for a message, shortened; values from the secrets are never shown."""
    if field.startswith("secrets"):
        return f"got a {type(value).__name__} (value not shown: it comes from the secrets)"
    text = repr(value)
    if len(text) > 48:
        text = text[:45] + "..."
    return f"got {text}"


def _label(name: str) -> str:
    """A secrets entry name fit for a field path (entry names are user input)."""
    shown = name if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name) else repr(name)[:42]
    return f"secrets.{shown}"


def _as_int(field: str, value: object, what: str = "an integer") -> int:
    if isinstance(value, bool):
        raise JobError(field, f"must be {what}, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    raise JobError(field, f"must be {what}, {_got(field, value)}")


def _identity(field: str, value: object) -> int:
    """A positive id (PandaID, taskID, workerID): strict, because it ends up in names and labels."""
    number = _as_int(field, value, "a positive integer")
    if number < 1:
        raise JobError(field, f"must be a positive integer, {_got(field, value)}")
    if number > MAX_ID:
        raise JobError(field, f"must be at most {MAX_ID}, {_got(field, value)}")
    return number


def _optional_int(params: Mapping[str, Any], name: str, maximum: int) -> int | None:
    value = params.get(name)
    if _is_null(value):
        return None
    number = _as_int(name, value)
    if not 0 <= number <= maximum:
        raise JobError(name, f"must be between 0 and {maximum}, {_got(name, value)}")
    return number


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    """A free-text field: kept as data (shell or YAML metacharacters are fine), only bounded."""
    value = params.get(name)
    if _is_null(value):
        return None
    if not isinstance(value, str):
        raise JobError(name, f"must be a string, {_got(name, value)}")
    if len(value) > MAX_TEXT_FIELD:
        raise JobError(name, f"must be at most {MAX_TEXT_FIELD} characters, got {len(value)}")
    return value


def _loads(text: str, field: str) -> tuple[bool, Any]:
    """``json.loads`` that drops the exception: a JSONDecodeError keeps the whole (secret) text.

    What it decodes is checked like the job itself (:func:`_check_tree`): nesting, Unicode.
    """
    try:
        decoded = json.loads(text)
    except RecursionError:
        raise JobError(field, f"JSON nests deeper than {MAX_NESTING} levels (value not shown)") from None
    except ValueError:
        return False, None
    _check_tree(decoded, field, name_depth=1)
    return True, decoded


def _json_object(value: object, field: str) -> Mapping[str, Any] | None:
    """A secrets entry as an object: a mapping as is, a string holding a JSON object decoded."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        ok, decoded = _loads(value, field)
        if ok and isinstance(decoded, dict):
            return decoded
    return None


def _has_surrogate(text: str) -> bool:
    """A lone surrogate (from a JSON escape like ``\\ud800``) cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_tree(root: object, field: str, *, name_depth: int = 2) -> None:
    """Refuse what later steps cannot carry: deep nesting, lone surrogates, non-JSON values.

    Iterative (a deep input must not exhaust Python's recursion while it is being checked); the
    error names the path of the offending value (``jobParams.inFiles[3]``) and never shows a value
    under ``secrets``. Too deep a value is named by its path down to ``name_depth`` levels (the
    job field or the secrets entry), not by a path as long as its nesting.
    """
    stack: list[tuple[object, str, int, str]] = [(root, field, 1, field)]
    while stack:
        node, path, depth, named = stack.pop()
        if depth <= name_depth:
            named = path
        if isinstance(node, Mapping):
            if depth > MAX_NESTING:
                raise JobError(named, f"nests deeper than {MAX_NESTING} levels")
            for key, value in node.items():
                if not isinstance(key, str):
                    raise JobError(path, f"keys must be strings, got a {type(key).__name__}")
                if _has_surrogate(key):
                    raise JobError(path, "a key holds a lone surrogate (not valid Unicode)")
                child = f"{path}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]{1,40}", key) else f"{path}[...]"
                stack.append((value, child, depth + 1, named))
        elif isinstance(node, list | tuple):
            if depth > MAX_NESTING:
                raise JobError(named, f"nests deeper than {MAX_NESTING} levels")
            stack.extend((value, f"{path}[{index}]", depth + 1, named) for index, value in enumerate(node))
        elif isinstance(node, str):
            if _has_surrogate(node):
                raise JobError(path, "holds a lone surrogate (not valid Unicode)")
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                raise JobError(path, "must be a finite number")
        elif node is not None and not isinstance(node, bool | int):
            raise JobError(path, f"must be JSON data, got a {type(node).__name__}")


# --------------------------------------------------------------------------------------------
# shapes


def _unwrap(data: object) -> tuple[int, Mapping[str, Any], object]:
    """(PandaID, jobParams, the JobSpec-like object or None) from any accepted shape."""
    if isinstance(data, Mapping):
        if "PandaID" in data:
            return _identity("PandaID", data["PandaID"]), data, None
        if data and all(isinstance(value, Mapping) for value in data.values()):
            if len(data) != 1:
                raise JobError("PandaID", f"a pandaJobData mapping holds exactly one job, got {len(data)}")
            ((key, params),) = data.items()
            outer = _identity("PandaID", key)
            inner = params.get("PandaID")
            if not _is_null(inner) and _identity("PandaID", inner) != outer:
                raise JobError(
                    "PandaID", f"the pandaJobData key {str(key)!r} differs from the job's PandaID {inner!r}"
                )
            return outer, params, None
        raise JobError("PandaID", "missing: expected a job with a PandaID or a mapping {PandaID: job}")
    if hasattr(data, "jobParams"):
        params = data.jobParams
        if not isinstance(params, Mapping):
            raise JobError("jobParams", f"must be a mapping, got {type(params).__name__}")
        attr = getattr(data, "PandaID", None)
        inner = params.get("PandaID")
        if _is_null(attr) and _is_null(inner):
            raise JobError("PandaID", "missing from the JobSpec and from its jobParams")
        pandaid = _identity("PandaID", inner if _is_null(attr) else attr)
        if not _is_null(inner) and _identity("PandaID", inner) != pandaid:
            raise JobError("PandaID", f"the JobSpec's PandaID {attr!r} differs from jobParams' {inner!r}")
        return pandaid, params, data
    raise JobError("", f"expected a job mapping or a Harvester JobSpec, got {type(data).__name__}")


def _field(params: Mapping[str, Any], spec: object, name: str) -> object:
    """A job field, falling back to the JobSpec attribute of the same name when it is NULL."""
    value = params.get(name)
    if _is_null(value) and spec is not None:
        return getattr(spec, name, None)
    return value


# --------------------------------------------------------------------------------------------
# secrets, mode, workers, password


def _secrets(params: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = params.get("secrets")
    if _is_null(raw):
        return None
    decoded: object = raw
    if isinstance(raw, str):
        ok, decoded = _loads(raw, "secrets")
        if not ok:
            raise JobError("secrets", "is a string but not valid JSON (value not shown)")
    if not isinstance(decoded, Mapping):
        raise JobError(
            "secrets", f"must be a JSON object (or a string holding one), got {type(decoded).__name__}"
        )
    if not all(isinstance(key, str) for key in decoded):
        raise JobError("secrets", "entry names must be strings")
    result = copy.deepcopy(dict(decoded))
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        raise JobError("secrets", "must be JSON-serialisable (value not shown)") from None
    return result


def _dask_entry(secrets: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not secrets or DASK_SECRET not in secrets:
        return None
    entry = _json_object(secrets[DASK_SECRET], f"secrets.{DASK_SECRET}")
    if entry is None:
        raise JobError(
            f"secrets.{DASK_SECRET}",
            'must be a JSON object such as {"mode": "interactive", "workers": 4} (value not shown)',
        )
    unknown = sorted(repr(key)[:40] for key in entry if key not in ("mode", "workers"))
    if unknown:
        raise JobError(
            f"secrets.{DASK_SECRET}",
            f"unknown key(s) {', '.join(unknown)}; the known keys are 'mode', 'workers'",
        )
    return entry


def _mode(field: str, value: object) -> Mode:
    mode = _MODE_WORDS.get(value.strip().lower()) if isinstance(value, str) else None
    if mode is None:
        raise JobError(field, f"must be batch or interactive (or non_interactive), {_got(field, value)}")
    return mode


def _legacy_mode(real_datasets: object) -> Mode | None:
    """The original's convention: the output dataset name says ``interactive``."""
    if not isinstance(real_datasets, str) or "interactive" not in real_datasets:
        return None
    if "non_interactive" in real_datasets or "non-interactive" in real_datasets:
        return Mode.BATCH
    return Mode.INTERACTIVE


def _choose_mode(
    params: Mapping[str, Any], dask: Mapping[str, Any] | None, limits: QueueLimits
) -> tuple[Mode, str]:
    if not _is_null(params.get(MODE_FIELD)):
        return _mode(MODE_FIELD, params[MODE_FIELD]), MODE_FIELD
    if dask is not None and not _is_null(dask.get("mode")):
        name = f"secrets.{DASK_SECRET}.mode"
        return _mode(name, dask["mode"]), name
    legacy = _legacy_mode(params.get("realDatasets"))
    if legacy is not None:
        return legacy, "realDatasets"
    return limits.default_mode, "queue default"


def _choose_workers(
    params: Mapping[str, Any], dask: Mapping[str, Any] | None, limits: QueueLimits
) -> tuple[int, str, tuple[str, ...]]:
    if not _is_null(params.get(WORKERS_FIELD)):
        source, value = WORKERS_FIELD, params[WORKERS_FIELD]
    elif dask is not None and not _is_null(dask.get("workers")):
        source, value = f"secrets.{DASK_SECRET}.workers", dask["workers"]
    else:
        return limits.default_workers, "queue default", ()
    wanted = _as_int(source, value, "an integer number of workers")
    if wanted > limits.max_workers:
        return (
            limits.max_workers,
            source,
            (f"workers {wanted} clamped to the queue maximum {limits.max_workers}",),
        )
    if wanted < limits.min_workers:
        return (
            limits.min_workers,
            source,
            (f"workers {wanted} raised to the queue minimum {limits.min_workers}",),
        )
    return wanted, source, ()


def _password_in(name: str, value: object, *, plain_allowed: bool) -> tuple[str, object] | None:
    """(field path, password value) held by one secrets entry, or None if it holds none."""
    entry = _json_object(value, _label(name))
    if entry is not None:
        if "password" in entry:
            return f"{_label(name)}.password", entry["password"]
        return None
    if plain_allowed:
        return _label(name), value
    return None


def _find_password(secrets: Mapping[str, Any] | None) -> tuple[str, object] | None:
    if not secrets:
        return None
    for preferred in ("password", "jupyter"):
        if preferred in secrets:
            found = _password_in(preferred, secrets[preferred], plain_allowed=True)
            if found is not None:
                return found
    for name, value in secrets.items():
        if name in ("password", "jupyter", DASK_SECRET):
            continue
        found = _password_in(name, value, plain_allowed=False)
        if found is not None:
            return found
    return None


def _check_password(field: str, value: object) -> SecretStr:
    if not isinstance(value, str):
        raise JobError(field, f"the JupyterLab password must be a string, got a {type(value).__name__}")
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise JobError(
            field,
            f"the JupyterLab password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {len(value)}",
        )
    if not value.isprintable():
        raise JobError(field, "the JupyterLab password must be printable (no newline or control characters)")
    return SecretStr(value)


# --------------------------------------------------------------------------------------------
# name-like fields


def _user(params: Mapping[str, Any]) -> str | None:
    for name in _USER_FIELDS:
        value = params.get(name)
        if _is_null(value):
            continue
        if not isinstance(value, str):
            raise JobError(name, f"must be a string, {_got(name, value)}")
        if len(value) > MAX_NAME_FIELD:
            raise JobError(name, f"must be at most {MAX_NAME_FIELD} characters, got {len(value)}")
        if not value.isprintable():
            raise JobError(name, "must not hold newlines or control characters")
        return value
    return None


def _container_name(params: Mapping[str, Any]) -> str | None:
    """``container_name`` selects an image, so it is a name: ASCII, bounded, image-reference characters."""
    value = params.get("container_name")
    if _is_null(value):
        return None
    name = "container_name"
    if not isinstance(value, str):
        raise JobError(name, f"must be a string, {_got(name, value)}")
    if not value.isascii():
        raise JobError(name, f"must be ASCII (an image name or tag), {_got(name, value)}")
    if len(value) > MAX_NAME_FIELD:
        raise JobError(name, f"must be at most {MAX_NAME_FIELD} characters, got {len(value)}")
    if not _IMAGE_RE.fullmatch(value):
        raise JobError(
            name, f"may hold only letters, digits and . _ : / @ - (an image name or tag), {_got(name, value)}"
        )
    return value


# --------------------------------------------------------------------------------------------
# public API


def parse_job(
    data: Mapping[str, Any] | object,
    *,
    queue_limits: QueueLimits | None = None,
    harvester_worker_id: int | None = None,
) -> PandaJob:
    """Validate one PanDA job (any accepted shape, see the module docstring) into a :class:`PandaJob`.

    Raises :class:`JobError` naming the field and the reason; the caller's data is never modified.
    """
    limits = queue_limits if queue_limits is not None else QueueLimits()
    pandaid, params, spec = _unwrap(data)
    # before anything copies or serialises it: nesting, Unicode, JSON types (secrets included)
    _check_tree({k: v for k, v in params.items() if k != "secrets"}, "jobParams")
    if isinstance(params.get("secrets"), Mapping | list):
        _check_tree(params["secrets"], "secrets")

    taskid_raw = _field(params, spec, "taskID")
    taskid = None if _is_null(taskid_raw) else _identity("taskID", taskid_raw)
    attempt_raw = _field(params, spec, "attemptNr")
    attempt = 0 if _is_null(attempt_raw) else _as_int("attemptNr", attempt_raw)
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise JobError("attemptNr", f"must be between 0 and {MAX_ATTEMPT}, got {attempt}")
    worker_id = None if harvester_worker_id is None else _identity("workerID", harvester_worker_id)

    secrets = _secrets(params)
    dask = _dask_entry(secrets)
    mode, mode_source = _choose_mode(params, dask, limits)
    workers, workers_source, adjustments = _choose_workers(params, dask, limits)

    password: SecretStr | None = None
    if mode is Mode.INTERACTIVE:
        found = _find_password(secrets)
        if found is None:
            raise JobError(
                "secrets",
                "an interactive job needs a JupyterLab password: add a secret named 'password' "
                "(or an entry whose JSON holds username/password); there is no default password",
            )
        password = _check_password(*found)

    definition: dict[str, Any] = {key: value for key, value in params.items() if key != "secrets"}
    for name in _ORCHESTRATOR_FIELDS:
        if name in definition:
            del definition[name]
            adjustments += (f"job field {name!r} dropped: the orchestrator sets it",)
    if _is_null(definition.get("PandaID")):
        definition["PandaID"] = pandaid
    try:
        definition = json.loads(json.dumps(definition, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobError("jobParams", f"must be JSON-serialisable ({type(exc).__name__})") from None
    size = len(definition_bytes(pandaid, definition))
    if size > MAX_DEFINITION_BYTES:
        raise JobError(
            "jobParams",
            f"the job definition is {size} bytes, above the limit of {MAX_DEFINITION_BYTES} bytes "
            f"({MAX_DEFINITION_BYTES // 1024} KiB; it travels in a Kubernetes Secret, capped at 1 MiB)",
        )

    return PandaJob(
        pandaid=pandaid,
        mode=mode,
        workers=workers,
        mode_source=mode_source,
        workers_source=workers_source,
        attempt=attempt,
        taskid=taskid,
        harvester_worker_id=worker_id,
        user=_user(params),
        container_name=_container_name(params),
        transformation=_optional_text(params, "transformation"),
        prod_source_label=_optional_text(params, "prodSourceLabel"),
        core_count=_optional_int(params, "coreCount", 100_000),
        min_ram_count=_optional_int(params, "minRamCount", 10**9),
        max_walltime=_optional_int(params, "maxWalltime", 10**9),
        password=password,
        user_secrets=SecretStr(json.dumps(secrets, sort_keys=True)) if secrets else None,
        adjustments=adjustments,
        definition=MappingProxyType(definition),
    )


def load_job_file(path_or_dash: str, *, max_bytes: int = MAX_JOB_FILE_BYTES) -> Mapping[str, Any]:
    """Read a job file (JSON; ``-`` = standard input) into a mapping for :func:`parse_job`.

    Reads at most ``max_bytes + 1`` bytes, so a huge or endless input fails fast instead of
    filling memory. Errors are :class:`JobError` with ``field == ""``; a JSON error gives the line
    and column but never the text (it may hold secrets).
    """
    where = "standard input" if path_or_dash == "-" else repr(path_or_dash)
    try:
        if path_or_dash == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = (
                stream.read(max_bytes + 1) if stream is not None else sys.stdin.read(max_bytes + 1).encode()
            )
        else:
            with open(path_or_dash, "rb") as handle:
                data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise JobError("", f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise JobError(
            "", f"{where} is larger than the limit of {max_bytes} bytes (read {len(data)} bytes and stopped)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JobError("", f"{where} is not UTF-8 text") from None
    problem = None
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        problem = f"it nests deeper than {MAX_NESTING} levels"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        problem = str(exc).split(":")[0]
    if problem is not None:
        raise JobError("", f"{where} is not valid JSON: {problem}")
    if not isinstance(decoded, dict):
        raise JobError("", f"{where} must hold a JSON object, got {type(decoded).__name__}")
    return decoded


def release_name(pandaid: int, attempt: int = 0, prefix: str = RELEASE_PREFIX) -> str:
    """The Helm release name of a job: ``dask-<PandaID>``, ``dask-<PandaID>-a<attempt>`` if attempt > 0.

    Deterministic, so a repeated submit of the same job finds its release instead of making a
    second one. A DNS-1123 label of at most 40 characters, so every object name the chart derives
    from it (``<release>-scheduler``, ``<release>-worker-12``) stays a valid 63-character label.
    """
    if isinstance(pandaid, bool) or not isinstance(pandaid, int):
        raise JobError("PandaID", f"must be a positive integer, {_got('PandaID', pandaid)}")
    number = _identity("PandaID", pandaid)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= MAX_ATTEMPT:
        raise JobError(
            "attemptNr", f"must be an integer between 0 and {MAX_ATTEMPT}, {_got('attemptNr', attempt)}"
        )
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise InputError(
            f"release prefix {prefix!r} must be lowercase letters, digits and '-', start with a letter, "
            "and be at most 18 characters"
        )
    name = f"{prefix}-{number}" + (f"-a{attempt}" if attempt else "")
    if len(name) > MAX_RELEASE_NAME or not _DNS1123_LABEL_RE.fullmatch(name):
        raise InputError(
            f"release name {name!r} is not a DNS-1123 label of at most {MAX_RELEASE_NAME} characters"
        )
    return name


def parse_release_name(name: str, prefix: str = RELEASE_PREFIX) -> tuple[int, int] | None:
    """``(pandaid, attempt)`` of a name made by :func:`release_name`, or None for any other name.

    For garbage collection: a release of ours whose name does not round-trip is not ours.
    """
    match = re.fullmatch(rf"{re.escape(prefix)}-([1-9][0-9]{{0,15}})(?:-a([1-9][0-9]{{0,2}}))?", name)
    if match is None:
        return None
    pandaid, attempt = int(match.group(1)), int(match.group(2) or 0)
    try:
        if release_name(pandaid, attempt, prefix) != name:
            return None
    except InputError:
        return None
    return pandaid, attempt
