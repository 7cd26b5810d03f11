"""A benchmark's record: the light files of its finished cells (results, not models).

A cell folder under ``--out`` holds the model weights and checkpoints, which are large and belong to one
machine; the report needs only a few small files of each cell (its marker, metrics, configuration, training
history and per-user or per-impression test arrays). ``attnrec benchmark --record DIR`` keeps a copy of those
files in ``DIR`` (the project keeps its records beside the configs, ``benchmarks/results/NAME``, committed), and
restores them into ``--out`` for every cell that is not finished there, so that on a fresh machine the report
and the docs section are written again from the record, and a changed default or a new model computes only its
own cells.

A restored cell has no model: the members of a fusion cell that the record lacks are therefore not restored but
computed again here, and a fusion cell whose member was restored anyway (a folder filled by an earlier run)
says so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.evaluation.benchmark import (
    CELL_JSON,
    CTR_TEST_NPZ,
    PER_USER_NPZ,
    Cell,
    is_finished,
    read_marker,
    same_trained_run,
)
from attnrec.io import read_json, write_json

RECORD_FILES = (CELL_JSON, "metrics.json", "config.json", "history.csv", PER_USER_NPZ, CTR_TEST_NPZ)
"""What a record keeps of a finished cell (the files the report reads)."""
RESTORED_KEY = "restored_from"
"""Marker field of a cell folder filled from a record: the record folder it came from."""


def record_folder(cell: Cell, out: Path, record: Path) -> Path:
    """Where ``record`` keeps ``cell`` (its folder's path relative to ``out``)."""
    return record / cell.folder.resolve().relative_to(out.resolve())


def is_restored(cell: Cell) -> bool:
    """True when the cell's folder was filled from a record (it has results but no model)."""
    return bool((read_marker(cell) or {}).get(RESTORED_KEY))


def _recorded_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / CELL_JSON
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except Exception:  # a torn or foreign file: not a record of this cell
        return None
    return data if isinstance(data, dict) else None


def _recorded_result(cell: Cell, out: Path, record: Path) -> dict[str, Any] | None:
    """The record's marker of ``cell`` when the record holds a finished result of this very configuration
    (the same key), else None."""
    src = record_folder(cell, out, record)
    marker = _recorded_marker(src)
    if marker is None or marker.get("status") not in ("done", "timeout"):
        return None
    if marker.get("status") == "done" and not (src / "metrics.json").is_file():
        return None
    if marker.get("key") != cell.key:  # a run that trained exactly as the cell would is restored under its key
        if marker.get("status") != "done" or not same_trained_run(cell, src):
            return None
        marker = {**marker, "key": cell.key}
    return marker


def restore_cell(cell: Cell, out: Path, record: Path) -> bool:
    """Fill ``cell``'s folder from ``record`` when the cell is not finished under ``out`` and the record holds
    a finished result of this very configuration (the same key); returns whether it did."""
    if is_finished(cell):
        return False
    marker = _recorded_result(cell, out, record)
    if marker is None:
        return False
    src = record_folder(cell, out, record)
    if (_recorded_marker(src) or {}).get("key") != cell.key:  # the same training under a new key: so recorded
        tmp = src / (CELL_JSON + ".tmp")
        write_json(tmp, marker)
        os.replace(tmp, src / CELL_JSON)
    if cell.folder.exists():
        shutil.rmtree(cell.folder)
    cell.folder.mkdir(parents=True)
    for name in RECORD_FILES[1:]:
        if (src / name).is_file():
            shutil.copyfile(src / name, cell.folder / name)
    tmp = cell.folder / (CELL_JSON + ".tmp")
    write_json(tmp, {**marker, RESTORED_KEY: str(src)})
    os.replace(tmp, cell.folder / CELL_JSON)  # the marker last: the folder counts only once it is whole
    return True


def save_cell(cell: Cell, out: Path, record: Path) -> bool:
    """Copy a finished, computed (not restored) cell's light files into ``record``, replacing what the record
    held for that cell; the arrays are stored compressed. Returns whether anything was written."""
    if not is_finished(cell) or is_restored(cell):
        return False
    dst = record_folder(cell, out, record)
    marker = read_marker(cell) or {}
    held = _recorded_marker(dst)
    if held == marker:
        return False
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in RECORD_FILES[1:]:
        path = cell.folder / name
        if not path.is_file():
            continue
        if name.endswith(".npz"):
            with np.load(path) as arrays:
                np.savez_compressed(tmp / name, **{k: arrays[k] for k in arrays.files})
        else:
            shutil.copyfile(path, tmp / name)
    write_json(tmp / CELL_JSON, marker)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return True


def sync_record(cells: list[Cell], out: Path, record: Path) -> tuple[int, int]:
    """Restore every unfinished cell the record holds (except the members of a cell that must be computed
    here, whose models it loads), then record every computed finished cell it lacks (or holds for another
    configuration). Returns ``(restored, saved)``."""
    # A member whose fusion (or other dependant) must be computed here is computed too: its model is needed.
    computed = [c for c in cells if not is_finished(c) and _recorded_result(c, out, record) is None]
    needed = {need.folder.resolve() for c in computed for need in c.needs}
    restored = sum(restore_cell(c, out, record) for c in cells if c.folder.resolve() not in needed)
    saved = sum(save_cell(c, out, record) for c in cells)
    return restored, saved
