"""PandaJob + a queue's values file -> the release's values and, separately, its Secret data.

The second step of the data path. Three layers are merged, later wins: the chart's `values.yaml`,
the queue's file (`values/<QUEUE>.yaml`, plus any extra `-f` files), and the per-job values made
here. String values of the queue files may be jinja2 templates of job fields (`{{ job.pandaid }}`,
`{{ job.user }}`, ...); an undefined name is an error, and the templates run sandboxed because a
queue file is configuration, not code. The merged values are checked against the chart's
`values.schema.json` before anything touches the cluster, so a bad values file fails here with one
message naming the field.

Secrets never enter the values: the JupyterLab password goes into `SecretData`, which the service
writes to a Kubernetes Secret that the values only name (`secrets.existingSecret`).

Nor does the job definition: it can be most of a megabyte (about 560 bytes per input file), and a
Helm value ends up twice in the release record and, as an env var, over exec's 128 KiB limit for
one string. It goes into the same per-job Secret under `pandaJobData.out` (the exact file the pilot
reads); the values carry only its sha256 (`job.definitionSha256`), which the prepare hook and the
pilot's gate check. In interactive mode the definition carries the session's addresses
(`scheduler_ip`, `session_ip`, computed here exactly as the chart names its Services); in batch mode
they stay out, because the pilot runs the payload twice when `scheduler_ip` is set.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from orchestrator import resources
from orchestrator.errors import InputError
from orchestrator.job import MAX_DEFINITION_BYTES, Mode, PandaJob, QueueLimits, SecretStr
from orchestrator.names import jupyterlab_name, scheduler_name, secret_name
from orchestrator.tls import CA_KEY, CERT_KEY, make_session_tls

__all__ = [
    "CHART_DIR",
    "DEFINITION_KEY",
    "MAX_SECRET_BYTES",
    "PASSWORD_KEY",
    "VALUES_DIR",
    "QueueConfig",
    "RenderedValues",
    "SecretData",
    "ValuesError",
    "definition_checksum",
    "job_directory",
    "load_queue",
    "render_values",
    "secret_name",
    "session_addresses",
]

ROOT: Final = Path(__file__).resolve().parent.parent
CHART_DIR: Final = resources.chart_dir()
"""The chart: the checkout's, or the copy an installed wheel carries (orchestrator.resources)."""
VALUES_DIR: Final = resources.values_dir()
PASSWORD_KEY: Final = "jupyter-password"  # noqa: S105 - the key's name in the Secret, not a password
DEFINITION_KEY: Final = "pandaJobData.out"
"""Key of the job definition in the per-job Secret; also the file name the pilot looks for."""
MAX_SECRET_BYTES: Final = 1024 * 1024 - 64 * 1024
"""Kubernetes refuses Secret data above 1 MiB; keep 64 KiB for metadata and other keys' growth."""
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ValuesError(InputError):
    """A values file or the merged values are wrong; the message names the file or the field."""


@dataclass(frozen=True)
class QueueConfig:
    """One PanDA queue's configuration: its merged values files and the limits they imply."""

    name: str
    files: tuple[Path, ...]
    values: Mapping[str, Any] = field(repr=False)
    limits: QueueLimits
    chart: Path = CHART_DIR
    """The chart whose defaults and schema these values are merged with and checked against."""


class SecretData:
    """The data of the per-job Secret. Its repr and str never show a value."""

    def __init__(self, data: Mapping[str, SecretStr]) -> None:
        self._data = dict(data)

    def size(self) -> int:
        """Bytes of all values as UTF-8 (what counts against Kubernetes' 1 MiB limit)."""
        return sum(len(value.get().encode("utf-8")) for value in self._data.values())

    def __repr__(self) -> str:
        return f"SecretData(keys={sorted(self._data)})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._data)

    def keys(self) -> list[str]:
        return sorted(self._data)

    def reveal(self) -> dict[str, str]:
        """The plain values, for the one call that writes the Secret; never log the result."""
        return {k: v.get() for k, v in self._data.items()}

    def values_to_scrub(self) -> list[str]:
        """The values that must never be shown; the job definition is not a secret (no scrubbing
        of helm output against hundreds of kB), nor are the session's public certificates."""
        public = {DEFINITION_KEY, CA_KEY, CERT_KEY}
        return [v.get() for k, v in self._data.items() if k not in public]


@dataclass(frozen=True)
class RenderedValues:
    """What one job becomes: the release, its values (no secret inside) and its Secret's data."""

    release: str
    namespace: str
    values: Mapping[str, Any] = field(repr=False)
    secret_name: str | None
    secret: SecretData
    adjustments: tuple[str, ...] = ()


def job_directory(pandaid: int, attempt: int) -> str:
    """The job's directory under `sharedVolume.jobsDirectory`: one per release (PandaID and attempt).

    Two attempts of one PandaID never share a directory, so the late cleanup of one cannot remove
    the other's live files. The chart builds the same name (`dps.jobDirName`).
    """
    return f"{pandaid}-{attempt}"


def definition_checksum(data: bytes) -> str:
    """sha256 (hex) of the definition's bytes: the chart's `job.definitionSha256`."""
    return hashlib.sha256(data).hexdigest()


def _get(values: Mapping[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def session_addresses(values: Mapping[str, Any], release: str, namespace: str) -> dict[str, str]:
    """`scheduler_ip` and `session_ip` of an interactive session, as the chart names its objects.

    `values` are the effective values (chart defaults merged in). The scheduler is reached through
    its Service's DNS name; the JupyterLab URL is the Ingress host, a static LoadBalancer address or
    the Service's DNS name (the chart's `dps.jupyterUrl`, which renders the same string into the
    pods' annotations).
    """
    domain = _get(values, "clusterDomain")
    comm = "tls" if _get(values, "tls.enabled") else "tcp"
    scheduler = f"{comm}://{scheduler_name(release)}.{namespace}.svc.{domain}:{int(_get(values, 'scheduler.port'))}"
    jupyter = _get(values, "jupyterlab") or {}
    ingress, service = jupyter.get("ingress") or {}, jupyter.get("service") or {}
    issuers = ingress.get("certManager") or {}
    # https where TLS ends at the Ingress (a certificate Secret or a cert-manager issuer), or where
    # JupyterLab serves the site certificate itself (jupyterlab.tls.secretName)
    tls = (ingress.get("enabled") and (ingress.get("tlsSecretName") or any(issuers.values()))) or (
        (jupyter.get("tls") or {}).get("secretName")
    )
    scheme = "https" if tls else "http"
    if ingress.get("enabled"):
        url = f"{scheme}://{ingress.get('host')}{ingress.get('path')}"
    elif service.get("type") == "LoadBalancer" and service.get("loadBalancerIP"):
        url = f"{scheme}://{service['loadBalancerIP']}:{int(service.get('port') or 80)}/"
    else:
        url = f"{scheme}://{jupyterlab_name(release)}.{namespace}.svc.{domain}:{int(service.get('port') or 80)}/"
    return {"scheduler_ip": scheduler, "session_ip": url}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValuesError(f"values file {path}: cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValuesError(
            f"values file {path}: not valid YAML{where}: {getattr(err, 'problem', err)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"values file {path}: must hold a mapping at the top, got {type(data).__name__}")
    return data


@cache
def chart_defaults(chart: Path = CHART_DIR) -> dict[str, Any]:
    return _read_yaml(chart / "values.yaml")


@cache
def _schema_validator(chart: Path = CHART_DIR) -> jsonschema.Draft7Validator:
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def _queue_file(queue: str | Path, values_dir: Path) -> Path:
    """A queue by name (<values dir>/<NAME>.yaml) or by path to a values file."""
    text = str(queue)
    if _QUEUE_NAME.match(text) and not text.endswith((".yaml", ".yml")):
        path = values_dir / f"{text}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in values_dir.glob("*.yaml"))
            raise ValuesError(
                f"queue {text!r}: no values file {path.name} under {values_dir} "
                f"(known: {', '.join(known) or 'none'}; --values-dir or DPS_VALUES_DIR names another)"
            )
        return path
    path = Path(text)
    if not path.is_file():
        raise ValuesError(f"queue values file {text}: no such file")
    return path


def _int_value(values: Mapping[str, Any], dotted: str) -> int:
    node: Any = values
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, bool) or not isinstance(node, int):
        raise ValuesError(f"{dotted}: must be an integer, got {node!r}")
    return node


def load_queue(
    queue: str | Path,
    extra_files: Sequence[str | Path] = (),
    *,
    values_dir: Path | None = None,
    chart: Path | None = None,
) -> QueueConfig:
    """Read a queue's values (by name or path) plus extra files, and derive its worker limits.

    `values_dir` and `chart` default to the checkout's or the installed package's (see
    orchestrator.resources); the chart's defaults and schema are the ones the values must meet.
    """
    chart = (chart or CHART_DIR).resolve()
    first = _queue_file(queue, values_dir or VALUES_DIR)
    files = (first, *(Path(f) for f in extra_files))
    merged: dict[str, Any] = {}
    for path in files:
        merged = deep_merge(merged, _read_yaml(path))
    effective = deep_merge(chart_defaults(chart), merged)
    name = str(effective.get("queue", {}).get("name") or first.stem)
    try:
        limits = QueueLimits(
            min_workers=_int_value(effective, "queue.minWorkers"),
            max_workers=_int_value(effective, "queue.maxWorkers"),
            default_workers=_int_value(effective, "workers.replicas"),
            default_mode=Mode(str(effective.get("job", {}).get("mode", "batch"))),
        )
    except ValueError as err:
        raise ValuesError(f"queue {name} ({first.name}): {err}") from None
    return QueueConfig(name=name, files=files, values=merged, limits=limits, chart=chart)


def _template_context(job: PandaJob, release: str, namespace: str, queue: str) -> dict[str, Any]:
    return {
        "job": {
            "pandaid": job.pandaid,
            "taskid": job.taskid,
            "attempt": job.attempt,
            "mode": str(job.mode),
            "workers": job.workers,
            "user": job.user,
            "container_name": job.container_name,
            "transformation": job.transformation,
            "prod_source_label": job.prod_source_label,
            "core_count": job.core_count,
            "min_ram_count": job.min_ram_count,
            "max_walltime": job.max_walltime,
            "harvester_worker_id": job.harvester_worker_id,
        },
        "release": release,
        "namespace": namespace,
        "queue": queue,
    }


_MAX_TEMPLATE_RESULT = 64 * 1024


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox plus bounds on `**` and `*`: `{{ job.pandaid ** 10 ** 9 }}` or `'x' * 10 ** 12`
    in a queue file would otherwise hang or exhaust the orchestrator instead of failing."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        too_large = (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and max(abs(left), 2).bit_length() * right > 8 * _MAX_TEMPLATE_RESULT
        ) or (
            operator == "*"
            and any(
                isinstance(seq, str | list | tuple) and isinstance(times, int)
                and len(seq) * times > _MAX_TEMPLATE_RESULT
                for seq, times in ((left, right), (right, left))
            )
        )  # fmt: skip
        if too_large:
            raise SecurityError(f"{operator}: the result would be too large")
        return super().call_binop(context, operator, left, right)


_JOB_NAMES = re.compile(r"\bjob\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|\bjob\s*\[\s*['\"]([A-Za-z_0-9]+)['\"]")


def _template_failure(path: str, node: str, context: Mapping[str, Any], err: BaseException) -> ValuesError:
    """One message naming the values key, the template and the job fields it read, with their values.

    Why: a template that works for most jobs fails for the one whose field is `NULL` (None) or odd;
    the site admin needs to see which field of which job broke it, not a TypeError traceback.
    """
    job = context.get("job") or {}
    used = []
    for match in _JOB_NAMES.finditer(node):
        name = match.group(1) or match.group(2)
        shown = repr(job[name]) if name in job else "undefined"
        if len(shown) > 48:
            shown = shown[:45] + "..."
        used.append(f"job.{name}={shown}")
    fields = f" (job fields: {', '.join(dict.fromkeys(used))})" if used else ""
    reason = str(err).splitlines()[0][:200] if str(err) else ""
    return ValuesError(
        f"{path}: template {node!r} failed for this job{fields}: {type(err).__name__}: {reason}"
    )


def _render_templates(node: Any, env: SandboxedEnvironment, context: Mapping[str, Any], path: str) -> Any:
    """Render every string holding `{{`/`{%` as a jinja2 template of the job's fields."""
    if isinstance(node, Mapping):
        return {
            k: _render_templates(v, env, context, f"{path}.{k}" if path else str(k)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_render_templates(v, env, context, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and ("{{" in node or "{%" in node):
        try:
            return env.from_string(node).render(context)
        # a template is admin input: whatever it raises on a job's odd field is a refusal that
        # names the key and the field, never a traceback (None + 1, int('NULL'), 10 ** 10 ** 10, ...)
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError,
                RecursionError, MemoryError) as err:  # fmt: skip
            raise _template_failure(path, node, context, err) from None
    return node


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)' was unexpected", error.message)
        parts += extra[:1]
    return ".".join(parts) or "(top level)"


def validate_values(values: Mapping[str, Any], chart: Path = CHART_DIR) -> None:
    """Check merged values against the chart's schema; one message naming every bad field."""
    errors = sorted(_schema_validator(chart).iter_errors(values), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors[:5]:
            message = err.message
            if len(message) > 200:
                message = message[:200] + "..."
            lines.append(f"{_field_path(err)}: {message}")
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValuesError("invalid values: " + "; ".join(lines) + more)


def job_values(job: PandaJob, release: str) -> dict[str, Any]:
    """The per-job layer: identity, mode, worker count, the Secret's name (never the definition).

    `job.definitionSha256` is added by :func:`render_values` once the definition's bytes are known.
    """
    return {
        "job": {
            "pandaId": str(job.pandaid),
            "attempt": job.attempt,
            "harvesterWorkerId": "" if job.harvester_worker_id is None else str(job.harvester_worker_id),
            "mode": str(job.mode),
        },
        "workers": {"replicas": job.workers},
        "secrets": {"existingSecret": secret_name(release)},
    }


TLS_VALIDITY_MARGIN: Final = 86400
"""Seconds the session certificates outlive the session's lifetime (a late end, a retried uninstall)."""


def _session_tls(values: Mapping[str, Any], release: str, namespace: str) -> dict[str, SecretStr]:
    """A fresh CA and session certificate for the per-job Secret (never for the values)."""
    scheduler = scheduler_name(release)
    domain = str(_get(values, "clusterDomain") or "cluster.local")
    names = [
        scheduler,
        f"{scheduler}.{namespace}",
        f"{scheduler}.{namespace}.svc",
        f"{scheduler}.{namespace}.svc.{domain}",
    ]
    lifetime = _int_value(values, "timeouts.lifetimeSeconds")
    tls = make_session_tls(release, names, valid_for=dt.timedelta(seconds=lifetime + TLS_VALIDITY_MARGIN))
    return tls.secret_data()


def render_values(
    job: PandaJob,
    queue: QueueConfig,
    *,
    namespace: str,
    overrides: Mapping[str, Any] | None = None,
) -> RenderedValues:
    """The release values (schema-checked) and the Secret data of one job on one queue."""
    if not _NAMESPACE.match(namespace):
        raise ValuesError(f"namespace {namespace!r}: must be a DNS-1123 label")
    release = job.release
    env = _BoundedEnvironment(undefined=StrictUndefined, autoescape=False)
    context = _template_context(job, release, namespace, queue.name)
    queue_values = _render_templates(dict(queue.values), env, context, "")
    values = deep_merge(queue_values, job_values(job, release))
    if overrides:
        values = deep_merge(values, overrides)
    if job.interactive and job.password is None:
        raise ValuesError("secrets: an interactive job needs a JupyterLab password")
    effective = deep_merge(chart_defaults(queue.chart), values)
    validate_values(effective, queue.chart)
    addresses = session_addresses(effective, release, namespace) if job.interactive else {}
    definition = job.job_data_bytes(addresses)
    if len(definition) > MAX_DEFINITION_BYTES + 4096:
        raise ValuesError(
            f"job definition: {len(definition)} bytes with the session addresses, above the limit of "
            f"{MAX_DEFINITION_BYTES} bytes"
        )
    values["job"]["definitionSha256"] = definition_checksum(definition)
    data = {DEFINITION_KEY: SecretStr(definition.decode("utf-8"))}
    if job.interactive and job.password:
        data[PASSWORD_KEY] = job.password
    if _get(effective, "tls.enabled"):
        data.update(_session_tls(effective, release, namespace))
    secret = SecretData(data)
    if secret.size() > MAX_SECRET_BYTES:
        raise ValuesError(
            f"per-job Secret: {secret.size()} bytes, above the limit of {MAX_SECRET_BYTES} bytes"
        )
    return RenderedValues(
        release=release,
        namespace=namespace,
        values=values,
        secret_name=secret_name(release),
        secret=secret,
        adjustments=job.adjustments,
    )
