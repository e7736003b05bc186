"""Errors a user can act on: printed as one line, exit code 2, never a traceback."""

from __future__ import annotations

USAGE_EXIT_CODE = 2


class CliError(Exception):
    """Something the user must fix (a name, a setting, a missing stack); the message says what to do."""


class RunFailedError(Exception):
    """A followed run ended without success (exit code 1, the cause already printed)."""
