"""Turning a batch of item-index histories into the sparse user x item rows the classic models multiply with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def history_matrix(histories: Sequence[np.ndarray], num_items: int, *, dtype: type = np.float32) -> sp.csr_matrix:
    """Binary ``(len(histories), num_items + 1)`` CSR matrix: 1 where the item occurs in the history.

    Repeated items count once; index 0 (padding) and out-of-range indices are ignored.
    """
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for r, h in enumerate(histories):
        h = np.unique(np.asarray(h, dtype=np.int64))
        h = h[(h > 0) & (h <= num_items)]
        rows.append(np.full(len(h), r, dtype=np.int64))
        cols.append(h)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    mat = sp.csr_matrix(
        (np.ones(len(row), dtype=dtype), (row, col)), shape=(len(histories), num_items + 1), dtype=dtype
    )
    mat.sort_indices()
    return mat


def csr_state(prefix: str, mat: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays (for ``_get_state``)."""
    return {
        f"{prefix}_data": np.asarray(mat.data),
        f"{prefix}_indices": np.asarray(mat.indices, dtype=np.int64),
        f"{prefix}_indptr": np.asarray(mat.indptr, dtype=np.int64),
        f"{prefix}_shape": np.asarray(mat.shape, dtype=np.int64),
    }


def csr_from_state(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of :func:`csr_state`."""
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )
