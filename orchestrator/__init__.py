"""dask-panda-session: one PanDA job -> one Helm release of a Dask session on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version
from typing import Final

try:
    __version__ = version("dask-panda-session")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__dask_panda_session__: Final = True
"""Marks this package as dask-panda-session's: PyPI's ``orchestrator-core`` has the same import
name, and the Harvester plugins refuse to load when this marker is missing."""

__all__ = ["__dask_panda_session__", "__version__"]
