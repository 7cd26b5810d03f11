"""Base class of typed, frozen model configurations.

Configs are pydantic models with ``extra="forbid"`` and ``frozen=True``: unknown keys are an error listing the
valid ones, and a config round-trips through JSON.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from attnrec.errors import ConfigError


class ModelConfig(BaseModel):
    """Hyperparameters of one model. Subclasses declare fields with types, defaults and descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    renamed: ClassVar[dict[str, str]] = {}
    """Old parameter name -> current name: still accepted (saved runs, scripts), with a DeprecationWarning."""

    @classmethod
    def create(cls, values: dict[str, Any] | None = None, **overrides: Any) -> Self:
        """Build a config, turning pydantic's errors into one-line :class:`ConfigError`\\ s."""
        data = dict(values or {})
        data.update(overrides)
        for old, new in cls.renamed.items():
            if old in data:
                if new in data:
                    raise ConfigError(f"{cls.__name__}: give {new!r} only ({old!r} is its old name); got both")
                warnings.warn(
                    f"the {old!r} parameter of {cls.__name__} is now called {new!r}; the old name goes in 0.3",
                    DeprecationWarning,
                    stacklevel=3,
                )
                data[new] = data.pop(old)
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            valid = ", ".join(sorted(cls.model_fields))
            raise ConfigError(
                f"unknown {cls.__name__} parameter(s) {', '.join(repr(u) for u in unknown)}; valid parameters: {valid}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_validation_error(cls.__name__, exc)) from None

    def with_updates(self, **updates: Any) -> Self:
        """Return a copy with some fields replaced (validated)."""
        return type(self).create(self.model_dump(), **updates)


def coerce_value(text: str) -> Any:
    """Turn a ``--set key=value`` string into a JSON scalar (int, float, bool, null) or leave it a string."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _format_validation_error(owner: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "<config>"
        parts.append(f"the {field!r} parameter of {owner} {err['msg'].lower()}; got {err.get('input')!r}")
    return "; ".join(parts)
