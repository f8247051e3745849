"""The project's own errors: each one is a problem a person can act on, and its message says what to do.

The command line prints a ``LakecartError`` as one line (``lakecart <command>: error: ...``); anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LakecartError(Exception):
    """Base class of the errors the command line reports as one line."""


class ConfigError(LakecartError):
    """The configuration (``LAKECART_CONFIG`` YAML or ``LAKECART_*`` variables) is not valid."""


class UsageError(LakecartError):
    """A command was asked for something it cannot do (a missing or contradictory argument)."""


class UnknownTrainingSet(LakecartError, KeyError):
    """No manifest names this training set id."""

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])
