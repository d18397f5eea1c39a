"""The `dask-panda-session` command line (a thin adapter over the service layer)."""

import sys

from orchestrator import __version__


def main(argv: list[str] | None = None) -> int:
    """Print the version; the full CLI arrives with the orchestrator issue."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in {"-h", "--help"}:
        print("usage: dask-panda-session [--version]")
        return 0
    print(f"dask-panda-session {__version__}")
    return 0
