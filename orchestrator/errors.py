"""The error base of the package.

Adapters (the CLI, the Harvester plugins) need one thing from an error: was it the caller's
input (nothing was created; CLI exit status 2, a permanent Harvester failure) or anything else
(exit status 1, maybe retried)? Every module raises a subclass of one of these two, so adapters
can decide with a single ``except`` clause instead of knowing every module's errors.
"""

from __future__ import annotations

__all__ = ["DaskPandaSessionError", "InputError"]


class DaskPandaSessionError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(DaskPandaSessionError, ValueError):
    """The input (a job, a values file, a command-line argument) is wrong; nothing was done.

    Also a ``ValueError`` so callers that do not know this package still catch it sensibly.
    """
