"""What an explanation is, and the protocol every explanation method implements.

An :class:`Explanation` of one recommended item is a list of :class:`Attribution` s, largest weight first. An
attribution credits a history item (``kind="history_item"``: its item index and its position in the history),
an item attribute (``"item_attribute"``, e.g. a genre, by ``name``) or a feature field (``"feature_field"``, e.g.
the user's age bucket, by ``name``). Today's methods credit history items; the other kinds are for models that
read side information.

An :class:`Explainer` turns a model, a history and the items recommended after it into explanations. Methods
that give one relevance per history position (every method of attnrec today) derive from
:class:`PositionExplainer` and only implement :meth:`PositionExplainer.relevance`. The methods themselves and
the choice per model are in :mod:`attnrec.explain.methods`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from attnrec.errors import ConfigError

AttributionKind = Literal["history_item", "item_attribute", "feature_field"]
ATTRIBUTION_KINDS: tuple[str, ...] = ("history_item", "item_attribute", "feature_field")


class ExplainError(ConfigError):
    """A model cannot explain, or cannot explain with the requested method (one line naming both)."""


@dataclass(frozen=True)
class Attribution:
    """How much one cause drove a recommendation.

    Attributes:
        kind: ``"history_item"``, ``"item_attribute"`` or ``"feature_field"``.
        weight: share of the explanation's total weight (``>= 0``, finite; the weights of one explanation sum to
            at most 1).
        index: item index of a history item (``kind="history_item"``), else ``None``.
        name: attribute or field name (the other kinds), else ``None``.
        position: 0-based position in the history (oldest first) of a history item; for an item that occurs
            more than once, its most recent position (the weights of all occurrences are summed).
    """

    kind: AttributionKind
    weight: float
    index: int | None = None
    name: str | None = None
    position: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTRIBUTION_KINDS:
            raise ConfigError(f"Attribution kind must be one of {', '.join(ATTRIBUTION_KINDS)}; got {self.kind!r}")
        if self.kind == "history_item" and (self.index is None or self.position is None):
            raise ConfigError(
                f"a 'history_item' Attribution needs index and position; got index={self.index}, "
                f"position={self.position}"
            )

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "weight", "index", "name", "position"}`` (``None`` where the kind has no such field)."""
        return {
            "kind": self.kind,
            "weight": float(self.weight),
            "index": self.index,
            "name": self.name,
            "position": self.position,
        }


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` was recommended, according to ``method``: attributions, largest weight first."""

    item: int
    method: str
    attributions: tuple[Attribution, ...]

    def history_pairs(self) -> list[tuple[int, float]]:
        """``(history item index, weight)`` of the history-item attributions, largest first (the shape of
        ``explain_indices`` in attnrec 0.1)."""
        return [(int(a.index), float(a.weight)) for a in self.attributions if a.index is not None]

    def to_json(self) -> dict[str, Any]:
        """``{"item", "method", "attributions": [Attribution.to_json(), ...]}``."""
        return {
            "item": int(self.item),
            "method": self.method,
            "attributions": [a.to_json() for a in self.attributions],
        }


@runtime_checkable
class Explainer(Protocol):
    """An explanation method.

    Attributes:
        name: the method's name (``method=`` of :func:`attnrec.explain.explain`).
        item_specific: whether the explanations of two items recommended after one history can differ.
    """

    name: str
    item_specific: bool

    def applies_to(self, model: Any) -> bool:
        """Whether ``model`` offers what this method needs."""
        ...

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        """One explanation per item of ``items`` (item indices) recommended after ``history`` (item indices,
        oldest first) to ``user`` (its index; 0: anonymous), each with at most ``top`` attributions."""
        ...


def model_window(model: Any) -> int | None:
    """How many of the most recent history items ``model`` reads (``config.max_seq_len``), or None: all."""
    config = getattr(model, "config", None)
    window = getattr(config, "max_seq_len", None)
    return int(window) if isinstance(window, int) and window > 0 else None


def read_part(model: Any, history: np.ndarray) -> np.ndarray:
    """The part of ``history`` that ``model`` reads (its last ``max_seq_len`` items), as int64."""
    history = np.asarray(history, dtype=np.int64)
    window = model_window(model)
    return history if window is None else history[-window:]


def normalised_positive(relevance: np.ndarray) -> np.ndarray:
    """Rows of ``relevance`` with negative and non-finite entries set to 0, scaled to sum to 1 (rows without a
    positive entry stay 0)."""
    pos = np.where(np.isfinite(relevance), np.clip(relevance, 0.0, None), 0.0)
    totals = pos.sum(axis=-1, keepdims=True)
    return np.where(totals > 0, pos / np.where(totals > 0, totals, 1.0), 0.0)


class PositionExplainer(ABC):
    """An explainer that scores every position of the history the model reads.

    Subclasses implement :meth:`relevance`; weights (:meth:`position_weights`) are its positive part normalised
    to sum to 1, and :meth:`explain` sums the weights of repeated items and keeps the ``top`` largest.
    """

    name: str = ""
    item_specific: bool = True

    @abstractmethod
    def applies_to(self, model: Any) -> bool:
        """Whether ``model`` offers what this method needs."""

    @abstractmethod
    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        """``(len(items), n)`` relevance of each of the ``n`` positions of ``read_part(model, history)`` (oldest
        first) for each item: larger means the position drove the item more; any real value or ``-inf`` (not
        chosen). ``top``: how many positions the caller will use (a method may rank only that many). ``user``:
        the user's index (0: anonymous), for models whose scores depend on who asks (DIN's user features); a
        method that perturbs the history scores it for that user."""

    def position_weights(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        """``(len(items), n)`` non-negative weights over the read positions; rows sum to 1 (or are all 0 when
        no position has a positive relevance)."""
        return normalised_positive(self.relevance(model, history, items, top=top, user=user))

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        read = read_part(model, history)
        if len(read) == 0 or len(items) == 0:
            return [Explanation(int(i), self.name, ()) for i in items.tolist()]
        weights = self.position_weights(model, read, items, top=top, user=user)
        offset = len(history) - len(read)  # positions are reported in the caller's full history
        out = []
        for item, row in zip(items.tolist(), weights, strict=True):
            total: dict[int, float] = {}
            last: dict[int, int] = {}
            for pos, (idx, w) in enumerate(zip(read.tolist(), row.tolist(), strict=True)):
                total[idx] = total.get(idx, 0.0) + w
                last[idx] = offset + pos
            ranked = sorted(total.items(), key=lambda kv: (-kv[1], -last[kv[0]]))
            attributions = tuple(
                Attribution("history_item", float(w), index=int(idx), position=last[idx])
                for idx, w in ranked[:top]
                if w > 0
            )
            out.append(Explanation(int(item), self.name, attributions))
        return out
