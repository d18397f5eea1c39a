"""The base of the three plugins: Harvester's PluginBase when present, and a lazy service.

Why a shim: Harvester builds a plugin with ``Class(**section)`` and its ``PluginBase.__init__``
sets every keyword argument as an attribute (``pandaharvester/harvestercore/plugin_base.py`` in
https://github.com/HSF/harvester). When ``pandaharvester`` is importable we subclass its
``PluginBase`` (so ``make_logger`` and any future behaviour come with it); otherwise a compatible
base does the same ``setattr`` loop, so importing these modules, and the unit tests, never need
pandaharvester.

Why lazy: Harvester's ``PluginFactory`` builds a NEW plugin object every cycle, so construction
must cost nothing: the :class:`SessionService` is made on first use, and even then neither helm
nor the Kubernetes API is touched until a call needs them (both are lazy). No per-worker state
lives in the plugin: it lives in the cluster and in the WorkSpec (see
:mod:`orchestrator.harvester.workspec`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from orchestrator.harvester.queue_params import int_param, settings_from_params
from orchestrator.harvester.workspec import worker_location
from orchestrator.service import SessionService

__all__ = ["CompatiblePluginBase", "DaskPluginBase", "harvester_available"]


def _harvester_plugin_base() -> type | None:
    """Harvester's PluginBase when pandaharvester is importable (never required)."""
    try:
        module = importlib.import_module("pandaharvester.harvestercore.plugin_base")
    except ImportError:
        return None
    base = getattr(module, "PluginBase", None)
    return base if isinstance(base, type) else None


class CompatiblePluginBase:
    """Harvester's PluginBase semantics without Harvester: every keyword becomes an attribute."""

    def __init__(self, **kwarg: Any) -> None:
        for key, value in kwarg.items():
            setattr(self, key, value)


_HARVESTER_BASE: Final = _harvester_plugin_base()


def harvester_available() -> bool:
    """True when the plugins subclass Harvester's own PluginBase."""
    return _HARVESTER_BASE is not None


if TYPE_CHECKING:
    _Base = CompatiblePluginBase
else:
    _Base = _HARVESTER_BASE or CompatiblePluginBase


class DaskPluginBase(_Base):
    """Base of the three plugins: queue parameters -> a lazily built :class:`SessionService`.

    Tests (or an embedding process) may pass ``service=<SessionService>`` as a keyword argument;
    Harvester never does, and then the service is built from the queue parameters on first use.
    """

    def __init__(self, **kwarg: Any) -> None:
        self._service: SessionService | None = None
        super().__init__(**kwarg)

    @property
    def service(self) -> SessionService:
        """The service layer for this plugin's queue parameters (cheap: no helm or API call)."""
        if self._service is None:
            self._service = SessionService(settings_from_params(vars(self)))
        return self._service

    @service.setter
    def service(self, value: SessionService) -> None:
        self._service = value

    @property
    def n_threads(self) -> int:
        """``nProcesses``: the threads of submit_workers / kill_workers (each runs helm)."""
        return max(1, int_param(getattr(self, "nProcesses", None), 4))

    def namespace_of(self, workspec: Any) -> str:
        """The namespace of a worker's session: its work attribute, else the configured one."""
        location = worker_location(workspec)
        recorded = location[0] if location is not None else None
        return recorded or self.service.settings.namespace
