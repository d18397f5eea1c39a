"""Refuse to run when the ``orchestrator`` package Python imported is not this project's.

The import name ``orchestrator`` is not unique: PyPI's ``orchestrator-core`` (a workflow engine
for network automation) uses it too. With both installed in one environment their files land in
the same ``site-packages/orchestrator/`` directory and whichever was installed last provides
``orchestrator/__init__.py``: the plugins would then run against a mixture of two projects and fail
far from the cause. Checking the marker that this project's ``orchestrator/__init__.py`` sets turns
that into one clear error at import time.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Final

__all__ = ["MARKER", "ForeignOrchestratorError", "require_own_orchestrator"]

MARKER: Final = "__dask_panda_session__"
"""The attribute this project's ``orchestrator/__init__.py`` defines (and no other project does)."""


class ForeignOrchestratorError(ImportError):
    """The ``orchestrator`` package imported is another project's (e.g. ``orchestrator-core``)."""


def require_own_orchestrator(package: ModuleType | None = None) -> None:
    """Raise :class:`ForeignOrchestratorError` unless ``orchestrator`` is dask-panda-session's.

    ``package`` defaults to the ``orchestrator`` module already imported (it is, since this module
    lives inside it); tests pass another one.
    """
    module = package if package is not None else sys.modules.get("orchestrator")
    if module is not None and getattr(module, MARKER, None):
        return
    where = getattr(module, "__file__", None) or "an unknown location"
    raise ForeignOrchestratorError(
        f"the Python package 'orchestrator' imported from {where} is not dask-panda-session's "
        f"(it lacks {MARKER}); PyPI's orchestrator-core uses the same import name: install "
        "dask-panda-session in an environment without orchestrator-core"
    )
