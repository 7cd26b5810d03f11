"""Mapping between external string ids and internal integer indices (index 0 is reserved for padding)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from attnrec.errors import UnknownEntityError

PAD = 0


class IdVocabulary:
    """External string ids <-> indices ``1..n``; index 0 is padding and never an id.

    Indices are assigned in first-seen order of the ids given to :meth:`from_ids`.
    """

    def __init__(self, ids: Sequence[str], *, kind: str = "id") -> None:
        self.kind = kind
        self._ids: list[str] = [str(i) for i in ids]
        self._index: dict[str, int] = {}
        self._table: np.ndarray | None = None
        for pos, ident in enumerate(self._ids, start=1):
            if ident in self._index:
                raise ValueError(f"duplicate {kind} id {ident!r} in vocabulary")
            self._index[ident] = pos

    @classmethod
    def from_ids(cls, ids: Iterable[str], *, kind: str = "id") -> IdVocabulary:
        seen: dict[str, None] = {}
        for ident in ids:
            seen.setdefault(str(ident), None)
        return cls(list(seen), kind=kind)

    def __len__(self) -> int:
        """Number of real ids (padding excluded)."""
        return len(self._ids)

    @property
    def size(self) -> int:
        """Number of index slots including padding (``len(self) + 1``)."""
        return len(self._ids) + 1

    def __contains__(self, ident: object) -> bool:
        return str(ident) in self._index

    def get(self, ident: str, default: int = PAD) -> int:
        return self._index.get(str(ident), default)

    def index(self, ident: str) -> int:
        try:
            return self._index[str(ident)]
        except KeyError:
            raise UnknownEntityError(f"unknown {self.kind} id {ident!r}") from None

    def indices(self, ids: Iterable[str], *, unknown: str = "pad") -> np.ndarray:
        """Indices of ``ids``; unknown ids map to 0 (``unknown="pad"``), are dropped (``"drop"``) or raise."""
        if unknown not in {"pad", "drop", "raise"}:
            raise ValueError(f"unknown must be 'pad', 'drop' or 'raise'; got {unknown!r}")
        out = []
        for ident in ids:
            pos = self._index.get(str(ident))
            if pos is None:
                if unknown == "raise":
                    raise UnknownEntityError(f"unknown {self.kind} id {ident!r}")
                if unknown == "drop":
                    continue
                pos = PAD
            out.append(pos)
        return np.asarray(out, dtype=np.int64)

    def id(self, index: int) -> str:
        if not 1 <= int(index) <= len(self._ids):
            raise UnknownEntityError(f"{self.kind} index {index} is out of range 1..{len(self._ids)}")
        return self._ids[int(index) - 1]

    def ids(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """External ids for indices (vectorised); index 0 gives ``""``."""
        if self._table is None or len(self._table) != len(self._ids) + 1:
            self._table = np.asarray(["", *self._ids], dtype=object)
        return self._table[np.asarray(indices, dtype=np.int64)]

    @property
    def all_ids(self) -> list[str]:
        return list(self._ids)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "ids": self._ids}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IdVocabulary:
        ids = data["ids"]
        if not isinstance(ids, list):
            raise ValueError("vocabulary JSON must hold a list under 'ids'")
        return cls([str(i) for i in ids], kind=str(data.get("kind", "id")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdVocabulary) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdVocabulary(kind={self.kind!r}, size={len(self)})"
