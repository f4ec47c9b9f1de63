"""The package's error types.

Lower layers raise these (or plain ``ValueError`` for a bad argument of a pure function);
only the command line (:mod:`sgdthermo.cli`) turns them into messages and exit codes:

- :class:`UsageError`, and every :class:`ConfigError` raised while a command validates its
  input: one line on stderr, exit code 2, nothing written;
- anything else: a traceback (a bug), except the run-level outcomes the commands report.
"""

from __future__ import annotations

__all__ = ["SgdthermoError", "ConfigError", "UsageError", "RunExistsError", "ResultsExistError",
           "RunBusyError", "CheckpointError", "first_line"]


def first_line(exc: BaseException | str) -> str:
    """The first line of an error message (the type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else (type(exc).__name__ if isinstance(exc, BaseException) else "")


class SgdthermoError(Exception):
    """Base class of sgdthermo's own errors."""


class ConfigError(SgdthermoError, ValueError):
    """A setting, a file or a folder that cannot be used as given (one line naming the value
    and what is allowed). A ``ValueError``, so callers that catch those keep working."""


class UsageError(ConfigError):
    """Bad command-line input: reported as one line, exit code 2."""


class RunExistsError(ConfigError):
    """The run folder holds a finished run (pass force=True) or an unfinished one (resume)."""


class CheckpointError(ConfigError):
    """A run's checkpoint cannot continue it: unreadable, of another configuration, or
    holding an impossible step. A sweep starts such a run over; ``train`` says so and stops."""


class ResultsExistError(ConfigError):
    """The output folder holds finished results of other settings (pass force=True)."""


class RunBusyError(SgdthermoError, RuntimeError):
    """Another process is training this run (its folder's lock is held)."""
