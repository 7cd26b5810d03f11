"""Load-time checks: repeated (user, item) events, the rating scale, separator/header hints and the load report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from log_files import error_of, write

from attnrec.data.loaders import (
    LoadReport,
    detect_format,
    load_interactions,
    load_interactions_with_report,
    parse_rating_scale,
    read_interactions,
)
from attnrec.data.quality import STANDARD_RATING_SCALES, infer_rating_scale, tolerated_outliers
from attnrec.errors import ConfigError


def ratings_csv(tmp_path: Path, ratings: list[str], *, name: str = "log.csv", column: str = "rating") -> Path:
    rows = "".join(f"u{i % 7},i{i},{1000 + i},{r}\n" for i, r in enumerate(ratings))
    return write(tmp_path, name, f"user_id,item_id,timestamp,{column}\n{rows}")


def one_to_five(n: int) -> list[str]:
    return [str(1 + (i * 7) % 5) for i in range(n)]


# ----------------------------------------------------------------------------------------------- duplicates
def test_a_log_with_every_row_twice_loads_once_and_says_so(tmp_path: Path) -> None:
    rows = "".join(f"u{i % 3},i{i},{100 + i},{1 + i % 5}\n" for i in range(10))
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\n" + rows + rows)
    frame, report = load_interactions_with_report(path)
    assert frame.height == 10
    assert (
        frame.rows()
        == load_interactions(write(tmp_path, "once.csv", "user_id,item_id,timestamp,rating\n" + rows)).rows()
    )
    assert (report.rows_read, report.rows_kept) == (20, 10)
    assert (report.duplicates_found, report.exact_duplicates, report.duplicates_removed) == (10, 10, 10)
    assert report.dedup == "first"
    assert any(
        "found 10 repeated (user, item) events" in n and "kept the first of each (--dedup first)" in n
        for n in report.notes
    )
    # the default of load_interactions and read_interactions is the same policy
    assert load_interactions(path).height == 10 and len(read_interactions(path)) == 10


def test_first_and_last_follow_timestamps_not_file_order(tmp_path: Path) -> None:
    # (u1, a) is rated 2 at t=20 (line 2) and 5 at t=10 (line 3): the earliest is the second line of the file
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\nu1,a,20,2\nu1,a,10,5\nu1,b,15,3\nu2,a,5,4\n")
    first = load_interactions(path, dedup="first")
    last = load_interactions(path, dedup="last")
    assert first.rows() == [("u1", "a", 10, 5.0), ("u1", "b", 15, 3.0), ("u2", "a", 5, 4.0)]
    assert last.rows() == [("u1", "a", 20, 2.0), ("u1", "b", 15, 3.0), ("u2", "a", 5, 4.0)]  # latest rating wins
    everything, report = load_interactions_with_report(path, dedup="none")
    assert everything.height == 4
    assert (report.duplicates_found, report.exact_duplicates, report.duplicates_removed) == (1, 0, 0)
    assert any("kept them all (--dedup none)" in n for n in report.notes)


def test_equal_timestamps_and_missing_timestamps_fall_back_to_file_order(tmp_path: Path) -> None:
    tied = write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\nu1,a,7,1\nu1,a,7,4\n")
    assert load_interactions(tied, dedup="first")["rating"].to_list() == [1.0]
    assert load_interactions(tied, dedup="last")["rating"].to_list() == [4.0]

    untimed = write(tmp_path, "seq.txt", "u1 a\nu1 b\nu1 a\nu2 a\n")
    assert load_interactions(untimed).rows() == [("u1", "a"), ("u1", "b"), ("u2", "a")]
    assert load_interactions(untimed, dedup="last").rows() == [("u1", "b"), ("u1", "a"), ("u2", "a")]
    # S3-Rec lines: a repeated item inside one user's sequence
    seq = write(tmp_path, "Beauty.txt", "1 5 6 5 7\n2 5\n")
    frame, report = load_interactions_with_report(seq)
    assert frame["item_id"].to_list() == ["5", "6", "7", "5"] and report.duplicates_found == 1


def test_clean_logs_have_no_duplicate_note(tmp_path: Path) -> None:
    frame, report = load_interactions_with_report(write(tmp_path, "log.txt", "u1 a\nu1 b\n"))
    assert frame.height == 2 and report.duplicates_found == 0 and report.notes == ()


def test_unknown_dedup_policy_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dedup \(--dedup\) must be one of first, last, none; got 'keep'"):
        load_interactions(write(tmp_path, "log.txt", "u1 a\n"), dedup="keep")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- rating scale
def test_one_absurd_rating_among_stars_is_rejected_by_line(tmp_path: Path) -> None:
    ratings = one_to_five(40)
    ratings[16] = "99999999"  # line 18 (header + 0-based 16 + 1)
    message = error_of(ratings_csv(tmp_path, ratings, column="stars"), rating_col="stars")
    assert "log.csv: line 18 (column 'stars'): rating 99999999 is outside the inferred rating scale 1..5" in message
    assert "1 of 40 ratings are" in message
    assert "pass --rating-scale MIN,MAX to declare another scale" in message


def test_negative_rating_among_stars_is_rejected(tmp_path: Path) -> None:
    ratings = one_to_five(40)
    ratings[3] = "-3"
    message = error_of(ratings_csv(tmp_path, ratings))
    assert "line 5 (column 'rating'): rating -3 is outside the inferred rating scale 1..5" in message


def test_headerless_formats_name_the_line(tmp_path: Path) -> None:
    lines = [f"{i % 5}\t{i}\t{1 + i % 5}\t{100 + i}" for i in range(30)]
    lines[20] = "9\t99\t55\t120"
    message = error_of(write(tmp_path, "u.data", "\n".join(lines) + "\n"))
    assert "u.data: line 21: rating 55 is outside the inferred rating scale 1..5" in message


def test_declared_scale_is_enforced_and_reported(tmp_path: Path) -> None:
    ratings = one_to_five(10)
    ratings[2] = "6"
    path = ratings_csv(tmp_path, ratings)
    message = error_of(path, rating_scale=(1, 5))
    assert "log.csv: line 4 (column 'rating'): rating 6 is outside the declared rating scale 1..5" in message
    assert "--rating-scale" in message
    frame, report = load_interactions_with_report(path, rating_scale=(0, 10))
    assert frame.height == 10
    assert (report.rating_scale, report.rating_scale_source, report.rating_scale_inferred) == (
        (0.0, 10.0),
        "declared",
        False,
    )
    assert "ratings checked against the declared scale 0..10" in report.notes


def test_declaring_the_scale_accepts_what_inference_rejects(tmp_path: Path) -> None:
    ratings = one_to_five(40)
    ratings[0] = "0"  # a 0 star among 1..5: rejected unless 0..5 is declared
    path = ratings_csv(tmp_path, ratings)
    assert "rating 0 is outside the inferred rating scale 1..5" in error_of(path)
    assert load_interactions(path, rating_scale=(0, 5)).height == 40


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        (["0", "1"], (0.0, 1.0)),
        (["1", "2", "3", "4", "5"], (1.0, 5.0)),
        (["0.5", "1", "2.5", "4", "5"], (0.5, 5.0)),
        (["0", "1", "3", "5"], (0.0, 5.0)),
        (["1", "4", "7", "10"], (1.0, 10.0)),
        (["0", "4", "8", "10"], (0.0, 10.0)),
        (["1", "30", "77", "100"], (1.0, 100.0)),
        (["0", "30", "77", "100"], (0.0, 100.0)),
    ],
)
def test_standard_scales_are_recognised(tmp_path: Path, values: list[str], scale: tuple[float, float]) -> None:
    frame, report = load_interactions_with_report(ratings_csv(tmp_path, values * 10))
    assert frame.height == len(values) * 10
    assert (report.rating_scale, report.rating_scale_source, report.rating_scale_inferred) == (scale, "inferred", True)


def test_play_counts_are_not_a_bounded_scale(tmp_path: Path) -> None:
    # heavy-tailed play counts (LastFM user_artists-like weights): nothing is rejected, the scale is observed
    rng = np.random.default_rng(0)
    counts = np.floor(rng.pareto(1.2, 3000) * 20 + 1).astype(int)
    frame, report = load_interactions_with_report(
        ratings_csv(tmp_path, [str(c) for c in counts], column="plays"), rating_col="plays"
    )
    assert frame.height == 3000
    assert report.rating_scale == (float(counts.min()), float(counts.max()))
    assert (report.rating_scale_source, report.rating_scale_inferred) == ("observed", True)
    assert any("fit no standard scale" in n and "none was rejected" in n for n in report.notes)


def test_small_counts_with_a_thin_tail_are_not_rejected() -> None:
    # purchase counts: 99.9% within 1..5, but the few larger ones run on past 5 (6, 7, ...): a tail, not typos
    counts = np.array([1] * 2000 + [2] * 600 + [3] * 200 + [4] * 80 + [5] * 40 + [6, 7, 12])
    result = infer_rating_scale(counts)
    assert not result.standard and result.scale == (1.0, 12.0) and result.outliers.size == 0
    # and counts that pile up at the bottom of 1..100 with rare far values are no 1..100 scale either
    counts = np.array([1] * 3000 + [2] * 900 + [3] * 300 + [10] * 20 + [40] * 2 + [5000, 90000])
    assert not infer_rating_scale(counts).standard


def test_scale_inference_rule_edges() -> None:
    assert [tolerated_outliers(n) for n in (1, 19, 20, 1999, 2000, 100_000)] == [0, 0, 1, 1, 2, 100]
    assert STANDARD_RATING_SCALES[:2] == ((0.0, 1.0), (1.0, 5.0))
    # a tiny log is never trimmed: 99 among five ratings widens the scale instead of being rejected
    tiny = infer_rating_scale(np.array([1, 2, 3, 4, 5, 99.0]))
    assert tiny.outliers.size == 0 and tiny.scale == (1.0, 100.0)
    # two outliers in 1,000 ratings exceed the tolerance of one: no scale is forced on the data
    many = infer_rating_scale(np.array([float(1 + i % 5) for i in range(998)] + [1e8, 2e8]))
    assert not many.standard and many.scale == (1.0, 2e8)
    with pytest.raises(ValueError):
        infer_rating_scale(np.array([]))


def test_rating_scale_parameter_and_cli_parser() -> None:
    assert parse_rating_scale("1,5") == (1.0, 5.0)
    assert parse_rating_scale(" 0.5 .. 5 ") == (0.5, 5.0)
    for bad in ("5,1", "a,b", "1", "1,5,7", "1,inf", ""):
        with pytest.raises(ConfigError, match="--rating-scale"):
            parse_rating_scale(bad)


def test_bad_declared_scale_is_a_config_error(tmp_path: Path) -> None:
    path = ratings_csv(tmp_path, one_to_five(5))
    with pytest.raises(ConfigError, match=r"MIN < MAX; got 5,1"):
        load_interactions(path, rating_scale=(5, 1))


def test_scale_on_a_log_without_ratings_is_noted_not_fatal(tmp_path: Path) -> None:
    frame, report = load_interactions_with_report(write(tmp_path, "log.txt", "u1 a\nu1 b\n"), rating_scale=(1, 5))
    assert frame.height == 2 and report.rating_scale is None and report.rating_scale_source is None
    assert report.notes == ("--rating-scale 1,5 ignored: the log has no ratings",)


# ------------------------------------------------------------------------------------- separators, headers
def test_semicolon_spreadsheet_export_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "customer;sku;ts;stars\nc1;s1;100;5\nc1;s2;200;4\nc2;s1;150;1\n")
    frame, report = load_interactions_with_report(
        path, user_col="customer", item_col="sku", time_col="ts", rating_col="stars"
    )
    assert frame.rows() == [("c1", "s1", 100, 5.0), ("c1", "s2", 200, 4.0), ("c2", "s1", 150, 1.0)]
    assert report.separator == ";" and report.format == "csv"
    assert any("separator ';', detected from the header" in n for n in report.notes)
    # without the column names, the error names them as found (split on ';') and suggests the overrides
    message = error_of(path)
    assert "found: 'customer', 'sku', 'ts', 'stars'" in message and "--user-col 'customer'" in message


def test_semicolon_file_without_extension_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "log", "user_id;item_id\nu1;a\n")
    assert detect_format(path) == "csv"
    assert load_interactions(path).rows() == [("u1", "a")]


@pytest.mark.parametrize(("sep", "shown"), [(";", "';'"), ("|", "'|'"), ("\t", "'\\t'")])
def test_explicit_wrong_separator_names_the_right_one(tmp_path: Path, sep: str, shown: str) -> None:
    path = write(tmp_path, "log.csv", f"customer{sep}sku\nc1{sep}s1\n")
    message = error_of(path, separator=",", item_col="sku")
    assert f"found: {f'customer{sep}sku'!r}" in message
    assert f"the file seems to use {shown} as separator: pass --separator {shown}" in message


def test_ambiguous_header_is_not_guessed(tmp_path: Path) -> None:
    # both ';' and '|' split every line the same way: no guess, the error says what was found
    path = write(tmp_path, "log.csv", "user_id;x|item_id\nu1;y|a\n")
    message = error_of(path)
    assert "missing required column 'user_id'" in message and "separator" in message


def test_spaces_around_header_names_are_removed(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id, item_id, timestamp\nu1, a, 10\nu2, b, 20\n")
    frame, report = load_interactions_with_report(path)
    assert frame.rows() == [("u1", "a", 10), ("u2", "b", 20)]
    assert any("removed the spaces around column names ' item_id', ' timestamp'" in n for n in report.notes)
    # an override written with the file's stray space still finds the column
    spaced = write(tmp_path, "sku.csv", "customer, sku\nc1, s1\n")
    assert load_interactions(spaced, user_col="customer", item_col=" sku").rows() == [("c1", "s1")]


def test_header_names_colliding_after_stripping(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "log.csv", "user_id,item_id, item_id\nu1,a,b\n"))
    assert "columns 'item_id' and ' item_id' have the same name once the spaces around them are removed" in message


# ---------------------------------------------------------------------------------------------- the report
def test_report_is_frozen_and_json_ready(tmp_path: Path) -> None:
    path = ratings_csv(tmp_path, one_to_five(30))
    _, report = load_interactions_with_report(path)
    assert isinstance(report, LoadReport)
    with pytest.raises(AttributeError):
        report.rows_read = 0  # type: ignore[misc]
    data = json.loads(json.dumps(report.to_json()))
    assert data["rating_scale"] == [1.0, 5.0] and data["rating_scale_source"] == "inferred"
    assert data["rows_read"] == 30 and data["duplicates_found"] == 0 and data["separator"] == ","
    assert data["notes"] == ["ratings on the inferred scale 1..5 (pass --rating-scale MIN,MAX to declare another)"]
    assert data["path"] == str(path) and data["format"] == "csv" and data["dedup"] == "first"
