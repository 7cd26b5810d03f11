"""What the endpoints do, without HTTP: live histories, scoring, explanations, event ingestion.

A user's live history is the training history the model was saved with (``model.history(user_idx)``) followed by
the user's stored events, oldest first (by event timestamp, then arrival). Events for items the model does not
know are stored and counted, shown by ``/history``, and skipped when scoring. Every recommendation reads
the user's events from the store (one indexed query); finished lists are cached under a key that includes the
user's event state (:attr:`LiveHistory.version`), so an acknowledged event always changes the key and is reflected
by the next recommendation, whichever process or thread wrote it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnrec.serving.holder import LoadedModel, ModelHolder, ModelLoadError
from attnrec.serving.metrics import ServiceMetrics
from attnrec.serving.schemas import (
    Because,
    EventIn,
    EventsResponse,
    RecommendationResponse,
    RecommendedItem,
)
from attnrec.serving.settings import ServeSettings
from attnrec.serving.store import Event, EventStore, StoredEvent, StoreUnavailableError

log = logging.getLogger("attnrec.serving")


class ModelNotReadyError(RuntimeError):
    """No model is loaded yet (the service answers 503)."""


@dataclass(frozen=True)
class LiveHistory:
    """A user's history: ``item_idx`` (known items, oldest first, what the model scores) and ``stored`` events."""

    user_idx: int
    item_idx: np.ndarray
    train_len: int
    stored: list[StoredEvent]
    times: np.ndarray | None = None
    """Epoch seconds of ``item_idx``'s events, for models with time inputs (``None`` for the others)."""

    @property
    def version(self) -> tuple[int, int, int]:
        """Changes whenever an event is added to the (bounded) stored part: count, largest and sum of ``seq``.
        The store is append-only and ``seq`` grows, so an unchanged version means an unchanged history."""
        seqs = [e.seq for e in self.stored]
        return len(seqs), max(seqs, default=0), sum(seqs)


class ResultCache:
    """LRU of finished recommendation lists, keyed by model version, user, k, explain and the user's
    :attr:`LiveHistory.version`: a new event changes the key, so a cached answer is never stale."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[Any, ...], RecommendationResponse] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> RecommendationResponse | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: RecommendationResponse) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class RecommendationService:
    """The state of one app: settings, the model holder, the event store and metrics."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        holder: ModelHolder | None = None,
        store_factory: Callable[[], EventStore] | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        from attnrec.serving.store import open_store

        self.settings = settings
        self.holder = holder or ModelHolder(settings.run_dir, settings.device)
        self.metrics = metrics or ServiceMetrics()
        self._store_factory = store_factory or (lambda: open_store(settings.db_url))
        self._store: EventStore | None = None
        self._store_lock = threading.Lock()
        self.store_error: str | None = None
        self.cache = ResultCache(settings.cache_size)
        self._readiness: tuple[bool, str] | None = None  # last state /ready reported (logged on change only)
        self._readiness_lock = threading.Lock()

    # ------------------------------------------------------------------ resources
    @property
    def store(self) -> EventStore:
        """The event store, opened on first use (and re-tried after a failure)."""
        store = self._store
        if store is not None:
            return store
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = self._store_factory()
                    self.store_error = None
                except StoreUnavailableError as exc:
                    self.store_error = str(exc)
                    raise
            return self._store

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def model(self) -> LoadedModel:
        loaded = self.holder.current
        if loaded is None:
            raise ModelNotReadyError(
                "the model is not loaded yet"
                if self.holder.last_error is None
                else f"no model loaded: {self.holder.last_error}"
            )
        return loaded

    def reload(self, run_dir: str | None = None) -> tuple[LoadedModel, LoadedModel | None]:
        try:
            loaded, previous = self.holder.reload(run_dir)
        except ModelLoadError as exc:
            self.metrics.reloads.labels(result="refused").inc()
            log.error("model reload refused: %s", exc)
            raise
        self.metrics.reloads.labels(result="ok").inc()
        self.metrics.set_model(loaded.version, previous.version if previous else None)
        log.info("serving model %s from %s", loaded.version, loaded.run_dir)
        return loaded, previous

    def reload_quietly(self, run_dir: str | None = None) -> None:
        """Reload, logging a refusal instead of raising (startup thread and SIGHUP)."""
        with contextlib.suppress(ModelLoadError):
            self.reload(run_dir)

    def ready(self) -> tuple[bool, str | None, str]:
        """``(ready, model_version, reason)``.

        Readiness probes poll this, so it logs only when the state changes: INFO ``not ready: model loading
        (not loaded yet)`` once, INFO ``ready: serving VERSION`` once; a failed load or a store outage is a
        WARNING, also once per change.
        """
        loaded = self.holder.current
        try:
            self.store.ping()
        except StoreUnavailableError as exc:
            return self._note_readiness(False, loaded.version if loaded else None, f"event store unavailable: {exc}")
        if loaded is None:
            error = self.holder.last_error
            reason = f"model not loaded: {error}" if error else "model loading (not loaded yet)"
            return self._note_readiness(False, None, reason)
        return self._note_readiness(True, loaded.version, "ready")

    def _note_readiness(self, ok: bool, version: str | None, reason: str) -> tuple[bool, str | None, str]:
        state = (ok, f"serving {version}" if ok else reason)
        with self._readiness_lock:
            changed, self._readiness = state != self._readiness, state
        if changed:
            quiet = ok or reason.startswith("model loading")
            log.log(logging.INFO if quiet else logging.WARNING, "%s: %s", "ready" if ok else "not ready", state[1])
        return ok, version, reason

    # ------------------------------------------------------------------ events
    def add_events(self, events: Sequence[EventIn]) -> EventsResponse:
        rows = [Event(e.user_id, e.item_id, e.timestamp, e.event_id) for e in events]
        result = self.store.add(rows, time.time())
        loaded = self.holder.current
        unknown_items = unknown_users = 0
        if loaded is not None:
            items, users = loaded.model.items_, loaded.model.users_
            assert items is not None and users is not None
            fresh = [e for e, new in zip(rows, result.new, strict=True) if new]
            unknown_items = sum(1 for e in fresh if e.item_id not in items)
            unknown_users = sum(1 for e in fresh if e.user_id not in users)
        self.metrics.events_stored.inc(result.stored)
        self.metrics.events_duplicate.inc(result.duplicates)
        self.metrics.events_unknown_item.inc(unknown_items)
        self.metrics.events_unknown_user.inc(unknown_users)
        return EventsResponse(
            stored=result.stored,
            duplicates=result.duplicates,
            unknown_items=unknown_items,
            unknown_users=unknown_users,
        )

    # ------------------------------------------------------------------ histories
    def live_history(self, loaded: LoadedModel, user_id: str) -> LiveHistory:
        model = loaded.model
        assert model.users_ is not None and model.items_ is not None
        uidx = model.users_.get(user_id)
        train = np.asarray(model.history(uidx) if uidx > 0 else np.zeros(0), dtype=np.int64)
        stored = self.store.user_events(user_id, self.settings.max_stored_history)
        padded = model.items_.indices([e.item_id for e in stored], unknown="pad")
        stored_idx = padded[padded > 0]
        item_idx = np.concatenate([train, stored_idx]) if len(stored_idx) else train
        times = None
        train_times = model.history_times(uidx) if model.uses_time else None
        if train_times is not None:
            stored_times = np.asarray([e.timestamp for e in stored], dtype=np.float64)[padded > 0].astype(np.int64)
            times = np.concatenate([np.asarray(train_times, dtype=np.int64), stored_times])
        return LiveHistory(uidx, item_idx, len(train), stored, times)

    # ------------------------------------------------------------------ recommendations
    def recommend_users(
        self,
        loaded: LoadedModel,
        user_ids: Sequence[str],
        k: int,
        explain: bool,
        user_features: Mapping[str, Any] | None = None,
    ) -> list[RecommendationResponse]:
        histories = [self.live_history(loaded, u) for u in user_ids]
        given = None if user_features is None else json.dumps(user_features, sort_keys=True)
        keys = [(loaded.version, u, k, explain, h.version, given) for u, h in zip(user_ids, histories, strict=True)]
        out: list[RecommendationResponse | None] = [self.cache.get(key) for key in keys]
        self.metrics.cache.labels(result="hit").inc(sum(r is not None for r in out))
        missing = [n for n, r in enumerate(out) if r is None]
        if missing:
            self.metrics.cache.labels(result="miss").inc(len(missing))
            uidx = np.asarray([histories[n].user_idx for n in missing], dtype=np.int64)
            times = [histories[n].times for n in missing]
            fresh = self._recommend(
                loaded,
                [user_ids[n] for n in missing],
                uidx,
                [histories[n].item_idx for n in missing],
                k,
                explain,
                None if any(t is None for t in times) else times,  # type: ignore[arg-type]
                user_features,
            )
            for n, new in zip(missing, fresh, strict=True):
                out[n] = new
                self.cache.put(keys[n], new)
        done = [r for r in out if r is not None]
        for response in done:
            self._count(response)
        return done

    def recommend_history(
        self,
        loaded: LoadedModel,
        item_ids: Sequence[str],
        k: int,
        explain: bool,
        user_features: Mapping[str, Any] | None = None,
    ) -> RecommendationResponse:
        items = loaded.model.items_
        assert items is not None
        hist = items.indices(item_ids, unknown="drop")
        response = self._recommend(loaded, [""], np.zeros(1, dtype=np.int64), [hist], k, explain, None, user_features)[
            0
        ]
        self._count(response)
        return response

    def _count(self, response: RecommendationResponse) -> None:
        fallback = response.fallback is not None
        self.metrics.recommendations.labels(fallback=str(fallback).lower()).inc()
        if fallback:
            self.metrics.fallbacks.inc()

    def _recommend(
        self,
        loaded: LoadedModel,
        user_ids: list[str],
        uidx: np.ndarray,
        histories: list[np.ndarray],
        k: int,
        explain: bool,
        times: list[np.ndarray] | None = None,
        user_features: Mapping[str, Any] | None = None,
    ) -> list[RecommendationResponse]:
        model = loaded.model
        # users the model cannot personalise: their demographic groups (fitted --users file, or given now)
        demographics = [model.demographic_groups(u, user_features) for u in user_ids]
        recs = model.recommend_indices(
            uidx, histories, k=k, exclude_seen=True, user_ids=user_ids, times=times, demographics=demographics
        )
        can_explain = explain and model.supports_explain
        out = []
        for row, user_id in enumerate(user_ids):
            keep = [
                j
                for j in range(recs.item_idx.shape[1])
                if recs.item_idx[row, j] > 0 and math.isfinite(float(recs.scores[row, j]))
            ]
            fallback = bool(recs.fallback[row])
            because: list[list[Because]] = [[] for _ in keep]
            if can_explain and not fallback and len(histories[row]) and keep:
                because = self._explain(loaded, histories[row], recs.item_idx[row, keep], int(uidx[row]))
            items = [
                RecommendedItem(
                    item_id=str(recs.items[row, j]),
                    score=float(recs.scores[row, j]),
                    because=because[n],
                    title=loaded.title(str(recs.items[row, j])),
                )
                for n, j in enumerate(keep)
            ]
            out.append(
                RecommendationResponse(
                    user_id=user_id,
                    model_version=loaded.version,
                    items=items,
                    fallback=recs.fallback_name(row),  # type: ignore[arg-type]
                )
            )
        return out

    def explain_method(self, model: Any) -> str | None:
        """The explanation method of ``explain=true`` for ``model``: the setting, with ``"auto"`` resolved to the
        model's own method (``model.explain_method``) when it declares one, else ``"occlusion"`` where it
        applies (else the model's default)."""
        method = self.settings.explain_method
        if method != "auto":
            return method
        from attnrec.explain.methods import methods_for

        own = getattr(model, "explain_method", None)
        if own:
            return str(own)
        return "occlusion" if "occlusion" in methods_for(model) else None

    def _explain(
        self, loaded: LoadedModel, history: np.ndarray, items: np.ndarray, user_idx: int = 0
    ) -> list[list[Because]]:
        model = loaded.model
        assert model.items_ is not None
        explained = model.explain_attributions(
            history,
            np.asarray(items, dtype=np.int64),
            top=self.settings.explain_top,
            method=self.explain_method(model),
            user_idx=user_idx,
        )
        out: list[list[Because]] = []
        for explanation in explained:
            reasons = []
            for a in explanation.attributions:
                if not math.isfinite(float(a.weight)):
                    continue
                if a.kind == "history_item":
                    if a.index is not None and int(a.index) > 0:
                        reasons.append(
                            Because(item_id=str(model.items_.id(int(a.index))), name=None, weight=float(a.weight))
                        )
                else:
                    reasons.append(Because(kind=a.kind, item_id=None, name=a.name, weight=float(a.weight)))
            out.append(reasons)
        return out

    def history_ids(self, loaded: LoadedModel, user_id: str) -> list[str]:
        """The training history followed by the stored events (unknown items included), oldest first."""
        history = self.live_history(loaded, user_id)
        assert loaded.model.items_ is not None
        train = history.item_idx[: history.train_len]
        return [str(i) for i in loaded.model.items_.ids(train)] + [e.item_id for e in history.stored]


def refuse_reason(exc: BaseException) -> str:
    return (
        str(exc) if isinstance(exc, ModelLoadError | StoreUnavailableError | ModelNotReadyError) else type(exc).__name__
    )
