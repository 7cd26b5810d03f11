"""Content-based recommendation from item features: TF-IDF item vectors and a weighted user profile.

M. Pazzani and D. Billsus. "Content-Based Recommendation Systems." The Adaptive Web, LNCS 4321, 2007.

Every item is a TF-IDF vector over its attribute tokens (``genre=Comedy``, ``attribute=17``, ...) and the words
of its title (``title=matrix``), L2-normalised; IDF is the smoothed ``log((1 + N) / (1 + df)) + 1`` over the items
of the catalogue. A history's profile is the weighted sum of its items' vectors (``profile="recency"``: weight
``0.5^(age / half_life)`` with age 0 for the most recent item; ``"uniform"``: 1 each) and an item's score is the
cosine between the profile and the item's vector. Nothing is learned from the interactions, so an item with
features but no events (a cold item in the catalogue) is ranked like any other, and items without features score
0. Explanations: the attributes a recommended item shares with the profile (method ``"attributes"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.features import ItemFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError
from attnrec.models._history import csr_from_state, csr_state
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import Choice, FloatRange, SearchSpace

CITATION = "Pazzani & Billsus. Content-Based Recommendation Systems. The Adaptive Web, LNCS 4321, 2007."

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
ENGLISH_STOP_WORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "he", "in", "is", "it", "its", "of", "on"}
    | {"or", "s", "that", "the", "this", "to", "was", "were", "will", "with"}
)
"""Function words left out of the title tokens by default (``title_stop_words='english'``): they match items
without saying anything about them, and would show up as reasons ("title=the")."""


class ContentConfig(ModelConfig):
    """Hyperparameters of :class:`ContentRecommender`."""

    title_words: bool = Field(True, description="Add the lower-cased words of the titles as tokens 'title=word'.")
    profile: Literal["recency", "uniform"] = Field(
        "recency", description="Weights of the history items in the profile: recency decay or 1 each."
    )
    half_life: float = Field(
        5.0, gt=0, description="Recency profile: an item this many events old counts half as much as the last."
    )
    min_df: int = Field(1, ge=1, description="Tokens carried by fewer items are dropped.")
    title_stop_words: Literal["english", "none"] = Field(
        "english",
        description="Title words left out: English function words ('the', 'of', 'a', ...; ENGLISH_STOP_WORDS) or none.",
    )

    search_space: ClassVar[SearchSpace] = {
        "profile": Choice(("recency", "uniform")),
        "half_life": FloatRange(1.0, 100.0, log=True),
        "title_words": Choice((True, False)),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


def item_tokens(
    features: ItemFeatures, items: IdVocabulary, *, title_words: bool, stop_words: frozenset[str] = frozenset()
) -> tuple[sp.csr_matrix, list[str]]:
    """Binary ``(len(items) + 1, m)`` item x token matrix (row 0 empty) and the ``m`` token names; title words in
    ``stop_words`` are left out."""
    attrs, names = features.attribute_matrix(items)
    if not title_words:
        return attrs, names
    words: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for row, ident in enumerate(items.all_ids, start=1):
        title = features.title(ident)
        for word in dict.fromkeys(_WORD.findall(title.lower()) if title else []):
            if word in stop_words:
                continue
            rows.append(row)
            cols.append(words.setdefault(f"title={word}", len(words)))
    titles = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(items) + 1, len(words)), dtype=np.float32
    )
    return sp.hstack([attrs, titles], format="csr"), names + list(words)


class ContentRecommender(Recommender):
    """Cosine between TF-IDF item vectors and a recency-weighted profile of the history (needs item features).

    Give the features with ``ContentRecommender(item_features=features)`` or
    :meth:`~attnrec.base.Recommender.set_features` (``attnrec train --items FILE``); fitting without them raises a
    one-line :class:`ConfigError`.
    """

    name = "content"
    config_class = ContentConfig
    citation = CITATION
    uses_history = True
    supports_explain = True
    explain_method = "attributes"
    needs_item_features = True
    config: ContentConfig

    def __init__(
        self,
        config: ModelConfig | dict[str, Any] | None = None,
        *,
        item_features: ItemFeatures | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(config, **kw)
        self.set_features(items=item_features)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        features: ItemFeatures | None = self.item_features_
        if features is None or len(features) == 0:
            raise ConfigError(
                "model 'content' needs item features: pass --items FILE (or ContentRecommender(item_features=...)); "
                "none were given"
            )
        assert self.items_ is not None
        tokens, names = item_tokens(
            features,
            self.items_,
            title_words=self.config.title_words,
            stop_words=ENGLISH_STOP_WORDS if self.config.title_stop_words == "english" else frozenset(),
        )
        df = np.asarray((tokens > 0).sum(axis=0)).ravel()
        keep = np.flatnonzero(df >= self.config.min_df)
        if len(keep) == 0 or tokens[:, keep].nnz == 0:
            raise ConfigError(
                f"model 'content': none of the {len(self.items_)} items of the data has features in the item "
                f"features given ({len(features)} items described; do their ids match the log's?)"
            )
        tokens, df = tokens[:, keep], df[keep]
        n = len(self.items_)
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        vectors = sp.csr_matrix(tokens @ sp.diags(idf), dtype=np.float32)
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        self.vectors_ = sp.csr_matrix(sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-30), 0.0)) @ vectors)
        self.vectors_.sort_indices()
        self.tokens_: list[str] = [names[j] for j in keep.tolist()]
        self.train_info_ = {
            "tokens": len(self.tokens_),
            "items_with_features": int((norms > 0).sum()),
            "items": n,
        }

    # ------------------------------------------------------------------ scoring
    def _weights(self, history: np.ndarray) -> np.ndarray:
        if self.config.profile == "uniform":
            return np.ones(len(history), dtype=np.float32)
        age = np.arange(len(history) - 1, -1, -1, dtype=np.float64)
        return (0.5 ** (age / self.config.half_life)).astype(np.float32)

    def profiles(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """``(len(histories), m)`` profile vectors (weighted sums of the history items' vectors, not normalised)."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for r, h in enumerate(histories):
            h = np.asarray(h, dtype=np.int64)
            ok = (h > 0) & (h <= self.num_items)
            rows.append(np.full(int(ok.sum()), r))
            cols.append(h[ok])
            vals.append(self._weights(h)[ok])
        weights = sp.csr_matrix(
            (
                np.concatenate(vals) if vals else [],
                (np.concatenate(rows) if rows else [], np.concatenate(cols) if cols else []),
            ),
            shape=(len(histories), self.num_items + 1),
            dtype=np.float32,
        )
        return sp.csr_matrix(weights @ self.vectors_)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        prof = self.profiles(histories)
        norms = np.sqrt(np.asarray(prof.multiply(prof).sum(axis=1)).ravel())
        out = np.asarray((self.vectors_ @ prof.T).T.todense(), dtype=np.float32)
        out /= np.where(norms > 0, norms, 1.0)[:, None].astype(np.float32)
        out[:, 0] = -np.inf
        return out

    # ------------------------------------------------------------------ explanations
    def attribute_contributions(self, history: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``((len(items), m), token names)``: each token's share ``x_i[t] v[t] / |v|`` of each item's score (they
        sum to the score) for the profile ``v`` of ``history``."""
        prof = self.profiles([history])
        norm = float(np.sqrt(prof.multiply(prof).sum()))
        rows = self.vectors_[np.asarray(items, dtype=np.int64)]
        contrib = np.asarray(rows.multiply(prof).todense(), dtype=np.float64) / (norm if norm > 0 else 1.0)
        return contrib, self.tokens_

    def history_contributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(items), n)``: each history position's share ``w_j x_j . x_i / |v|`` of each item's score."""
        history = np.asarray(history, dtype=np.int64)
        prof = self.profiles([history])
        norm = float(np.sqrt(prof.multiply(prof).sum()))
        sims = np.asarray((self.vectors_[np.asarray(items, dtype=np.int64)] @ self.vectors_[history].T).todense())
        return sims * self._weights(history)[None, :] / (norm if norm > 0 else 1.0)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return csr_state("vectors", self.vectors_)

    def _get_meta(self) -> dict[str, Any]:
        return {"tokens": self.tokens_, "train_info": self.train_info_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.vectors_ = csr_from_state("vectors", arrays)
        self.tokens_ = [str(t) for t in meta["tokens"]]
        self.train_info_ = dict(meta.get("train_info") or {})


__all__ = ["CITATION", "ENGLISH_STOP_WORDS", "ContentConfig", "ContentRecommender", "item_tokens"]
