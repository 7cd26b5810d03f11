"""The attnrec exception hierarchy.

Every error raised on user input names the parameter, column, file or line, the rule broken and the value found,
so that the CLI can print it as one line (exit status 2) and a service can map it to a 4xx answer.
"""

from __future__ import annotations


class AttnRecError(Exception):
    """Base class of every error attnrec raises on purpose."""


class ConfigError(AttnRecError, ValueError):
    """A configuration value or parameter is invalid (names the field, the rule and the value)."""


class DataError(AttnRecError, ValueError):
    """Input data is malformed (names the file, the line or column, the rule and the value found)."""


class NotFittedError(AttnRecError, RuntimeError):
    """A model was used before ``fit`` (or ``load``)."""


class UnknownEntityError(AttnRecError, KeyError):
    """A user or item id is not in the vocabulary and the call cannot fall back."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it plain
        return str(self.args[0]) if self.args else ""


class ModelFitError(AttnRecError, RuntimeError):
    """Training failed (for example the loss became NaN); the message names the epoch and step."""


class PersistenceError(AttnRecError, ValueError):
    """A saved model or run folder cannot be loaded (missing file, wrong version, unsafe format)."""
