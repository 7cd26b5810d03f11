"""Loading and validating interaction logs.

:func:`load_interactions` reads a log in one of the supported formats and returns a validated polars frame in file
order with the columns ``user_id`` (Utf8), ``item_id`` (Utf8) and, when the log has them, ``timestamp`` (Int64
epoch seconds) and ``rating`` (Float64). :func:`read_interactions` indexes that frame as
:class:`~attnrec.data.interactions.Interactions`.

Formats (the names accepted by ``format=`` and ``--format``):

* ``csv``, ``tsv``, ``parquet``: a header naming the columns (default ``user_id``, ``item_id``, optional
  ``timestamp`` and ``rating``; ``user_col`` / ``item_col`` / ``time_col`` / ``rating_col`` override them).
* ``movielens``: ``ratings.dat``, ``user::item::rating::timestamp`` per line.
* ``udata``: MovieLens-100K ``u.data``, ``user<TAB>item<TAB>rating<TAB>timestamp`` per line, no header.
* ``sasrec``: ``user item`` per line (any whitespace), in chronological order, no header (SASRec / BERT4Rec).
* ``sequence``: ``user item1 item2 ...`` per line, one user per line, chronological (S3-Rec).

Every problem with the input raises :class:`~attnrec.errors.DataError` with a one-line message naming the file,
the line (1-based, counted in the file) or column, the rule broken and the value found. Interaction logs are
decoded strictly as UTF-8.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from attnrec.data.interactions import Interactions
from attnrec.data.quality import (
    DEDUP_POLICIES,
    Dedup,
    duplicate_mask,
    exact_duplicate_count,
    infer_rating_scale,
)
from attnrec.errors import ConfigError, DataError

FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "movielens", "udata", "sasrec", "sequence")
"""Interaction log formats understood by :func:`load_interactions`."""

TABULAR_FORMATS = ("csv", "tsv", "parquet")
DEFAULT_COLUMNS = {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"}

# Column names often used for the same thing; only used to suggest an override in error messages.
_ALIASES: dict[str, tuple[str, ...]] = {
    "user": (
        "user",
        "userid",
        "user_id",
        "uid",
        "users",
        "customer_id",
        "customerid",
        "visitorid",
        "session_id",
        "sessionid",
        "reviewerid",
        "customer",
        "client",
        "member",
        "account",
        "visitor",
        "listener",
        "reader",
        "viewer",
    ),
    "item": (
        "item",
        "itemid",
        "item_id",
        "iid",
        "items",
        "movieid",
        "movie_id",
        "product_id",
        "productid",
        "asin",
        "track_id",
        "artist_id",
        "business_id",
        "article_id",
        "sku",
        "product",
        "movie",
        "track",
        "song",
        "artist",
        "article",
        "book",
        "isbn",
        "video",
        "business",
    ),
    "time": ("time", "ts", "timestamp", "datetime", "date", "event_time", "unixreviewtime", "created_at"),
    "rating": ("rating", "ratings", "score", "stars", "overall", "value"),
}
_OVERRIDE_PARAM = {"user": "user_col", "item": "item_col", "time": "time_col", "rating": "rating_col"}
_OVERRIDE_FLAG = {"user": "--user-col", "item": "--item-col", "time": "--time-col", "rating": "--rating-col"}

_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 200


# ----------------------------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_interactions_with_report` found and did, for the CLI to print and ``config.json`` to keep.

    Attributes:
        path: the file read.
        format: the format it was read as (one of :data:`FORMATS`).
        separator: the field separator used (csv / tsv), ``None`` for the other formats.
        rows_read: events read and validated (before removing duplicates).
        rows_kept: events returned.
        duplicates_found: events that repeat an earlier (user, item) pair (``rows_read`` minus distinct pairs).
        exact_duplicates: rows identical in every column to an earlier row (a subset of ``duplicates_found``).
        duplicates_removed: events dropped by the ``dedup`` policy (0 with ``"none"``).
        dedup: the policy applied: ``"first"``, ``"last"`` or ``"none"``.
        rating_scale: ``(min, max)`` the ratings were checked against, ``None`` when the log has no ratings.
        rating_scale_source: ``"declared"`` (given by the caller), ``"inferred"`` (a standard scale recognised in
            the data), ``"observed"`` (no standard scale fits: the observed range, nothing rejected) or ``None``.
        rating_scale_inferred: ``rating_scale_source`` is ``"inferred"`` or ``"observed"``.
        notes: one-line human messages worth printing (duplicates, scale, detected separator, renamed columns).
    """

    path: str
    format: str
    separator: str | None
    rows_read: int
    rows_kept: int
    duplicates_found: int
    exact_duplicates: int
    duplicates_removed: int
    dedup: str
    rating_scale: tuple[float, float] | None
    rating_scale_source: str | None
    rating_scale_inferred: bool
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        return {
            "path": self.path,
            "format": self.format,
            "separator": self.separator,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "duplicates_found": self.duplicates_found,
            "exact_duplicates": self.exact_duplicates,
            "duplicates_removed": self.duplicates_removed,
            "dedup": self.dedup,
            "rating_scale": None if self.rating_scale is None else list(self.rating_scale),
            "rating_scale_source": self.rating_scale_source,
            "rating_scale_inferred": self.rating_scale_inferred,
            "notes": list(self.notes),
        }


def load_interactions_with_report(
    path: str | Path,
    *,
    format: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    separator: str | None = None,
    dedup: Dedup = "first",
    rating_scale: tuple[float, float] | None = None,
) -> tuple[pl.DataFrame, LoadReport]:
    """Read and validate an interaction log, remove repeated (user, item) events, check the ratings' scale.

    Args:
        path: the log file.
        format: one of :data:`FORMATS`; ``None`` detects it (see ``docs/data.md``).
        user_col, item_col, time_col, rating_col: column names for ``csv`` / ``tsv`` / ``parquet`` files
            (defaults ``user_id``, ``item_id``, ``timestamp``, ``rating``; the last two are optional unless
            given explicitly). Spaces around the file's column names are ignored.
        separator: field separator of a ``csv`` / ``tsv`` file (default ``,`` and TAB; when not given and the
            header has no such separator but consistently uses one of ``;``, TAB, ``|``, ``,``, that one).
        dedup: a repeated (user, item) pair is repeat consumption; ``"first"`` keeps each pair's earliest event
            (by timestamp, file order breaking ties or standing in for time), ``"last"`` its latest (so the latest
            rating wins), ``"none"`` keeps every event.
        rating_scale: declared ``(min, max)``: any rating outside is an error. ``None`` infers the scale (see
            :mod:`attnrec.data.quality`) and rejects the few ratings outside it.

    Returns:
        ``(frame, report)``: the frame in file order (kept events only) with ``user_id`` and ``item_id`` (Utf8,
        stripped, never empty) and, when present, ``timestamp`` (Int64 epoch seconds; ISO-8601 and other
        date-time strings are converted, naive times are taken as UTC) and ``rating`` (finite Float64), and a
        :class:`LoadReport`.

    Raises:
        DataError: the file is missing, unreadable, empty or malformed, a parameter does not fit the file, or a
            rating lies outside the declared or inferred scale.
        ConfigError: ``dedup`` or ``rating_scale`` is not a valid value.
    """
    path = Path(path)
    if dedup not in DEDUP_POLICIES:
        raise ConfigError(f"dedup (--dedup) must be one of {', '.join(DEDUP_POLICIES)}; got {dedup!r}")
    scale = None if rating_scale is None else _check_scale_param(rating_scale)
    _check_file(path)
    fmt = _resolve_format(path, format, separator)
    overrides = {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    if fmt not in TABULAR_FORMATS:
        given = [f"{_OVERRIDE_PARAM[k]}={v!r}" for k, v in overrides.items() if v is not None]
        if given:
            raise DataError(
                f"{path}: {', '.join(given)} applies only to csv, tsv and parquet files; this file is read as "
                f"format '{fmt}' whose columns are fixed"
            )
        if separator is not None:
            raise DataError(
                f"{path}: separator={separator!r} applies only to csv and tsv files; this file is read as "
                f"format '{fmt}'"
            )
    if fmt == "parquet":
        raw = _read_parquet(path, overrides)
    elif fmt in ("csv", "tsv"):
        raw = _read_delimited(path, fmt, separator, overrides)
    else:
        raw = _read_headerless(path, fmt)
    frame, locs = _validate(path, raw)
    notes = list(raw.notes)
    scale_source: str | None = None
    if "rating" in frame.columns:
        scale, scale_source, note = _check_rating_scale(path, raw, frame["rating"].to_numpy(), locs, scale)
        notes.append(note)
    elif scale is not None:
        notes.append(f"--rating-scale {_num(scale[0])},{_num(scale[1])} ignored: the log has no ratings")
        scale = None
    frame, counts, note = _deduplicate(frame, dedup)
    if note:
        notes.append(note)
    report = LoadReport(
        path=str(path),
        format=fmt,
        separator=raw.separator,
        rows_read=counts[0],
        rows_kept=frame.height,
        duplicates_found=counts[1],
        exact_duplicates=counts[2],
        duplicates_removed=counts[0] - frame.height,
        dedup=dedup,
        rating_scale=scale,
        rating_scale_source=scale_source,
        rating_scale_inferred=scale_source in ("inferred", "observed"),
        notes=tuple(notes),
    )
    return frame, report


def load_interactions(
    path: str | Path,
    *,
    format: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    separator: str | None = None,
    dedup: Dedup = "first",
    rating_scale: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """:func:`load_interactions_with_report` without the report (same arguments, same errors)."""
    frame, _ = load_interactions_with_report(
        path,
        format=format,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        rating_col=rating_col,
        separator=separator,
        dedup=dedup,
        rating_scale=rating_scale,
    )
    return frame


def read_interactions(
    path: str | Path,
    *,
    format: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    separator: str | None = None,
    dedup: Dedup = "first",
    rating_scale: tuple[float, float] | None = None,
) -> Interactions:
    """:func:`load_interactions` followed by :meth:`Interactions.from_frame` (ids indexed in first-seen order)."""
    frame = load_interactions(
        path,
        format=format,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        rating_col=rating_col,
        separator=separator,
        dedup=dedup,
        rating_scale=rating_scale,
    )
    return Interactions.from_frame(frame)


def parse_rating_scale(text: str) -> tuple[float, float]:
    """Parse ``--rating-scale MIN,MAX`` (``"1,5"``, ``"0.5,5"``, ``"1..5"``) into ``(min, max)``.

    Raises:
        ConfigError: not two finite numbers with ``MIN < MAX``.
    """
    parts = re.split(r"\s*(?:,|\.\.|:)\s*", text.strip())
    try:
        values = [float(p) for p in parts] if len(parts) == 2 and all(parts) else None
    except ValueError:
        values = None
    if values is None:
        raise ConfigError(f"--rating-scale must be MIN,MAX (two numbers, e.g. 1,5); got {text!r}")
    return _check_scale_param((values[0], values[1]))


def detect_format(path: str | Path, *, separator: str | None = None) -> str:
    """Guess the format of an interaction log from its extension and first lines (see ``docs/data.md``)."""
    path = Path(path)
    _check_file(path)
    return _detect_format(path, separator)


# ----------------------------------------------------------------------------------------------- raw frames
@dataclass
class _Raw:
    """Columns read from a file before validation.

    ``frame`` holds ``user_id``, ``item_id``, optional ``timestamp`` / ``rating`` and ``_loc`` (Int64 position);
    ``loc`` says what ``_loc`` counts ("line", "row" or "record"); ``names`` maps canonical columns to the names
    used in messages (``None`` for headerless formats); ``separator`` is the csv/tsv separator used; ``notes``
    are messages for the load report.
    """

    frame: pl.DataFrame
    loc: str
    names: dict[str, str | None]
    separator: str | None = None
    notes: list[str] = field(default_factory=list)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _decode_utf8(path: Path, data: bytes, *, hint: str = "") -> str:
    """Strict UTF-8 decoding; the error names the line and byte offset of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} at byte offset {exc.start} (column {column}) is "
            f"not valid UTF-8; {hint or 'the file must be UTF-8 encoded'}"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _physical_lines(text: str) -> pl.DataFrame:
    """Every line of ``text`` (split on ``\\n``, trailing ``\\r`` removed) with its 1-based ``_loc``."""
    lines = pl.Series("line", [text], dtype=pl.Utf8).str.split("\n").explode()
    frame = lines.to_frame().with_row_index("_loc", offset=1)
    frame = frame.with_columns(pl.col("_loc").cast(pl.Int64), pl.col("line").str.strip_chars_end("\r"))
    if text.endswith("\n"):  # the empty string after the final newline is not a line
        frame = frame.head(frame.height - 1)
    return frame


def _nonblank(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("line").str.strip_chars() != "")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# -------------------------------------------------------------------------------------- headerless formats
_HEADERLESS = {
    # format: (splitter, fields, field description completed by " format '...')", columns)
    "movielens": (
        "::",
        4,
        "fields separated by '::' (user::item::rating::timestamp,",
        ("user_id", "item_id", "rating", "timestamp"),
    ),
    "udata": (
        "\t",
        4,
        "TAB-separated fields (user item rating timestamp,",
        ("user_id", "item_id", "rating", "timestamp"),
    ),
    "sasrec": (None, 2, "whitespace-separated fields (user item,", ("user_id", "item_id")),
}


def _read_headerless(path: Path, fmt: str) -> _Raw:
    text = _decode_utf8(
        path,
        _read_bytes(path),
        hint="interaction logs are read as UTF-8 (MovieLens ratings are ASCII; re-encode other files, e.g. "
        "iconv -f latin1 -t utf-8)",
    )
    lines = _nonblank(_physical_lines(text))
    if lines.height == 0:
        raise DataError(f"{path}: file is empty (no interactions)")
    names: dict[str, str | None] = {"user_id": None, "item_id": None, "timestamp": None, "rating": None}
    if fmt == "sequence":
        tokens = lines.select("_loc", "line", pl.col("line").str.extract_all(r"\S+").alias("t"))
        bad = tokens.filter(pl.col("t").list.len() < 2).head(1)
        if bad.height:
            loc, line = bad["_loc"][0], bad["line"][0]
            raise DataError(
                f"{path}: line {loc}: expected a user id followed by at least one item id (format 'sequence'), "
                f"found 1 field: {_short(line.strip())}"
            )
        frame = tokens.select(
            "_loc",
            pl.col("t").list.first().alias("user_id"),
            pl.col("t").list.slice(1).alias("item_id"),
        ).explode("item_id")
        return _Raw(frame.select("user_id", "item_id", "_loc"), "line", names)

    splitter, expected, description, columns = _HEADERLESS[fmt]
    parts = (pl.col("line").str.extract_all(r"\S+") if splitter is None else pl.col("line").str.split(splitter)).alias(
        "t"
    )
    tokens = lines.select("_loc", "line", parts)
    bad = tokens.filter(pl.col("t").list.len() != expected).head(1)
    if bad.height:
        loc, line, found = bad["_loc"][0], bad["line"][0], len(bad["t"][0])
        raise DataError(
            f"{path}: line {loc}: expected {expected} {description} format '{fmt}'), found {found}: {_short(line)}"
        )
    frame = tokens.select(
        [pl.col("t").list.get(i).str.strip_chars().alias(name) for i, name in enumerate(columns)] + ["_loc"]
    )
    return _Raw(frame, "line", names)


# ---------------------------------------------------------------------------------------- tabular formats
_SEPARATORS = (",", ";", "\t", "|")
"""Separators recognised in a header when none is given (see :func:`_sniff_separator`)."""


def _separator_hint(column: str, sep: str | None) -> str:
    """Hint for a header read as one column: which other separator it seems to use."""
    counts = {c: column.count(c) for c in _SEPARATORS if c != sep}
    best = max(counts, key=lambda c: counts[c])
    if counts[best]:
        return f"; the file seems to use {best!r} as separator: pass --separator {best!r} (separator={best!r})"
    return "; only one column was found: is the separator right?"


def _column_hint(
    found: Sequence[str],
    aliases: Sequence[str],
    flag: str,
    param: str,
    *,
    taken: Sequence[str] = (),
    sep: str | None = None,
) -> str:
    """The ``"; did you mean ..."`` part of a missing-column error ("" when there is nothing to suggest)."""
    lower = {c.lower(): c for c in found}
    for alias in aliases:
        if alias.lower() in lower and lower[alias.lower()] not in taken:
            return f"; did you mean {flag} {lower[alias.lower()]!r} ({param}=...)?"
    if len(found) == 1:
        return _separator_hint(found[0], sep)
    if found and all(_is_number(c) for c in found):
        return "; line 1 looks like data, not a header: add a header line or pass the right --format"
    return ""


def _find_column(found: Sequence[str], given: str) -> str | None:
    """``given`` as named in ``found`` (exact, else ignoring surrounding spaces), or ``None``."""
    if given in found:
        return given
    stripped = given.strip()
    return stripped if stripped in found else None


def _resolve_columns(
    path: Path, found: Sequence[str], overrides: dict[str, str | None], sep: str | None = None
) -> dict[str, str]:
    """Map canonical roles (user/item/time/rating) to the file's column names, or raise a helpful error."""
    listing = ", ".join(repr(c) for c in found)
    chosen: dict[str, str] = {}
    for role in ("user", "item", "time", "rating"):
        given = overrides[role]
        if given is not None:
            column = _find_column(found, given)
            if column is None:
                hint = _separator_hint(found[0], sep) if len(found) == 1 else ""
                raise DataError(
                    f"{path}: column {given!r} given by {_OVERRIDE_PARAM[role]} ({_OVERRIDE_FLAG[role]}) is not "
                    f"in the file (found: {listing}){hint}"
                )
            chosen[role] = column
            continue
        default = DEFAULT_COLUMNS[role]
        if default in found:
            chosen[role] = default
        elif role in ("user", "item"):
            hint = _column_hint(
                found, _ALIASES[role], _OVERRIDE_FLAG[role], _OVERRIDE_PARAM[role], taken=list(chosen.values()), sep=sep
            )
            raise DataError(f"{path}: missing required column {default!r} (found: {listing}){hint}")
    return chosen


def _sniff_separator(content: pl.DataFrame, default: str) -> str | None:
    """A separator other than ``default`` that the header clearly uses, or ``None``.

    Only when the header has no ``default`` and exactly one of :data:`_SEPARATORS` occurs the same number of times
    (at least once) on the header and on each of the first sampled lines.
    """
    sample = content["line"].head(_SNIFF_LINES).to_list()
    header = sample[0]
    if default in header:
        return None
    fits = [
        c for c in _SEPARATORS if c != default and c in header and all(x.count(c) == header.count(c) for x in sample)
    ]
    return fits[0] if len(fits) == 1 else None


def _strip_header(path: Path, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Remove spaces around column names (``'user_id, item_id'`` headers); returns the frame and a note."""
    names = [c for c in frame.columns if c != "_loc"]
    changed = {c: c.strip() for c in names if c.strip() and c.strip() != c}
    if not changed:
        return frame, []
    final = [changed.get(c, c) for c in names]
    for i, name in enumerate(final):
        if name in final[:i]:
            first = names[final.index(name)]
            raise DataError(
                f"{path}: columns {first!r} and {names[i]!r} have the same name once the spaces around them are removed"
            )
    listing = ", ".join(repr(c) for c in changed)
    return frame.rename(changed), [f"removed the spaces around column names {listing}"]


def _read_table_text(
    path: Path, fmt: str, separator: str | None, *, what: str = "interactions"
) -> tuple[pl.DataFrame, str, str, list[str]]:
    """Read a csv/tsv file with a header: ``(frame with _loc, what _loc counts, separator used, notes)``.

    The separator is ``separator`` when given, else ``,`` (csv) or TAB (tsv) unless the header clearly uses
    another (:func:`_sniff_separator`). Field counts are checked against the header, and spaces around column
    names are removed.
    """
    if separator is not None and len(separator) != 1:
        raise DataError(f"{path}: separator must be a single character for csv/tsv files; got {separator!r}")
    data = _read_bytes(path)
    text = _decode_utf8(path, data)
    lines = _physical_lines(text)
    content = _nonblank(lines)
    if content.height == 0:
        raise DataError(f"{path}: file is empty (no header, no {what})")
    header_loc = int(content["_loc"][0])
    if header_loc != 1:
        raise DataError(f"{path}: line 1: expected a header line, found a blank line")
    notes: list[str] = []
    sep = separator
    if sep is None:
        default = "," if fmt == "csv" else "\t"
        sep = _sniff_separator(content, default)
        if sep is None:
            sep = default
        else:
            notes.append(f"read with separator {sep!r}, detected from the header (pass --separator to choose another)")
    header_fields = lines["line"][0].count(sep) + 1
    quoted = '"' in text
    if not quoted:
        counts = content.select("_loc", "line", (pl.col("line").str.count_matches(sep, literal=True) + 1).alias("n"))
        bad = counts.filter(pl.col("n") != header_fields).head(1)
        if bad.height:
            raise DataError(
                f"{path}: line {bad['_loc'][0]}: expected {header_fields} fields separated by {sep!r} (as in the "
                f"header), found {bad['n'][0]}: {_short(bad['line'][0])}"
            )
    frame, loc = _parse_csv(path, fmt, sep, data, lines)
    frame, stripped = _strip_header(path, frame)
    return frame, loc, sep, notes + stripped


def _read_delimited(path: Path, fmt: str, separator: str | None, overrides: dict[str, str | None]) -> _Raw:
    frame, loc, sep, notes = _read_table_text(path, fmt, separator)
    cols = _resolve_columns(path, [c for c in frame.columns if c != "_loc"], overrides, sep)
    if frame.height == 0:
        raise DataError(f"{path}: has a header but no data rows (no interactions)")
    return _Raw(_select_roles(frame, cols), loc, _role_names(cols), sep, notes)


def _parse_csv(path: Path, fmt: str, sep: str, data: bytes, lines: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Parse a delimited file with a header (polars) and number its records.

    Returns the frame with an Int64 ``_loc`` column and what ``_loc`` counts: physical ``"line"`` numbers when
    every record is one line (always true without quoted line breaks), else ``"record"`` numbers. Blank lines
    are dropped.
    """
    try:
        frame = pl.read_csv(
            io.BytesIO(data),
            separator=sep,
            has_header=True,
            infer_schema=False,
            quote_char='"',
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be parsed as {fmt} with separator {sep!r}: {first}") from None
    if "_loc" in frame.columns:
        raise DataError(f"{path}: column name '_loc' is reserved")
    data_lines = lines.slice(1)
    if frame.height == data_lines.height:
        frame = frame.with_columns(data_lines["_loc"].alias("_loc"))
        blank = data_lines.filter(pl.col("line").str.strip_chars() == "")["_loc"]
        if blank.len():
            frame = frame.filter(~pl.col("_loc").is_in(blank.implode()))
        return frame, "line"
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
    frame = frame.with_row_index("_loc", offset=1).with_columns(pl.col("_loc").cast(pl.Int64))
    return frame, "record"


def _read_parquet(path: Path, overrides: dict[str, str | None]) -> _Raw:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: is not a readable Parquet file ({first})") from None
    if "_loc" in frame.columns:
        raise DataError(f"{path}: column name '_loc' is reserved")
    frame, notes = _strip_header(path, frame)
    cols = _resolve_columns(path, frame.columns, overrides)
    if frame.height == 0:
        raise DataError(f"{path}: has no rows (no interactions)")
    frame = frame.with_row_index("_loc", offset=1).with_columns(pl.col("_loc").cast(pl.Int64))
    return _Raw(_select_roles(frame, cols), "row", _role_names(cols), None, notes)


_ROLE_TO_COLUMN = {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"}


def _select_roles(frame: pl.DataFrame, cols: dict[str, str]) -> pl.DataFrame:
    return frame.select([pl.col(src).alias(_ROLE_TO_COLUMN[role]) for role, src in cols.items()] + ["_loc"])


def _role_names(cols: dict[str, str]) -> dict[str, str | None]:
    return {_ROLE_TO_COLUMN[role]: src for role, src in cols.items()}


# ---------------------------------------------------------------------------------------------- validation
def _where(path: Path, raw: _Raw, loc: int, column: str) -> str:
    name = raw.names.get(column)
    col = f" (column {name!r})" if name is not None else ""
    return f"{path}: {raw.loc} {loc}{col}"


def _first_bad(frame: pl.DataFrame, mask: pl.Series, column: str) -> tuple[int, object]:
    row = frame.filter(mask).head(1)
    return int(row["_loc"][0]), row[column][0]


def _ids(path: Path, raw: _Raw, column: str, kind: str) -> pl.Series:
    frame = raw.frame
    series = frame[column]
    if series.dtype.is_float():
        # float ids that hold integers (Parquet written by pandas with NaN-able ints) become "12", not "12.0"
        finite = series.is_not_null() & series.is_finite()
        if bool((series.filter(finite) == series.filter(finite).floor()).all()):
            series = series.cast(pl.Int64, strict=False)
    if series.dtype != pl.Utf8:
        series = series.cast(pl.Utf8)
    series = series.str.strip_chars()
    empty = series.is_null() | (series == "")
    if empty.any():
        loc, value = _first_bad(frame.with_columns(series.alias(column)), empty, column)
        found = "null" if value is None and raw.loc == "row" else "an empty value"
        raise DataError(f"{_where(path, raw, loc, column)}: {kind} id must not be empty; found {found}")
    return series


def _timestamps(path: Path, raw: _Raw) -> pl.Series:
    frame = raw.frame
    series = frame["timestamp"]
    dtype = series.dtype
    if dtype == pl.Datetime or dtype == pl.Date:
        values = series.cast(pl.Datetime("us")) if dtype == pl.Date else series
        out = values.dt.epoch("s")
    elif dtype.is_integer():
        out = series.cast(pl.Int64)
    elif dtype.is_float():
        bad = series.is_not_null() & ~series.is_finite()
        if bad.any():
            loc, value = _first_bad(frame, bad, "timestamp")
            raise DataError(f"{_where(path, raw, loc, 'timestamp')}: timestamp must be finite; found {value!r}")
        out = series.floor().cast(pl.Int64)
    else:
        text = series.cast(pl.Utf8).str.strip_chars()
        blank = text.is_null() | (text == "")
        if blank.any():
            loc, _ = _first_bad(frame, blank, "timestamp")
            raise DataError(
                f"{_where(path, raw, loc, 'timestamp')}: timestamp must not be empty when the log has timestamps"
            )
        out = text.cast(pl.Int64, strict=False)
        if out.null_count():
            numeric = text.str.contains(_NUMERIC.pattern)
            if numeric.all():
                out = text.cast(pl.Float64, strict=False).floor().cast(pl.Int64, strict=False)
            elif numeric.any():
                loc, value = _first_bad(frame.with_columns(text.alias("timestamp")), ~numeric, "timestamp")
                raise DataError(
                    f"{_where(path, raw, loc, 'timestamp')}: timestamp is not a number like the other rows "
                    f"(epoch seconds); found {_short(value)}"
                )
            else:
                out = _parse_datetimes(path, raw, text)
    nulls = out.is_null()
    if nulls.any():
        loc, value = _first_bad(frame.with_columns(series.cast(pl.Utf8).alias("timestamp")), nulls, "timestamp")
        raise DataError(
            f"{_where(path, raw, loc, 'timestamp')}: timestamp cannot be parsed as epoch seconds or a date-time; "
            f"found {_short(value)}"
        )
    return out


def _parse_datetimes(path: Path, raw: _Raw, text: pl.Series) -> pl.Series:
    """Date-time strings (format inferred by polars from the data) to Int64 epoch seconds (naive = UTC)."""
    try:
        parsed = text.str.to_datetime(strict=False, time_unit="us")
    except pl.exceptions.PolarsError:
        loc = int(raw.frame["_loc"][0])
        raise DataError(
            f"{_where(path, raw, loc, 'timestamp')}: timestamp is neither epoch seconds nor a recognised "
            f"date-time (ISO-8601 such as '2024-05-01T12:30:00Z'); found {_short(text[0])}"
        ) from None
    if parsed.null_count():
        loc, value = _first_bad(raw.frame.with_columns(text.alias("timestamp")), parsed.is_null(), "timestamp")
        raise DataError(
            f"{_where(path, raw, loc, 'timestamp')}: timestamp does not parse as a date-time in the format of the "
            f"first row ({_short(text[0])}); found {_short(value)}"
        )
    return parsed.dt.epoch("s").cast(pl.Int64)


def _ratings(path: Path, raw: _Raw) -> pl.Series:
    frame = raw.frame
    series = frame["rating"]
    if series.dtype.is_numeric():
        out = series.cast(pl.Float64)
        if out.is_null().any():
            loc, _ = _first_bad(frame, out.is_null(), "rating")
            raise DataError(f"{_where(path, raw, loc, 'rating')}: rating must be a number; found a missing value")
    else:
        text = series.cast(pl.Utf8).str.strip_chars()
        blank = text.is_null() | (text == "")
        if blank.any():
            loc, _ = _first_bad(frame, blank, "rating")
            raise DataError(f"{_where(path, raw, loc, 'rating')}: rating must be a number; found an empty value")
        out = text.cast(pl.Float64, strict=False)
        if out.is_null().any():
            loc, value = _first_bad(frame.with_columns(text.alias("rating")), out.is_null(), "rating")
            raise DataError(f"{_where(path, raw, loc, 'rating')}: rating must be a number; found {_short(value)}")
    bad = ~out.is_finite()
    if bad.any():
        loc, value = _first_bad(frame.with_columns(out.alias("rating")), bad, "rating")
        raise DataError(f"{_where(path, raw, loc, 'rating')}: rating must be a finite number; found {value!r}")
    return out


def _validate(path: Path, raw: _Raw) -> tuple[pl.DataFrame, np.ndarray]:
    """The validated frame and the ``(n,)`` int64 locations (``raw.loc`` numbers) of its rows."""
    columns = [_ids(path, raw, "user_id", "user"), _ids(path, raw, "item_id", "item")]
    if "timestamp" in raw.frame.columns:
        columns.append(_timestamps(path, raw).alias("timestamp"))
    if "rating" in raw.frame.columns:
        columns.append(_ratings(path, raw).alias("rating"))
    return pl.DataFrame(columns), raw.frame["_loc"].cast(pl.Int64).to_numpy()


# ------------------------------------------------------------------------------------ scale and duplicates
def _num(value: float) -> str:
    """A rating or bound as a user would write it: ``5``, ``0.5``, ``99999999``, ``1e+300``."""
    if math.isfinite(value) and value == math.floor(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _check_scale_param(scale: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in scale)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ConfigError(f"rating_scale (--rating-scale) must be (MIN, MAX); got {scale!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(
            f"rating_scale (--rating-scale) must be two finite numbers with MIN < MAX; got {_num(lo)},{_num(hi)}"
        )
    return (lo, hi)


def _check_rating_scale(
    path: Path, raw: _Raw, ratings: np.ndarray, locs: np.ndarray, declared: tuple[float, float] | None
) -> tuple[tuple[float, float], str, str]:
    """Check the ratings against the declared or inferred scale; returns ``(scale, source, note)``."""
    n = len(ratings)
    name = raw.names.get("rating")
    where_col = f" (column {name!r})" if name is not None else ""
    if declared is not None:
        lo, hi = declared
        bad = np.flatnonzero((ratings < lo) | (ratings > hi))
        if bad.size:
            first = int(bad[0])
            raise DataError(
                f"{path}: {raw.loc} {int(locs[first])}{where_col}: rating {_num(float(ratings[first]))} is outside "
                f"the declared rating scale {_num(lo)}..{_num(hi)} (rating_scale / --rating-scale); "
                f"{bad.size:,} of {n:,} ratings are"
            )
        return declared, "declared", f"ratings checked against the declared scale {_num(lo)}..{_num(hi)}"
    inferred = infer_rating_scale(ratings)
    lo, hi = inferred.scale
    if not inferred.standard:
        return (
            inferred.scale,
            "observed",
            f"ratings fit no standard scale (observed {_num(lo)}..{_num(hi)}: counts or weights?), so none was "
            "rejected; pass --rating-scale MIN,MAX to enforce one",
        )
    if inferred.outliers.size:
        first = int(inferred.outliers[0])
        others = [f"{raw.loc} {int(locs[i])}" for i in inferred.outliers[1:4]]
        also = f"; also {', '.join(others)}" + (", ..." if inferred.outliers.size > 4 else "") if others else ""
        raise DataError(
            f"{path}: {raw.loc} {int(locs[first])}{where_col}: rating {_num(float(ratings[first]))} is outside the "
            f"inferred rating scale {_num(lo)}..{_num(hi)} ({inferred.outliers.size:,} of {n:,} ratings are{also}); "
            "pass --rating-scale MIN,MAX to declare another scale"
        )
    return (
        inferred.scale,
        "inferred",
        f"ratings on the inferred scale {_num(lo)}..{_num(hi)} (pass --rating-scale MIN,MAX to declare another)",
    )


def _deduplicate(frame: pl.DataFrame, dedup: Dedup) -> tuple[pl.DataFrame, tuple[int, int, int], str]:
    """Apply the policy; returns the frame, ``(rows_read, duplicates_found, exact_duplicates)`` and a note."""
    rows = frame.height
    repeated = duplicate_mask(frame, dedup)
    found = int(repeated.sum())
    if not found:
        return frame, (rows, 0, 0), ""
    exact = exact_duplicate_count(frame)
    what = f"found {found:,} repeated (user, item) events ({exact:,} exact copies of an earlier row)"
    if dedup == "none":
        return frame, (rows, found, exact), f"{what}; kept them all (--dedup none)"
    kept = frame.filter(pl.Series(~repeated))
    return kept, (rows, found, exact), f"{what}; kept the {dedup} of each (--dedup {dedup})"


# ----------------------------------------------------------------------------------------------- detection
def _resolve_format(path: Path, format: str | None, separator: str | None) -> str:
    if format is None:
        return _detect_format(path, separator)
    fmt = format.strip().lower()
    if fmt not in FORMATS:
        raise DataError(f"unknown format {format!r} for {path} (expected one of: {', '.join(FORMATS)})")
    return fmt


def _is_number(token: str) -> bool:
    return bool(_NUMERIC.match(token.strip()))


def _detect_format(path: Path, separator: str | None) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if separator is not None:
        return "tsv" if separator == "\t" else "csv"
    truncated = len(head) > _SNIFF_BYTES
    text = head[:_SNIFF_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.split("\n")
    if truncated:
        lines = lines[:-1]  # possibly cut in the middle
    lines = [line.rstrip("\r") for line in lines if line.strip()][:_SNIFF_LINES]
    if not lines:
        raise DataError(f"{path}: file is empty (no interactions)")
    first = lines[0]
    if "::" in first:
        return "movielens"
    if "\t" in first:
        fields = first.split("\t")
        numeric = [_is_number(f) for f in fields]
        if not any(numeric):
            return "tsv"  # a header line
        if len(fields) == 4:
            return "udata"  # headers have no numeric column names; a bad rating is reported, not misdetected
    elif "," in first or ";" in first:
        return "csv"  # the separator of a ';' file is detected from its header when read
    counts = [len(line.split()) for line in lines]
    if all(c == 2 for c in counts):
        return "sasrec"
    if max(counts) > 2 and len(set(counts)) > 1:
        return "sequence"
    raise DataError(
        f"{path}: cannot detect the format from line 1 {_short(first)} ({counts[0]} whitespace-separated fields "
        f"on every sampled line); pass format= / --format (one of: {', '.join(FORMATS)})"
    )
