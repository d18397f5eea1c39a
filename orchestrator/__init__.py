"""dask-panda-session: one PanDA job -> one Helm release of a Dask session on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dask-panda-session")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
