"""Hyperparameter search spaces, declared next to each model's config (``attnrec tune``).

A model config class that can be tuned declares a class attribute ``search_space``: a mapping from its field
names to one of :class:`FloatRange`, :class:`IntRange` or :class:`Choice`::

    class EASEConfig(ModelConfig):
        l2: float = Field(500.0, gt=0.0, ...)
        search_space: ClassVar[SearchSpace] = {"l2": FloatRange(1.0, 10_000.0, log=True)}

The declaration is plain data (no optuna import): :func:`check_space` proves that every value it can produce is
accepted by the config's own validation (each bound and each choice, alone and all together), and
:func:`attnrec.training.tuning.sample_params` turns it into optuna ``suggest_*`` calls. Fields that are not in the
space keep their defaults (or the values fixed with ``attnrec tune --set``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attnrec.config import ModelConfig
from attnrec.errors import ConfigError


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``; ``log``: sampled uniformly in log space (``low`` must then be > 0)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ConfigError(f"FloatRange needs low < high (and low > 0 with log); got {self.low}, {self.high}")

    def corners(self) -> tuple[Any, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (every ``step``-th one from ``low``); ``log``: uniform in log space."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or self.step < 1 or (self.log and (self.low <= 0 or self.step != 1)):
            raise ConfigError(
                f"IntRange needs low < high, step >= 1 (and low > 0, step 1 with log); got {self.low}, {self.high}"
            )

    def corners(self) -> tuple[Any, ...]:
        return (self.low, self.low + (self.high - self.low) // self.step * self.step)


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, strings, booleans; at least two)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.values) < 2 or len(set(self.values)) != len(self.values):
            raise ConfigError(f"Choice needs at least two distinct values; got {self.values!r}")

    def corners(self) -> tuple[Any, ...]:
        return self.values


Dimension = FloatRange | IntRange | Choice
SearchSpace = Mapping[str, Dimension]


def space_of(config_class: type[ModelConfig]) -> SearchSpace | None:
    """The ``search_space`` a config class declares, or ``None`` when it declares none."""
    space = getattr(config_class, "search_space", None)
    return space if space else None


def check_space(config_class: type[ModelConfig], space: SearchSpace, fixed: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` unless every value the space can produce passes ``config_class``'s validation.

    Checks that each name is a field not fixed in ``fixed`` (the user's ``--set`` values), then builds the config
    at every bound and choice of each dimension alone, and at the all-low and all-high corners together (the
    rules the config enforces are bounds, so the corners decide). Raises on the first value that fails, naming it.
    """
    fixed = dict(fixed or {})
    fields = config_class.model_fields
    for name in space:
        if name not in fields:
            raise ConfigError(f"search space of {config_class.__name__}: {name!r} is not one of its parameters")
    dims = list(space.items())
    trials: list[dict[str, Any]] = [{name: value} for name, dim in dims for value in dim.corners()]
    for pick in (0, -1):
        trials.append({name: dim.corners()[pick] for name, dim in dims})
    for values in itertools.islice(trials, 10_000):
        try:
            config_class.create({**fixed, **values})
        except ConfigError as exc:
            raise ConfigError(f"search space of {config_class.__name__} gives invalid values {values}: {exc}") from None


__all__ = ["Choice", "Dimension", "FloatRange", "IntRange", "SearchSpace", "check_space", "space_of"]
