"""The served model and its hot swap.

A :class:`ModelHolder` owns one :class:`LoadedModel` at a time. Requests read :attr:`ModelHolder.current` once
and keep that reference to the end, so a swap never changes the model under a request in flight: the old model
is freed when the last of them finishes. :meth:`ModelHolder.reload` loads and smoke-tests the new run folder
*before* swapping; a folder that fails (missing or corrupt files, an unsupported format version, a pickle, a
model that cannot score) raises :class:`ModelLoadError` and the current model keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnrec.base import MODEL_JSON, MODEL_WEIGHTS, VOCAB_JSON, Recommender
from attnrec.errors import AttnRecError

log = logging.getLogger("attnrec.serving")

ITEM_FEATURES_JSON = "item_features.json"
_PICKLE_PROTOCOLS = {2, 3, 4, 5}


class ModelLoadError(AttnRecError, ValueError):
    """A run folder cannot be served (the message names the folder, the file and the reason)."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to serve, with its version (``<folder name>-<12 hex digits of model.safetensors' SHA-256>``)."""

    model: Recommender
    version: str
    run_dir: Path
    titles: dict[str, str] | None
    loaded_at: float

    def title(self, item_id: str) -> str | None:
        return None if self.titles is None else self.titles.get(item_id)


def model_version(run_dir: Path) -> str:
    digest = hashlib.sha256()
    with open(run_dir / MODEL_WEIGHTS, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{run_dir.name}-{digest.hexdigest()[:12]}"


def check_run_folder(run_dir: Path) -> None:
    """Cheap checks before loading: the folder and its files exist and the weights are not a pickle."""
    if not run_dir.is_dir():
        raise ModelLoadError(f"{run_dir}: not a run folder (directory not found)")
    for name in (MODEL_JSON, MODEL_WEIGHTS, VOCAB_JSON):
        if not (run_dir / name).is_file():
            raise ModelLoadError(
                f"{run_dir}: {name} is missing (a run folder holds {MODEL_JSON}, {MODEL_WEIGHTS}, {VOCAB_JSON})"
            )
    with open(run_dir / MODEL_WEIGHTS, "rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        raise ModelLoadError(
            f"{run_dir / MODEL_WEIGHTS}: is a Python pickle, not safetensors; attnrec never loads pickles"
        )


def _load_titles(run_dir: Path) -> dict[str, str] | None:
    """Item titles from ``item_features.json`` when the run folder has one (None otherwise)."""
    path = run_dir / ITEM_FEATURES_JSON
    if not path.is_file():
        return None
    from attnrec.data.features import ItemFeatures

    return dict(ItemFeatures.load(path).titles) or None


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedModel:
    """Load, validate and smoke-test a run folder; the model scores on ``device``."""
    try:
        folder = Path(run_dir).expanduser().resolve()
        check_run_folder(folder)
    except (OSError, ValueError, RuntimeError) as exc:  # too long, not allowed, a loop, ...
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(f"{str(run_dir)[:200]}: not a usable run folder ({type(exc).__name__})") from None
    try:
        version = model_version(folder)
        model = Recommender.load(folder).to(device)
        # smoke test: an anonymous request and the first known user must score without error
        model.recommend_indices(np.zeros(1, dtype=np.int64), [np.zeros(0, dtype=np.int64)], k=1)
        if model.num_users > 0:
            model.recommend_indices(np.ones(1, dtype=np.int64), [model.history(1)], k=1)
        titles = _load_titles(folder)
    except ModelLoadError:
        raise
    except Exception as exc:  # boundary: any failure of a candidate model means "refuse it"
        raise ModelLoadError(f"{folder}: cannot be served ({type(exc).__name__}: {exc})") from None
    return LoadedModel(model, version, folder, titles, time.time())


class ModelHolder:
    """The currently served model; :meth:`reload` swaps it atomically after a successful load."""

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.device = device
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.loading = False

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def set(self, loaded: LoadedModel) -> None:
        """Serve ``loaded`` (tests and embedding applications)."""
        with self._lock:
            self._current = loaded
            self.run_dir = loaded.run_dir

    def reload(self, run_dir: str | Path | None = None) -> tuple[LoadedModel, LoadedModel | None]:
        """Load ``run_dir`` (default: the folder served now) and swap it in; returns ``(new, previous)``.

        Raises :class:`ModelLoadError` (the current model keeps serving).
        """
        with self._lock:
            folder = Path(run_dir) if run_dir is not None else self.run_dir
            self.loading = True
            try:
                loaded = load_run(folder, self.device)
            except ModelLoadError as exc:
                self.last_error = str(exc)
                raise
            finally:
                self.loading = False
            previous, self._current = self._current, loaded
            self.run_dir = loaded.run_dir
            self.last_error = None
            return loaded, previous
