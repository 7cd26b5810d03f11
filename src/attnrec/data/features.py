"""Item side information: titles and categorical attributes.

:func:`load_item_features` reads MovieLens ``movies.dat`` (``id::title::Genre1|Genre2``), MovieLens-100K
``u.item`` (``|``-separated, 19 genre flags), S3-Rec ``*_item2attributes.json`` (``{"item": [attr, ...]}``) and
CSV / TSV / Parquet tables with an id column (``id_col``; by default the log's item column name or ``item_id``; a
``title`` column gives titles; every other column is an attribute field, multi-valued cells separated by ``|``).
Attributes are tokens ``"field=value"`` (``"genre=Comedy"``, ``"attribute=17"``).

``id_map`` re-keys the features through a two-column ``new_id original_id`` file (for example
``ml-1m/sas_to_original_items.txt``), so that a preprocessed log whose items were renumbered gets the titles and
genres of the original catalogue.

Malformed input raises :class:`~attnrec.errors.DataError` naming the file, the line or column, the rule and the
value. MovieLens metadata files are latin-1: they are decoded as UTF-8 when valid and as latin-1 otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from attnrec.data.loaders import (
    _ALIASES,
    _check_file,
    _column_hint,
    _decode_utf8,
    _find_column,
    _nonblank,
    _physical_lines,
    _read_bytes,
    _read_table_text,
    _short,
    _strip_header,
)
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import DataError, PersistenceError
from attnrec.io import read_json, write_json

FEATURE_FORMATS: tuple[str, ...] = ("movielens", "uitem", "item2attributes", "csv", "tsv", "parquet")
"""Item side-information formats understood by :func:`load_item_features`."""

FILE_NAME = "item_features.json"
"""Name of the saved features inside a run folder."""

_SAVE_FORMAT = "attnrec-item-features"
_SAVE_VERSION = 1

ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genre flags of ML-100K ``u.item``, in column order (used when no ``u.genre`` is next to the file)."""

_NO_GENRE = {"", "(no genres listed)"}


@dataclass(frozen=True)
class ItemFeatures:
    """Titles and attribute tokens per external item id.

    Attributes:
        titles: item id -> display title (items without a title are absent).
        attributes: item id -> attribute tokens ``"field=value"``, in file order, without duplicates.
        fields: attribute field names (the part before ``=``), in file order.
    """

    titles: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of items with a title or attributes."""
        return len(self.titles.keys() | self.attributes.keys())

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self.titles or str(item_id) in self.attributes

    @property
    def item_ids(self) -> list[str]:
        """Items described (attributes first-seen order, then items that only have a title)."""
        seen = dict.fromkeys(self.attributes)
        seen.update(dict.fromkeys(self.titles))
        return list(seen)

    def title(self, item_id: str) -> str | None:
        """The item's title, or ``None`` when unknown."""
        return self.titles.get(str(item_id))

    def attributes_of(self, item_id: str) -> list[str]:
        """The item's attribute tokens (empty when unknown)."""
        return list(self.attributes.get(str(item_id), []))

    def attribute_matrix(self, items: IdVocabulary) -> tuple[sp.csr_matrix, list[str]]:
        """Binary item x attribute matrix aligned with a vocabulary.

        Args:
            items: the item vocabulary (index ``i`` = row ``i``; row 0 is padding and stays empty).

        Returns:
            ``(matrix, names)``: a float32 CSR matrix of shape ``(len(items) + 1, len(names))`` with 1.0 where the
            item has the attribute, and the attribute tokens of the columns. Only attributes carried by at least one
            item of ``items`` get a column; columns are ordered by field (as in :attr:`fields`), then by value
            (numerically when the value is a number).
        """
        per_row: list[list[str]] = [self.attributes.get(ident, []) for ident in items.all_ids]
        names = sorted({tok for toks in per_row for tok in toks}, key=self._token_key)
        column = {name: j for j, name in enumerate(names)}
        rows: list[int] = []
        cols: list[int] = []
        for row, toks in enumerate(per_row, start=1):
            for tok in toks:
                rows.append(row)
                cols.append(column[tok])
        data = np.ones(len(rows), dtype=np.float32)
        mat = sp.csr_matrix(
            (data, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
            shape=(len(items) + 1, len(names)),
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        mat.sort_indices()
        return mat, names

    def _token_key(self, token: str) -> tuple[int, int, float, str]:
        name, _, value = token.partition("=")
        rank = self.fields.index(name) if name in self.fields else len(self.fields)
        try:
            number = float(value)
        except ValueError:
            return (rank, 1, 0.0, value)
        return (rank, 0, number, value) if math.isfinite(number) else (rank, 1, 0.0, value)

    # ------------------------------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "fields": list(self.fields),
            "titles": dict(self.titles),
            "attributes": {k: list(v) for k, v in self.attributes.items()},
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "item features") -> ItemFeatures:
        if not isinstance(data, dict) or data.get("format") != _SAVE_FORMAT:
            raise PersistenceError(f"{source}: not an attnrec item-features file (missing format {_SAVE_FORMAT!r})")
        if data.get("version") != _SAVE_VERSION:
            raise PersistenceError(
                f"{source}: unsupported item-features version {data.get('version')!r} (expected {_SAVE_VERSION})"
            )
        fields, titles, attributes = data.get("fields"), data.get("titles"), data.get("attributes")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise PersistenceError(f"{source}: 'fields' must be a list of strings")
        if not isinstance(titles, dict) or not all(isinstance(v, str) for v in titles.values()):
            raise PersistenceError(f"{source}: 'titles' must map item ids to strings")
        if not isinstance(attributes, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in attributes.values()
        ):
            raise PersistenceError(f"{source}: 'attributes' must map item ids to lists of strings")
        return cls(titles=dict(titles), attributes={k: list(v) for k, v in attributes.items()}, fields=list(fields))

    def save(self, path: str | Path) -> Path:
        """Write the features as JSON (``item_features.json`` in run folders); returns the path written."""
        path = Path(path)
        write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ItemFeatures:
        """Read features written by :meth:`save` (raises :class:`PersistenceError` on a bad file)."""
        return cls.from_json(read_json(path), source=str(path))


# --------------------------------------------------------------------------------------------------- loading
def load_item_features(
    path: str | Path,
    *,
    format: str | None = None,
    id_map: str | Path | None = None,
    id_col: str | None = None,
    log_item_col: str | None = None,
    separator: str | None = None,
) -> ItemFeatures:
    """Read item side information.

    Args:
        path: ``movies.dat``, ``u.item``, ``*_item2attributes.json``, or a CSV / TSV / Parquet table.
        format: one of :data:`FEATURE_FORMATS`; ``None`` detects it from the name and first line.
        id_map: optional ``new_id original_id`` file; the result is keyed by ``new_id`` (items without an entry
            are dropped).
        id_col: the item id column of a CSV / TSV / Parquet table (``--items-id-col``); an error for the other
            formats. ``None``: ``log_item_col`` when the table has it, else ``item_id``.
        log_item_col: the item column name of the interaction log (``--item-col``), tried before ``item_id``
            when ``id_col`` is ``None``; ignored by the formats without columns.
        separator: field separator of a CSV / TSV table (default ``,`` / TAB, or the one the header clearly
            uses); an error for the other formats.

    Raises:
        DataError: the file is missing or malformed, a parameter does not fit the file, or no item of ``id_map``
            is described by ``path``.
    """
    path = Path(path)
    _check_file(path)
    fmt = _resolve_feature_format(path, format, separator)
    if fmt not in ("csv", "tsv", "parquet"):
        given = [f"{k}={v!r}" for k, v in (("id_col", id_col), ("separator", separator)) if v is not None]
        if given:
            raise DataError(
                f"{path}: {', '.join(given)} applies only to csv, tsv and parquet item-feature files; this file is "
                f"read as format '{fmt}'"
            )
    if fmt == "parquet" and separator is not None:
        raise DataError(f"{path}: separator={separator!r} applies only to csv and tsv files; this file is Parquet")
    if fmt == "movielens":
        features = _read_movies_dat(path)
    elif fmt == "uitem":
        features = _read_uitem(path)
    elif fmt == "item2attributes":
        features = _read_item2attributes(path)
    else:
        features = _read_table(path, fmt, id_col=id_col, log_col=log_item_col, separator=separator)
    if id_map is not None:
        features = _remap(features, Path(id_map), path)
    return features


def _resolve_feature_format(path: Path, format: str | None, separator: str | None = None) -> str:
    if format is not None:
        fmt = format.strip().lower()
        if fmt not in FEATURE_FORMATS:
            raise DataError(
                f"unknown item-features format {format!r} for {path} (expected one of: {', '.join(FEATURE_FORMATS)})"
            )
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "item2attributes"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if path.name == "u.item":
        return "uitem"
    if separator is not None:
        return "tsv" if separator == "\t" else "csv"
    with path.open("rb") as fh:
        head = fh.read(1 << 14)
    if not head.strip():
        raise DataError(f"{path}: file is empty (no items)")
    first = head.decode("latin-1").lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    if "::" in first:
        return "movielens"
    if first.count("|") == 23:
        return "uitem"
    raise DataError(
        f"{path}: cannot detect the item-features format from line 1 {_short(first)}; pass format= / --items-format "
        f"(one of: {', '.join(FEATURE_FORMATS)})"
    )


def _decode_legacy(path: Path) -> str:
    """UTF-8 when the bytes are valid UTF-8, else latin-1 (MovieLens metadata files)."""
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text[1:] if text.startswith("\ufeff") else text


def _split_lines(path: Path, text: str, sep: str, expected: int, description: str) -> pl.DataFrame:
    lines = _nonblank(_physical_lines(text))
    if lines.height == 0:
        raise DataError(f"{path}: file is empty (no items)")
    tokens = lines.select("_loc", "line", pl.col("line").str.split(sep).alias("t"))
    bad = tokens.filter(pl.col("t").list.len() != expected).head(1)
    if bad.height:
        raise DataError(
            f"{path}: line {bad['_loc'][0]}: expected {expected} fields separated by {sep!r} ({description}), found "
            f"{len(bad['t'][0])}: {_short(bad['line'][0])}"
        )
    return tokens


def _check_ids(path: Path, ids: list[str], locs: list[int], where: str = "line") -> None:
    seen: dict[str, int] = {}
    for ident, loc in zip(ids, locs, strict=True):
        if not ident:
            raise DataError(f"{path}: {where} {loc}: item id must not be empty")
        if ident in seen:
            raise DataError(f"{path}: {where} {loc}: duplicate item id {ident!r} (first seen on {where} {seen[ident]})")
        seen[ident] = loc


def _read_movies_dat(path: Path) -> ItemFeatures:
    tokens = _split_lines(path, _decode_legacy(path), "::", 3, "id::title::Genre1|Genre2")
    ids = tokens["t"].list.get(0).str.strip_chars().to_list()
    titles = tokens["t"].list.get(1).str.strip_chars().to_list()
    genres = tokens["t"].list.get(2).str.strip_chars().to_list()
    _check_ids(path, ids, tokens["_loc"].to_list())
    attributes = {
        ident: list(dict.fromkeys(f"genre={g.strip()}" for g in gs.split("|") if g.strip() not in _NO_GENRE))
        for ident, gs in zip(ids, genres, strict=True)
    }
    return ItemFeatures(
        titles={i: t for i, t in zip(ids, titles, strict=True) if t},
        attributes=attributes,
        fields=["genre"],
    )


def _genre_names(path: Path) -> tuple[str, ...]:
    genre_file = path.with_name("u.genre")
    if not genre_file.is_file():
        return ML100K_GENRES
    tokens = _split_lines(genre_file, _decode_legacy(genre_file), "|", 2, "name|index")
    names = tokens["t"].list.get(0).str.strip_chars().to_list()
    indices = tokens["t"].list.get(1).str.strip_chars().to_list()
    out: dict[int, str] = {}
    for name, idx, loc in zip(names, indices, tokens["_loc"].to_list(), strict=True):
        if not idx.isdigit():
            raise DataError(f"{genre_file}: line {loc}: genre index must be an integer; found {idx!r}")
        out[int(idx)] = name
    if sorted(out) != list(range(len(ML100K_GENRES))):
        raise DataError(f"{genre_file}: genre indices must be 0..{len(ML100K_GENRES) - 1}; found {sorted(out)}")
    return tuple(out[i] for i in range(len(ML100K_GENRES)))


def _read_uitem(path: Path) -> ItemFeatures:
    n_genres = len(ML100K_GENRES)
    tokens = _split_lines(
        path,
        _decode_legacy(path),
        "|",
        5 + n_genres,
        f"id|title|release date|video release date|url|{n_genres} genre flags",
    )
    genres = _genre_names(path)
    ids = tokens["t"].list.get(0).str.strip_chars().to_list()
    titles = tokens["t"].list.get(1).str.strip_chars().to_list()
    locs = tokens["_loc"].to_list()
    _check_ids(path, ids, locs)
    flags = tokens.select(pl.col("t").list.slice(5, n_genres))["t"].to_list()
    attributes: dict[str, list[str]] = {}
    for ident, row, loc in zip(ids, flags, locs, strict=True):
        toks = []
        for j, flag in enumerate(row):
            flag = flag.strip()
            if flag not in ("0", "1"):
                raise DataError(
                    f"{path}: line {loc} (field {6 + j}, genre {genres[j]!r}): genre flag must be 0 or 1; "
                    f"found {flag!r}"
                )
            if flag == "1":
                toks.append(f"genre={genres[j]}")
        attributes[ident] = toks
    return ItemFeatures(
        titles={i: t for i, t in zip(ids, titles, strict=True) if t},
        attributes=attributes,
        fields=["genre"],
    )


def _read_item2attributes(path: Path) -> ItemFeatures:
    text = _decode_utf8(path, _read_bytes(path), hint="JSON files must be UTF-8")
    if not text.strip():
        raise DataError(f"{path}: file is empty (no items)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno} (column {exc.colno}): invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object mapping item ids to attribute lists; found {type(data).__name__}"
        )
    if not data:
        raise DataError(f"{path}: the JSON object is empty (no items)")
    attributes: dict[str, list[str]] = {}
    for key, values in data.items():
        ident = str(key).strip()
        if not ident:
            raise DataError(f"{path}: item id must not be empty (key {key!r})")
        if not isinstance(values, list):
            raise DataError(
                f"{path}: item {key!r}: attributes must be a list; found {type(values).__name__} {_short(values)}"
            )
        toks = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise DataError(
                    f"{path}: item {key!r}: attribute must be an integer or a string; found {_short(value)}"
                )
            toks.append(f"attribute={value}")
        attributes[ident] = list(dict.fromkeys(toks))
    return ItemFeatures(titles={}, attributes=attributes, fields=["attribute"])


def resolve_id_column(
    path: Path,
    found: list[str],
    *,
    id_col: str | None,
    log_col: str | None = None,
    kind: str = "item",
    flag: str = "--items-id-col",
    separator: str | None = None,
) -> str:
    """The id column of a feature table (reusable for user features: ``kind="user"``, ``flag="--users-id-col"``).

    ``id_col`` must be in ``found``; without it, ``log_col`` (the log's column name for the same ids) is used when
    present, else ``<kind>_id``. Spaces around ``id_col`` are ignored (the table's names are stripped too).

    Raises:
        DataError: the column is missing; names the columns found and suggests ``flag`` with a likely column.
    """
    listing = ", ".join(repr(c) for c in found)
    if id_col is not None:
        column = _find_column(found, id_col)
        if column is None:
            hint = _column_hint(found, (), flag, "id_col", sep=separator) if len(found) == 1 else ""
            raise DataError(
                f"{path}: column {id_col!r} given by id_col ({flag}) is not in the file (found: {listing}){hint}"
            )
        return column
    default = f"{kind}_id"
    for candidate in (log_col, default):
        if candidate is not None and _find_column(found, candidate) is not None:
            return _find_column(found, candidate) or candidate
    aliases = ((log_col,) if log_col else ()) + _ALIASES.get(kind, ())
    hint = _column_hint(found, aliases, flag, "id_col", sep=separator) or (
        f"; name the id column with {flag} NAME (id_col=...)"
    )
    wanted = repr(default) if log_col is None or log_col == default else f"{log_col!r} (as in the log) or {default!r}"
    raise DataError(f"{path}: missing required column {wanted} (found: {listing}){hint}")


def _read_table(
    path: Path, fmt: str, *, id_col: str | None, log_col: str | None, separator: str | None
) -> ItemFeatures:
    sep: str | None = None
    if fmt == "parquet":
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: is not a readable Parquet file ({first})") from None
        if "_loc" in frame.columns:
            raise DataError(f"{path}: column name '_loc' is reserved")
        frame, _ = _strip_header(path, frame)
        where = "row"
        frame = frame.with_row_index("_loc", offset=1)
    else:
        frame, where, sep, _ = _read_table_text(path, fmt, separator, what="items")
    found = [c for c in frame.columns if c != "_loc"]
    idc = resolve_id_column(path, found, id_col=id_col, log_col=log_col, separator=sep)
    if frame.height == 0:
        raise DataError(f"{path}: has a header but no rows (no items)")
    ids = [("" if v is None else str(v).strip()) for v in frame[idc].cast(pl.Utf8).to_list()]
    locs = [int(v) for v in frame["_loc"].to_list()]
    _check_ids(path, ids, locs, where)
    titles: dict[str, str] = {}
    if "title" in frame.columns and idc != "title":
        for ident, title in zip(ids, frame["title"].cast(pl.Utf8).to_list(), strict=True):
            if title is not None and title.strip():
                titles[ident] = title.strip()
    fields = [c for c in frame.columns if c not in (idc, "title", "_loc")]
    attributes: dict[str, list[str]] = {ident: [] for ident in ids}
    for name in fields:
        column = frame[name]
        values = column.to_list() if isinstance(column.dtype, pl.List) else column.cast(pl.Utf8).to_list()
        for ident, cell in zip(ids, values, strict=True):
            if cell is None:
                continue
            parts = [str(v) for v in cell if v is not None] if isinstance(cell, list) else str(cell).split("|")
            attributes[ident].extend(f"{name}={p.strip()}" for p in parts if p.strip())
    attributes = {k: list(dict.fromkeys(v)) for k, v in attributes.items()}
    return ItemFeatures(titles=titles, attributes=attributes, fields=fields)


def _remap(features: ItemFeatures, id_map: Path, source: Path) -> ItemFeatures:
    _check_file(id_map)
    text = _decode_utf8(id_map, _read_bytes(id_map))
    lines = _nonblank(_physical_lines(text))
    if lines.height == 0:
        raise DataError(f"{id_map}: file is empty (no id pairs)")
    tokens = lines.select("_loc", "line", pl.col("line").str.extract_all(r"\S+").alias("t"))
    bad = tokens.filter(pl.col("t").list.len() != 2).head(1)
    if bad.height:
        raise DataError(
            f"{id_map}: line {bad['_loc'][0]}: expected 2 whitespace-separated fields (new_id original_id), found "
            f"{len(bad['t'][0])}: {_short(bad['line'][0])}"
        )
    new_ids = tokens["t"].list.get(0).to_list()
    original = tokens["t"].list.get(1).to_list()
    locs = tokens["_loc"].to_list()
    seen: dict[str, int] = {}
    for new, loc in zip(new_ids, locs, strict=True):
        if new in seen:
            raise DataError(f"{id_map}: line {loc}: duplicate new id {new!r} (first seen on line {seen[new]})")
        seen[new] = loc
    titles = {new: features.titles[old] for new, old in zip(new_ids, original, strict=True) if old in features.titles}
    attributes = {
        new: list(features.attributes[old])
        for new, old in zip(new_ids, original, strict=True)
        if old in features.attributes
    }
    if not titles and not attributes:
        raise DataError(
            f"{id_map}: none of its original ids (second column, e.g. {original[0]!r}) is an item of {source}"
        )
    return ItemFeatures(titles=titles, attributes=attributes, fields=list(features.fields))
