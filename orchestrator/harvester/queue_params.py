"""A plugin's queue-configuration parameters -> :class:`orchestrator.service.Settings`.

Harvester builds a plugin with ``Class(**section)``, where ``section`` is the plugin's part of
``panda_queueconfig.json`` plus the queue's ``common`` keys, ``queueName``, ``siteName`` and
``dbInterface``. Every parameter read here is documented in ``docs/harvester.md``; unknown keys
are ignored, because Harvester copies the queue's ``common`` section into every plugin section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from orchestrator.service import Settings

__all__ = ["int_param", "settings_from_params"]

_TIMEOUTS: Final = {
    "installTimeout": "install_timeout",
    "uninstallTimeout": "uninstall_timeout",
    "cleanupTimeout": "cleanup_timeout",
    "verifyTimeout": "verify_timeout",
    "gcGraceSeconds": "gc_grace_seconds",
    "defaultLifetimeSeconds": "default_lifetime_seconds",
}


def int_param(value: object, default: int) -> int:
    """An integer parameter (Harvester may pass it as a string), ``default`` when absent or bad."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(str(value))
    except ValueError:
        return default


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"queue parameter {name}: must be a number of seconds, got {value!r}")
    try:
        number = float(str(value))
    except ValueError:
        raise ValueError(f"queue parameter {name}: must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"queue parameter {name}: must be positive, got {value!r}")
    return number


def _files(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value if str(item))
    raise ValueError(
        f"queue parameter valuesFiles: a list of paths or a comma-separated string, got {value!r}"
    )


def _first(params: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = params.get(name)
        if value not in (None, ""):
            return value
    return None


def _harvester_id() -> str | None:
    """This Harvester's ``[master] harvester_id`` when running inside Harvester, else None."""
    try:
        from pandaharvester.harvesterconfig import harvester_config  # type: ignore[import-not-found]
    except Exception:  # outside Harvester (CLI, tests): the queue parameter or nothing
        return None
    value = getattr(getattr(harvester_config, "master", None), "harvester_id", None)
    return str(value) if value else None


def settings_from_params(params: Mapping[str, Any]) -> Settings:
    """A plugin's queue-config parameters -> :class:`Settings` (see docs/harvester.md).

    ``daskQueue`` defaults to Harvester's ``queueName`` (so the PanDA queue GOOGLE_DASK uses
    ``values/GOOGLE_DASK.yaml``); ``kubeconfig`` also accepts upstream K8s plugins' name
    ``k8s_config_file``. A malformed number raises ValueError naming the parameter.
    """
    defaults = Settings()
    fields: dict[str, Any] = {}
    queue = _first(params, "daskQueue", "queueName")
    if queue is not None:
        fields["queue"] = str(queue)
    namespace = _first(params, "namespace")
    if namespace is not None:
        fields["namespace"] = str(namespace)
    fields["values_files"] = _files(params.get("valuesFiles"))
    chart = _first(params, "chart")
    if chart is not None:
        fields["chart"] = Path(str(chart))
    values_dir = _first(params, "valuesDir")
    if values_dir is not None:
        fields["values_dir"] = Path(str(values_dir))
    kubeconfig = _first(params, "kubeconfig", "k8s_config_file")
    if kubeconfig is not None:
        fields["kubeconfig"] = str(kubeconfig)
    context = _first(params, "kubeContext")
    if context is not None:
        fields["kube_context"] = str(context)
    harvester_id = _first(params, "harvesterID") or _harvester_id()
    if harvester_id is not None:
        fields["harvester_id"] = str(harvester_id)
    helm = _first(params, "helmExecutable")
    if helm is not None:
        fields["helm_executable"] = str(helm)
    for key, field_name in _TIMEOUTS.items():
        value = params.get(key)
        if value not in (None, ""):
            fields[field_name] = _seconds(key, value)
    connect, read = params.get("requestConnectTimeout"), params.get("requestReadTimeout")
    fields["request_timeout"] = (
        defaults.request_timeout[0] if connect in (None, "") else _seconds("requestConnectTimeout", connect),
        defaults.request_timeout[1] if read in (None, "") else _seconds("requestReadTimeout", read),
    )
    return Settings(**fields)
