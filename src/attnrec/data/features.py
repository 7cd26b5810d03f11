"""Item and user side information: titles, categorical / multi-valued attributes, numeric values and free text.

:func:`load_item_features` reads MovieLens ``movies.dat`` (``id::title::Genre1|Genre2``), MovieLens-100K
``u.item`` (``|``-separated, 19 genre flags), S3-Rec ``*_item2attributes.json`` (``{"item": [attr, ...]}``) and
CSV / TSV / Parquet tables with an id column (``id_col``; by default the log's item column name or ``item_id``; a
``title`` column gives titles; every other column is an attribute field, multi-valued cells separated by ``|``).
Attributes are tokens ``"field=value"`` (``"genre=Comedy"``, ``"attribute=17"``).

Field kinds (``kinds`` maps a column to one of :data:`FIELD_KINDS`; the fixed formats declare theirs):

* ``categorical`` / ``multi``: attribute tokens (``multi`` when some entity has several values of the field);
* ``numeric``: a float per entity (:attr:`ItemFeatures.numeric`), never tokenised; :meth:`ItemFeatures.table`
  gives models a quantile-bucket id too. MovieLens titles give ``year`` (``Toy Story (1995)``) and ``u.item``
  its release year; ``u.user`` gives ``age``;
* ``text``: free text per entity (:attr:`ItemFeatures.texts`), for TF-IDF and the like (titles are text too,
  in :attr:`ItemFeatures.titles`).

A CSV / Parquet column without a declared kind is ``multi`` when a cell holds ``|``; ``numeric`` when every
value is a number and some value is fractional or the column has more than :data:`NUMERIC_MIN_DISTINCT`
distinct values (declare id-like integer columns ``categorical``); ``text`` when most values are long phrases
(average >= 25 characters with spaces, mostly distinct); else ``categorical``.

:func:`load_user_features` reads MovieLens ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``; all
categorical, ``age`` being ML-1M's age-group code), ML-100K ``u.user`` (``id|age|gender|occupation|zip``; ``age``
numeric) and the same tables, into :class:`UserFeatures`.

``id_map`` re-keys the features through a two-column ``new_id original_id`` file (for example
``ml-1m/sas_to_original_items.txt``), so that a preprocessed log whose items were renumbered gets the titles and
genres of the original catalogue.

Malformed input raises :class:`~attnrec.errors.DataError` naming the file, the line or column, the rule and the
value. MovieLens metadata files are latin-1: they are decoded as UTF-8 when valid and as latin-1 otherwise.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

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
from attnrec.errors import ConfigError, DataError, PersistenceError
from attnrec.io import read_json, write_json

FEATURE_FORMATS: tuple[str, ...] = ("movielens", "uitem", "item2attributes", "csv", "tsv", "parquet")
"""Item side-information formats understood by :func:`load_item_features`."""

USER_FEATURE_FORMATS: tuple[str, ...] = ("movielens", "uuser", "csv", "tsv", "parquet")
"""User side-information formats understood by :func:`load_user_features`."""

FIELD_KINDS: tuple[str, ...] = ("categorical", "multi", "numeric", "text")
"""Kinds of feature fields."""

NUMERIC_MIN_DISTINCT = 20
"""An all-integer column with more distinct values than this is read as numeric (unless declared)."""

FILE_NAME = "item_features.json"
"""Name of the saved features inside a run folder."""

USERS_FILE_NAME = "user_features.json"
"""Name of the saved user features inside a run folder."""

_SAVE_FORMAT = "attnrec-item-features"
_SAVE_VERSION = 2
_READ_VERSIONS = (1, 2)

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
    """Side information per external id (items; :class:`UserFeatures` for users).

    Attributes:
        titles: id -> display title (ids without a title are absent).
        attributes: id -> attribute tokens ``"field=value"`` of the categorical and multi-valued fields, in file
            order, without duplicates.
        fields: the attribute (categorical / multi) field names (the part before ``=``), in file order.
        numeric: id -> ``{field: value}`` of the numeric fields (missing values absent).
        texts: id -> ``{field: text}`` of the free-text fields (empty texts absent).
        kinds: field -> kind (:data:`FIELD_KINDS`) of every field, attribute, numeric and text, in file order.
            Fields missing here but in :attr:`fields` are ``multi``.
    """

    titles: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    numeric: dict[str, dict[str, float]] = field(default_factory=dict)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    _format: ClassVar[str] = _SAVE_FORMAT
    _what: ClassVar[str] = "item"

    def __len__(self) -> int:
        """Number of entities with a title, attributes, numeric values or texts."""
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        key = str(item_id)
        return key in self.titles or key in self.attributes or key in self.numeric or key in self.texts

    @property
    def ids(self) -> list[str]:
        """Entities described (attributes first-seen order, then ids with only numeric values, texts, a title)."""
        seen = dict.fromkeys(self.attributes)
        for part in (self.numeric, self.texts, self.titles):
            seen.update(dict.fromkeys(part))
        return list(seen)

    @property
    def item_ids(self) -> list[str]:
        """Items described (the same as :attr:`ids`)."""
        return self.ids

    def kind_of(self, name: str) -> str:
        """The kind of field ``name`` (``multi`` for attribute fields saved before kinds existed)."""
        if name in self.kinds:
            return self.kinds[name]
        if name in self.fields:
            return "multi"
        raise KeyError(name)

    @property
    def numeric_fields(self) -> list[str]:
        """Names of the numeric fields, in file order."""
        return [f for f, k in self.kinds.items() if k == "numeric"]

    @property
    def text_fields(self) -> list[str]:
        """Names of the free-text fields, in file order."""
        return [f for f, k in self.kinds.items() if k == "text"]

    def title(self, item_id: str) -> str | None:
        """The item's title, or ``None`` when unknown."""
        return self.titles.get(str(item_id))

    def attributes_of(self, item_id: str) -> list[str]:
        """The item's attribute tokens (empty when unknown)."""
        return list(self.attributes.get(str(item_id), []))

    def value(self, ident: str, name: str) -> float | None:
        """The numeric value of field ``name`` for ``ident`` (``None`` when missing)."""
        return self.numeric.get(str(ident), {}).get(name)

    def text(self, ident: str, name: str) -> str:
        """The text of field ``name`` for ``ident`` (``""`` when missing)."""
        return self.texts.get(str(ident), {}).get(name, "")

    def table(self, vocab: IdVocabulary | Sequence[str], **kwargs: Any) -> FeatureTable:
        """The fields encoded as integer ids per row of ``vocab`` for models (:func:`build_feature_table`)."""
        return build_feature_table(self, vocab, **kwargs)

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
            "format": self._format,
            "version": _SAVE_VERSION,
            "fields": list(self.fields),
            "kinds": dict(self.kinds),
            "titles": dict(self.titles),
            "attributes": {k: list(v) for k, v in self.attributes.items()},
            "numeric": {k: dict(v) for k, v in self.numeric.items()},
            "texts": {k: dict(v) for k, v in self.texts.items()},
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str | None = None) -> Self:
        source = source or f"{cls._what} features"
        if not isinstance(data, dict) or data.get("format") != cls._format:
            raise PersistenceError(
                f"{source}: not an attnrec {cls._what}-features file (missing format {cls._format!r})"
            )
        if data.get("version") not in _READ_VERSIONS:
            raise PersistenceError(
                f"{source}: unsupported {cls._what}-features version {data.get('version')!r} (expected one of "
                f"{', '.join(map(str, _READ_VERSIONS))})"
            )
        fields, titles, attributes = data.get("fields"), data.get("titles"), data.get("attributes")
        numeric, texts, kinds = data.get("numeric", {}), data.get("texts", {}), data.get("kinds", {})
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise PersistenceError(f"{source}: 'fields' must be a list of strings")
        if not isinstance(titles, dict) or not all(isinstance(v, str) for v in titles.values()):
            raise PersistenceError(f"{source}: 'titles' must map ids to strings")
        if not isinstance(attributes, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in attributes.values()
        ):
            raise PersistenceError(f"{source}: 'attributes' must map ids to lists of strings")
        if not isinstance(kinds, dict) or not all(v in FIELD_KINDS for v in kinds.values()):
            raise PersistenceError(f"{source}: 'kinds' must map field names to one of {', '.join(FIELD_KINDS)}")
        if not isinstance(numeric, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())
            for v in numeric.values()
        ):
            raise PersistenceError(f"{source}: 'numeric' must map ids to {{field: number}} objects")
        if not isinstance(texts, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in texts.values()
        ):
            raise PersistenceError(f"{source}: 'texts' must map ids to {{field: text}} objects")
        return cls(
            titles=dict(titles),
            attributes={k: list(v) for k, v in attributes.items()},
            fields=list(fields),
            numeric={k: {f: float(x) for f, x in v.items()} for k, v in numeric.items()},
            texts={k: dict(v) for k, v in texts.items()},
            kinds=dict(kinds),
        )

    def save(self, path: str | Path) -> Path:
        """Write the features as JSON (``item_features.json`` / ``user_features.json`` in run folders)."""
        path = Path(path)
        write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read features written by :meth:`save` (raises :class:`PersistenceError` on a bad file)."""
        return cls.from_json(read_json(path), source=str(path))


@dataclass(frozen=True)
class UserFeatures(ItemFeatures):
    """User side information (demographics and other columns); the same fields as :class:`ItemFeatures`
    (``titles`` stays empty), saved as ``user_features.json``."""

    _format: ClassVar[str] = "attnrec-user-features"
    _what: ClassVar[str] = "user"

    @property
    def user_ids(self) -> list[str]:
        """Users described (the same as :attr:`ids`)."""
        return self.ids


# --------------------------------------------------------------------------------------------------- loading
def load_item_features(
    path: str | Path,
    *,
    format: str | None = None,
    id_map: str | Path | None = None,
    id_col: str | None = None,
    log_item_col: str | None = None,
    separator: str | None = None,
    kinds: Mapping[str, str] | None = None,
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
        kinds: column -> kind (:data:`FIELD_KINDS`) of a CSV / TSV / Parquet table, overriding the inference
            (module docstring); an error for the other formats.

    Raises:
        DataError: the file is missing or malformed, a parameter does not fit the file, or no item of ``id_map``
            is described by ``path``.
    """
    path = Path(path)
    _check_file(path)
    fmt = _resolve_feature_format(path, format, separator)
    if fmt not in ("csv", "tsv", "parquet"):
        given = [f"{k}={v!r}" for k, v in (("id_col", id_col), ("separator", separator), ("kinds", kinds)) if v]
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
        features = _read_table(path, fmt, id_col=id_col, log_col=log_item_col, separator=separator, kinds=kinds)
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


def _check_ids(path: Path, ids: list[str], locs: list[int], where: str = "line", *, kind: str = "item") -> None:
    seen: dict[str, int] = {}
    for ident, loc in zip(ids, locs, strict=True):
        if not ident:
            raise DataError(f"{path}: {where} {loc}: {kind} id must not be empty")
        if ident in seen:
            raise DataError(
                f"{path}: {where} {loc}: duplicate {kind} id {ident!r} (first seen on {where} {seen[ident]})"
            )
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
    years = {i: y for i, y in ((i, _title_year(t)) for i, t in zip(ids, titles, strict=True)) if y is not None}
    return ItemFeatures(
        titles={i: t for i, t in zip(ids, titles, strict=True) if t},
        attributes=attributes,
        fields=["genre"],
        numeric={i: {"year": y} for i, y in years.items()},
        kinds={"genre": "multi", "year": "numeric"},
    )


_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_YEAR_IN_DATE = re.compile(r"(\d{4})\s*$")


def _title_year(title: str) -> float | None:
    """The year of a MovieLens title ``"Toy Story (1995)"`` (``None`` without one)."""
    match = _YEAR_IN_TITLE.search(title)
    return float(match.group(1)) if match else None


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
    numeric: dict[str, dict[str, float]] = {}
    for ident, title, date in zip(ids, titles, tokens["t"].list.get(2).to_list(), strict=True):
        match = _YEAR_IN_DATE.search(date.strip())
        year = float(match.group(1)) if match else _title_year(title)
        if year is not None:
            numeric[ident] = {"year": year}
    return ItemFeatures(
        titles={i: t for i, t in zip(ids, titles, strict=True) if t},
        attributes=attributes,
        fields=["genre"],
        numeric=numeric,
        kinds={"genre": "multi", "year": "numeric"},
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
    return ItemFeatures(titles={}, attributes=attributes, fields=["attribute"], kinds={"attribute": "multi"})


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
    path: Path,
    fmt: str,
    *,
    id_col: str | None,
    log_col: str | None,
    separator: str | None,
    kinds: Mapping[str, str] | None = None,
    kind: str = "item",
    cls: type[ItemFeatures] = ItemFeatures,
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
        frame, where, sep, _ = _read_table_text(path, fmt, separator, what=f"{kind}s")
    found = [c for c in frame.columns if c != "_loc"]
    flag = f"--{kind}s-id-col"
    idc = resolve_id_column(path, found, id_col=id_col, log_col=log_col, kind=kind, flag=flag, separator=sep)
    if frame.height == 0:
        raise DataError(f"{path}: has a header but no rows (no {kind}s)")
    ids = [("" if v is None else str(v).strip()) for v in frame[idc].cast(pl.Utf8).to_list()]
    locs = [int(v) for v in frame["_loc"].to_list()]
    _check_ids(path, ids, locs, where, kind=kind)
    titles: dict[str, str] = {}
    has_title = kind == "item" and "title" in frame.columns and idc != "title"
    if has_title:
        for ident, title in zip(ids, frame["title"].cast(pl.Utf8).to_list(), strict=True):
            if title is not None and title.strip():
                titles[ident] = title.strip()
    names = [c for c in frame.columns if c not in (idc, "_loc") and not (has_title and c == "title")]
    declared = _check_kinds(path, kinds, names)
    attributes: dict[str, list[str]] = {ident: [] for ident in ids}
    numeric: dict[str, dict[str, float]] = {}
    texts: dict[str, dict[str, str]] = {}
    field_kinds: dict[str, str] = {}
    fields: list[str] = []
    for name in names:
        column = frame[name]
        is_list = isinstance(column.dtype, pl.List)
        cells = column.to_list() if is_list else column.cast(pl.Utf8).to_list()
        values: list[list[str]] = [
            []
            if cell is None
            else [str(v).strip() for v in cell if v is not None and str(v).strip()]
            if isinstance(cell, list)
            else [p.strip() for p in str(cell).split("|") if p.strip()]
            for cell in cells
        ]
        texts_of = [("" if c is None else str(c).strip()) for c in cells] if not is_list else []
        field_kind = declared.get(name) or _infer_kind(values, texts_of, is_list)
        field_kinds[name] = field_kind
        if field_kind == "numeric":
            for ident, vals, cell, loc in zip(ids, values, cells, locs, strict=True):
                if not vals:
                    continue
                number = _parse_number(vals[0]) if len(vals) == 1 else None
                if number is None:
                    raise DataError(
                        f"{path}: {where} {loc} (column {name!r}): a numeric field needs one number per {kind}; "
                        f"found {_short(cell)}"
                    )
                numeric.setdefault(ident, {})[name] = number
        elif field_kind == "text":
            for ident, text in zip(ids, texts_of, strict=True):
                if text:
                    texts.setdefault(ident, {})[name] = text
        else:
            fields.append(name)
            for ident, vals in zip(ids, values, strict=True):
                attributes[ident].extend(f"{name}={v}" for v in vals)
            if field_kind == "categorical" and any(len(v) > 1 for v in values):
                field_kinds[name] = "multi"
    attributes = {k: list(dict.fromkeys(v)) for k, v in attributes.items()}
    return cls(titles=titles, attributes=attributes, fields=fields, numeric=numeric, texts=texts, kinds=field_kinds)


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _infer_kind(values: list[list[str]], texts: list[str], is_list: bool) -> str:
    """The kind of an undeclared column (rules in the module docstring)."""
    if is_list or any(len(v) > 1 for v in values):
        return "multi"
    flat = [v[0] for v in values if v]
    if not flat:
        return "categorical"
    numbers = [_parse_number(v) for v in flat]
    if all(n is not None for n in numbers):
        fractional = any(n is not None and n != int(n) for n in numbers)
        if fractional or len(set(flat)) > NUMERIC_MIN_DISTINCT:
            return "numeric"
        return "categorical"
    filled = [t for t in texts if t]
    if filled:
        spaced = sum(1 for t in filled if " " in t) / len(filled)
        mean_len = sum(len(t) for t in filled) / len(filled)
        distinct = len(set(filled)) / len(filled)
        if spaced > 0.5 and mean_len >= 25 and distinct > 0.5:
            return "text"
    return "categorical"


def _check_kinds(path: Path, kinds: Mapping[str, str] | None, names: list[str]) -> dict[str, str]:
    if not kinds:
        return {}
    out: dict[str, str] = {}
    for name, kind in kinds.items():
        column = _find_column(names, name)
        if column is None:
            raise DataError(
                f"{path}: field kind given for column {name!r}, which is not a feature column of the file "
                f"(found: {', '.join(repr(c) for c in names)})"
            )
        if kind not in FIELD_KINDS:
            raise DataError(
                f"{path}: column {name!r}: field kind must be one of {', '.join(FIELD_KINDS)}; got {kind!r}"
            )
        out[column] = kind
    return out


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
    numeric = {
        new: dict(features.numeric[old]) for new, old in zip(new_ids, original, strict=True) if old in features.numeric
    }
    texts = {
        new: dict(features.texts[old]) for new, old in zip(new_ids, original, strict=True) if old in features.texts
    }
    if not titles and not attributes and not numeric and not texts:
        raise DataError(
            f"{id_map}: none of its original ids (second column, e.g. {original[0]!r}) is an item of {source}"
        )
    return ItemFeatures(
        titles=titles,
        attributes=attributes,
        fields=list(features.fields),
        numeric=numeric,
        texts=texts,
        kinds=dict(features.kinds),
    )


# --------------------------------------------------------------------------------------------------- users
ML1M_USER_FIELDS: tuple[str, ...] = ("gender", "age", "occupation", "zip")
"""Fields of ML-1M ``users.dat`` after the id (all categorical; ``age`` is ML-1M's age-group code)."""


def load_user_features(
    path: str | Path,
    *,
    format: str | None = None,
    id_col: str | None = None,
    log_user_col: str | None = None,
    separator: str | None = None,
    kinds: Mapping[str, str] | None = None,
) -> UserFeatures:
    """Read user side information.

    Args:
        path: MovieLens ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``), ML-100K ``u.user``
            (``id|age|gender|occupation|zip``, ``age`` numeric), or a CSV / TSV / Parquet table whose columns are
            fields (kinds inferred as for items, see the module docstring).
        format: one of :data:`USER_FEATURE_FORMATS`; ``None`` detects it from the name and first line.
        id_col: the user id column of a table (``--users-id-col``); ``None``: ``log_user_col`` when the table has
            it, else ``user_id``. An error for the fixed formats.
        log_user_col: the user column name of the interaction log (``--user-col``).
        separator: field separator of a CSV / TSV table; an error for the other formats.
        kinds: column -> kind of a table, overriding the inference; an error for the other formats.

    Raises:
        DataError: the file is missing or malformed (naming the file, line or column, rule and value), or a
            parameter does not fit the file.
    """
    path = Path(path)
    _check_file(path)
    fmt = _resolve_user_format(path, format, separator)
    if fmt in ("movielens", "uuser"):
        given = [f"{k}={v!r}" for k, v in (("id_col", id_col), ("separator", separator), ("kinds", kinds)) if v]
        if given:
            raise DataError(
                f"{path}: {', '.join(given)} applies only to csv, tsv and parquet user-feature files; this file is "
                f"read as format '{fmt}'"
            )
        return _read_users_dat(path) if fmt == "movielens" else _read_uuser(path)
    if fmt == "parquet" and separator is not None:
        raise DataError(f"{path}: separator={separator!r} applies only to csv and tsv files; this file is Parquet")
    features = _read_table(
        path,
        fmt,
        id_col=id_col,
        log_col=log_user_col,
        separator=separator,
        kinds=kinds,
        kind="user",
        cls=UserFeatures,
    )
    assert isinstance(features, UserFeatures)
    return features


def _resolve_user_format(path: Path, format: str | None, separator: str | None) -> str:
    if format is not None:
        fmt = format.strip().lower()
        if fmt not in USER_FEATURE_FORMATS:
            raise DataError(
                f"unknown user-features format {format!r} for {path} (expected one of: "
                f"{', '.join(USER_FEATURE_FORMATS)})"
            )
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    if path.name == "u.user":
        return "uuser"
    if path.name == "users.dat":
        return "movielens"
    if separator is not None:
        return "tsv" if separator == "\t" else "csv"
    with path.open("rb") as fh:
        head = fh.read(1 << 14)
    if not head.strip():
        raise DataError(f"{path}: file is empty (no users)")
    first = head.decode("latin-1").lstrip("\ufeff").splitlines()[0]
    if "::" in first:
        return "movielens"
    if first.count("|") == 4:
        return "uuser"
    raise DataError(
        f"{path}: cannot detect the user-features format from line 1 {_short(first)}; pass format= / --users-format "
        f"(one of: {', '.join(USER_FEATURE_FORMATS)})"
    )


def _read_users_dat(path: Path) -> UserFeatures:
    tokens = _split_lines(path, _decode_legacy(path), "::", 5, "UserID::Gender::Age::Occupation::Zip")
    return _fixed_users(path, tokens, ("gender", "age", "occupation", "zip"), numeric=())


def _read_uuser(path: Path) -> UserFeatures:
    tokens = _split_lines(path, _decode_legacy(path), "|", 5, "id|age|gender|occupation|zip")
    return _fixed_users(path, tokens, ("age", "gender", "occupation", "zip"), numeric=("age",))


def _fixed_users(path: Path, tokens: pl.DataFrame, names: tuple[str, ...], numeric: tuple[str, ...]) -> UserFeatures:
    ids = tokens["t"].list.get(0).str.strip_chars().to_list()
    locs = tokens["_loc"].to_list()
    _check_ids(path, ids, locs, kind="user")
    columns = {name: tokens["t"].list.get(j + 1).str.strip_chars().to_list() for j, name in enumerate(names)}
    attributes: dict[str, list[str]] = {ident: [] for ident in ids}
    values: dict[str, dict[str, float]] = {}
    for name in names:
        for ident, cell, loc in zip(ids, columns[name], locs, strict=True):
            if not cell:
                continue
            if name in numeric:
                number = _parse_number(cell)
                if number is None:
                    raise DataError(
                        f"{path}: line {loc} (field {names.index(name) + 2}, {name!r}): {name} must be a number; "
                        f"found {cell!r}"
                    )
                values.setdefault(ident, {})[name] = number
            else:
                attributes[ident].append(f"{name}={cell}")
    kinds = {name: ("numeric" if name in numeric else "categorical") for name in names}
    return UserFeatures(
        attributes=attributes,
        fields=[n for n in names if n not in numeric],
        numeric=values,
        kinds=kinds,
    )


# --------------------------------------------------------------------------------------------------- model input
@dataclass(frozen=True)
class FieldInfo:
    """One encoded field of a :class:`FeatureTable`.

    Attributes:
        name: the field name.
        kind: ``"categorical"``, ``"multi"`` or ``"numeric"`` (numeric fields are encoded by quantile bucket).
        values: the field's vocabulary; value id ``v >= 1`` is ``values[v - 1]``, id 0 is missing / unknown /
            padding. Numeric fields list their buckets (``"<1990"``, ``"[1990,1995)"``, ``">=2000"``).
        start: first column of the field in :attr:`FeatureTable.ids`.
        width: its number of columns (1, or the most values an entity has for a ``multi`` field, capped).
        offset: added to the field's value ids by :meth:`FeatureTable.global_ids` (one shared embedding table).
        edges: the bucket edges of a numeric field (value ``x`` is in bucket ``1 + #{edges <= x}``).
    """

    name: str
    kind: str
    values: tuple[str, ...]
    start: int
    width: int
    offset: int
    edges: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        """Embedding rows the field needs with its own table (``len(values) + 1``, row 0 = missing)."""
        return len(self.values) + 1

    @property
    def columns(self) -> slice:
        return slice(self.start, self.start + self.width)


@dataclass(frozen=True)
class FeatureTable:
    """Features encoded for models: integer field-value ids and raw numeric values per vocabulary row.

    Row ``r`` describes the entity of vocabulary index ``r`` (row 0 = padding: all zeros / NaN); rows of entities
    without features are zeros too (``present`` is false).

    Attributes:
        fields: the encoded fields, in column order (categorical and multi fields in the features' order,
            then the numeric fields' buckets). Text fields are not encoded (use :attr:`ItemFeatures.texts`).
        ids: ``(rows, num_columns)`` int64 value ids per field column (0 = missing / unknown / padding).
        numeric: ``(rows, len(numeric_fields))`` float32 raw values of the numeric fields, NaN when missing.
        numeric_fields: names of the numeric columns of :attr:`numeric`.
        present: ``(rows,)`` bool, true where the entity has features.
    """

    fields: tuple[FieldInfo, ...]
    ids: np.ndarray
    numeric: np.ndarray
    numeric_fields: tuple[str, ...]
    present: np.ndarray

    @property
    def num_columns(self) -> int:
        return int(self.ids.shape[1])

    @property
    def total_size(self) -> int:
        """Rows of one embedding table shared by all fields (:meth:`global_ids`; row 0 = missing)."""
        return 1 + sum(len(f.values) for f in self.fields)

    def field(self, name: str) -> FieldInfo:
        for info in self.fields:
            if info.name == name:
                return info
        raise KeyError(f"no encoded field {name!r} (fields: {', '.join(f.name for f in self.fields)})")

    def column_offsets(self) -> np.ndarray:
        """``(num_columns,)`` int64 offset of each column's field (:attr:`FieldInfo.offset`)."""
        out = np.zeros(self.num_columns, dtype=np.int64)
        for info in self.fields:
            out[info.columns] = info.offset
        return out

    def global_ids(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Ids into one shared table of :attr:`total_size` rows: ``offset + value id``, 0 stays 0.

        Args:
            rows: vocabulary indices to take (``None``: every row).
        """
        ids = self.ids if rows is None else self.ids[np.asarray(rows, dtype=np.int64)]
        return np.where(ids > 0, ids + self.column_offsets()[None, :], 0)

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)`` for a model's safetensors state and JSON meta (:meth:`from_state` reads them)."""
        arrays = {"ids": self.ids, "numeric": self.numeric, "present": self.present.astype(np.uint8)}
        meta = {
            "numeric_fields": list(self.numeric_fields),
            "fields": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "values": list(f.values),
                    "start": f.start,
                    "width": f.width,
                    "offset": f.offset,
                    "edges": list(f.edges),
                }
                for f in self.fields
            ],
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> FeatureTable:
        fields = tuple(
            FieldInfo(
                str(f["name"]),
                str(f["kind"]),
                tuple(str(v) for v in f["values"]),
                int(f["start"]),
                int(f["width"]),
                int(f["offset"]),
                tuple(float(e) for e in f.get("edges", ())),
            )
            for f in meta["fields"]
        )
        return cls(
            fields,
            np.asarray(arrays["ids"], dtype=np.int64),
            np.asarray(arrays["numeric"], dtype=np.float32),
            tuple(str(n) for n in meta["numeric_fields"]),
            np.asarray(arrays["present"]).astype(bool),
        )


def build_feature_table(
    features: ItemFeatures,
    vocab: IdVocabulary | Sequence[str],
    *,
    max_values: int = 16,
    buckets: int = 10,
) -> FeatureTable:
    """Encode ``features`` for the rows of ``vocab`` (row ``r`` = vocabulary index ``r``, row 0 padding).

    Value vocabularies are built from every entity of ``features`` (not only those in ``vocab``), ordered by
    value (numerically when numbers), so that the encoding of a cold entity is the same as in training.
    Numeric fields get ``buckets`` quantile buckets over the entities' values (fewer when values repeat).

    Args:
        features: item or user features.
        vocab: an :class:`IdVocabulary`, or external ids of rows ``1..n`` in order.
        max_values: columns of a multi-valued field (an entity's first ``max_values`` values are kept).
        buckets: quantile buckets of a numeric field (``>= 1``).
    """
    if max_values < 1 or buckets < 1:
        raise ConfigError(f"max_values and buckets must be >= 1; got {max_values} and {buckets}")
    row_ids = vocab.all_ids if isinstance(vocab, IdVocabulary) else [str(v) for v in vocab]
    n_rows = len(row_ids) + 1
    per_field: dict[str, dict[str, list[str]]] = {f: {} for f in features.fields}
    for ident, toks in features.attributes.items():
        for tok in toks:
            name, _, value = tok.partition("=")
            if name in per_field:
                per_field[name].setdefault(ident, []).append(value)
    infos: list[FieldInfo] = []
    columns: list[np.ndarray] = []
    start = offset = 0
    for name in features.fields:
        cells = per_field[name]
        values = tuple(sorted({v for vs in cells.values() for v in vs}, key=_value_key))
        index = {v: j for j, v in enumerate(values, start=1)}
        kind = features.kind_of(name)
        width = (
            1 if kind == "categorical" else max(1, min(max_values, max((len(v) for v in cells.values()), default=1)))
        )
        block = np.zeros((n_rows, width), dtype=np.int64)
        for row, ident in enumerate(row_ids, start=1):
            vals = cells.get(ident, [])[:width]
            block[row, : len(vals)] = [index[v] for v in vals]
        infos.append(FieldInfo(name, kind, values, start, width, offset))
        columns.append(block)
        start += width
        offset += len(values)
    numeric_fields = tuple(features.numeric_fields)
    numeric = np.full((n_rows, len(numeric_fields)), np.nan, dtype=np.float32)
    for j, name in enumerate(numeric_fields):
        for row, ident in enumerate(row_ids, start=1):
            number = features.numeric.get(ident, {}).get(name)
            if number is not None:
                numeric[row, j] = number
        every = np.asarray([v[name] for v in features.numeric.values() if name in v], dtype=np.float64)
        edges = _bucket_edges(every, buckets)
        labels = _bucket_labels(edges)
        col = numeric[:, j]
        block = np.where(np.isnan(col), 0, np.searchsorted(edges, col, side="right") + 1).astype(np.int64)
        infos.append(FieldInfo(name, "numeric", labels, start, 1, offset, tuple(float(e) for e in edges)))
        columns.append(block[:, None])
        start += 1
        offset += len(labels)
    ids = np.concatenate(columns, axis=1) if columns else np.zeros((n_rows, 0), dtype=np.int64)
    present = np.asarray([False, *(ident in features for ident in row_ids)], dtype=bool)
    return FeatureTable(tuple(infos), ids, numeric, numeric_fields, present)


def _value_key(value: str) -> tuple[int, float, str]:
    number = _parse_number(value)
    return (0, number, value) if number is not None else (1, 0.0, value)


def _bucket_edges(values: np.ndarray, buckets: int) -> np.ndarray:
    if len(values) == 0 or buckets == 1:
        return np.zeros(0, dtype=np.float64)
    qs = np.quantile(values, np.linspace(0, 1, buckets + 1)[1:-1])
    edges = np.unique(qs)
    return edges[edges > values.min()] if len(edges) else edges


def _bucket_labels(edges: np.ndarray) -> tuple[str, ...]:
    if len(edges) == 0:
        return ("all",)
    out = [f"<{edges[0]:g}"]
    out += [f"[{lo:g},{hi:g})" for lo, hi in itertools.pairwise(edges)]
    out.append(f">={edges[-1]:g}")
    return tuple(out)
