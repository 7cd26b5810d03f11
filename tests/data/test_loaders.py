"""Interaction log loading: every format, detection, timestamps, and one test per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from log_files import error_of, write

from attnrec.data import FORMATS, Interactions, detect_format, load_interactions, read_interactions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


# ------------------------------------------------------------------------------------------------ formats
def test_csv_with_all_columns_keeps_file_order_and_types(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp,rating\nu2,b,30,4\nu1,a,10,3.5\nu2,a,20,1\n")
    df = load_interactions(path)
    assert df.columns == ["user_id", "item_id", "timestamp", "rating"]
    assert df.schema == {"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64, "rating": pl.Float64}
    assert df.rows() == [("u2", "b", 30, 4.0), ("u1", "a", 10, 3.5), ("u2", "a", 20, 1.0)]


def test_csv_without_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "item_id,user_id\n7,1\n8,1\n")
    df = load_interactions(path)
    assert df.columns == ["user_id", "item_id"]
    assert df.rows() == [("1", "7"), ("1", "8")]


def test_tsv_and_custom_separator(tmp_path: Path) -> None:
    tsv = write(tmp_path, "log.tsv", "user_id\titem_id\n1\t2\n")
    assert load_interactions(tsv).rows() == [("1", "2")]
    semi = write(tmp_path, "log.txt", "user_id;item_id;rating\n1;2;5\n")
    assert load_interactions(semi, separator=";").rows() == [("1", "2", 5.0)]


def test_column_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "uid,movieId,ts,stars,extra\n1,10,100,2,x\n")
    df = load_interactions(path, user_col="uid", item_col="movieId", time_col="ts", rating_col="stars")
    assert df.rows() == [("1", "10", 100, 2.0)]


def test_parquet_with_integer_ids_and_datetime_column(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [10.0, 20.0],  # float ids holding integers, as pandas writes them
            "timestamp": pl.Series(["2024-01-01T00:00:00", "2024-01-02T00:00:00"]).str.to_datetime(),
        }
    ).write_parquet(path)
    df = load_interactions(path)
    assert df.rows() == [("1", "10", 1704067200), ("2", "20", 1704153600)]


def test_movielens_dat(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    df = load_interactions(path)
    assert df.rows() == [("1", "1193", 978300760, 5.0), ("1", "661", 978302109, 3.0)]


def test_udata(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert load_interactions(path).rows() == [("196", "242", 881250949, 3.0), ("186", "302", 891717742, 3.0)]


def test_sasrec_lines_allow_any_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path, "seq.txt", "1 5\n1  6\n2\t5\n")
    df = load_interactions(path, format="sasrec")
    assert df.columns == ["user_id", "item_id"]
    assert df.rows() == [("1", "5"), ("1", "6"), ("2", "5")]


def test_sequence_lines_explode_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "Beauty.txt", "1 1 2 3\n2 4 1\n")
    df = load_interactions(path)
    assert df.rows() == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "4"), ("2", "1")]


def test_blank_lines_crlf_and_bom_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "\ufeffuser_id,item_id\r\n1,a\r\n\r\n2,b\r\n")
    assert load_interactions(path).rows() == [("1", "a"), ("2", "b")]
    seq = write(tmp_path, "s.txt", "1 2\n\n   \n1 3\n")
    assert load_interactions(seq, format="sasrec").rows() == [("1", "2"), ("1", "3")]


# ---------------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("log.csv", "user_id,item_id\n1,2\n", "csv"),
        ("log.tsv", "user_id\titem_id\n1\t2\n", "tsv"),
        ("log.txt", "user_id\titem_id\n1\t2\n", "tsv"),
        ("log.txt", "user_id,item_id\n1,2\n", "csv"),
        ("ratings.dat", "1::2::5::100\n", "movielens"),
        ("u.data", "1\t2\t5\t100\n3\t4\t1\t200\n", "udata"),
        ("ml.txt", "1 1\n1 2\n2 3\n", "sasrec"),
        ("seq.txt", "1 1 2 3\n2 4 5\n3 6\n", "sequence"),
    ],
)
def test_detection(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = write(tmp_path, name, content)
    assert detect_format(path) == expected
    assert load_interactions(path).height >= 1


def test_parquet_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log.bin"
    pl.DataFrame({"user_id": ["a"], "item_id": ["b"]}).write_parquet(path)
    assert detect_format(path) == "parquet"


def test_undetectable_format_asks_for_format(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "1 2 3\n4 5 6\n")
    message = error_of(path)
    assert "cannot detect the format" in message and "--format" in message and "1 2 3" in message


def test_format_argument_overrides_detection(tmp_path: Path) -> None:
    # three tokens everywhere is ambiguous, but an explicit 'sequence' reads it
    path = write(tmp_path, "x.txt", "1 2 3\n4 5 6\n")
    assert load_interactions(path, format="sequence").rows() == [("1", "2"), ("1", "3"), ("4", "5"), ("4", "6")]


# --------------------------------------------------------------------------------------------- timestamps
def test_iso_and_datetime_strings_become_epoch_seconds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "log.csv",
        "user_id,item_id,timestamp\n1,a,2024-01-01T00:00:00\n1,b,2024-01-01 00:01:40\n",
    )
    assert load_interactions(path)["timestamp"].to_list() == [1704067200, 1704067300]


def test_timezone_offsets_are_respected(tmp_path: Path) -> None:
    path = write(
        tmp_path, "log.csv", "user_id,item_id,timestamp\n1,a,2024-01-01T02:00:00+02:00\n1,b,2024-01-01T00:00:10Z\n"
    )
    assert load_interactions(path)["timestamp"].to_list() == [1704067200, 1704067210]


def test_dates_and_fractional_epochs(tmp_path: Path) -> None:
    dates = write(tmp_path, "d.csv", "user_id,item_id,timestamp\n1,a,2024-01-02\n")
    assert load_interactions(dates)["timestamp"].to_list() == [1704153600]
    frac = write(tmp_path, "f.csv", "user_id,item_id,timestamp\n1,a,100.9\n1,b,7\n")
    assert load_interactions(frac)["timestamp"].to_list() == [100, 7]


# ------------------------------------------------------------------------------------------------- errors
def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.csv")
    assert "nope.csv" in message and "file not found" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)


@pytest.mark.parametrize(("name", "content"), [("e.csv", ""), ("e.txt", ""), ("e.txt", "\n \n"), ("e.dat", "")])
def test_empty_file(tmp_path: Path, name: str, content: str) -> None:
    message = error_of(write(tmp_path, name, content))
    assert name in message and "empty" in message


def test_header_only(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "h.csv", "user_id,item_id\n"))
    assert "header but no data rows" in message


def test_missing_column_lists_columns_found_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "userId,movieId\n1,2\n")
    message = error_of(path)
    assert "missing required column 'user_id'" in message
    assert "found: 'userId', 'movieId'" in message
    assert "--user-col 'userId'" in message


def test_wrong_separator_is_hinted(tmp_path: Path) -> None:
    # an explicit separator that does not fit: the error names the one the header uses
    message = error_of(write(tmp_path, "log.csv", "user_id;item_id\n1;2\n"), separator=",")
    assert "found: 'user_id;item_id'" in message
    assert "the file seems to use ';' as separator: pass --separator ';'" in message


def test_override_column_not_present(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id\n1,2\n")
    message = error_of(path, time_col="when")
    assert "column 'when' given by time_col (--time-col) is not in the file" in message
    assert "found: 'user_id', 'item_id'" in message


def test_override_on_headerless_format(tmp_path: Path) -> None:
    path = write(tmp_path, "r.dat", "1::2::3::4\n")
    assert "applies only to csv, tsv and parquet" in error_of(path, user_col="u")


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id\n1,2\n")
    message = error_of(path, format="excel")
    assert "unknown format 'excel'" in message and ", ".join(FORMATS) in message


def test_unparsable_timestamp_names_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp\n1,a,2024-01-01\n\n1,b,yesterday\n")
    message = error_of(path)
    assert "line 4" in message and "'timestamp'" in message and "'yesterday'" in message


def test_non_numeric_timestamp_among_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "r.dat", "1::2::5::100\n1::3::5::1e9x\n")
    message = error_of(path)
    assert "line 2" in message and "'1e9x'" in message


def test_empty_timestamp(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "log.csv", "user_id,item_id,timestamp\n1,a,5\n1,b,\n"))
    assert "line 3" in message and "timestamp must not be empty" in message


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        ("user_id,item_id\n1,a\n,b\n", 3, "user id"),
        ("user_id,item_id\n1,a\n2,  \n", 3, "item id"),
        ("user_id,item_id\n1,a\n\n\n2,\n", 5, "item id"),
    ],
)
def test_empty_id_names_line(tmp_path: Path, content: str, line: int, what: str) -> None:
    message = error_of(write(tmp_path, "log.csv", content))
    assert f"line {line}" in message and f"{what} must not be empty" in message


def test_empty_id_in_movielens(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "r.dat", "1::2::5::100\n::3::5::100\n"))
    assert "line 2" in message and "user id must not be empty" in message


def test_null_id_in_parquet_names_row(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"]}).write_parquet(path)
    message = error_of(path)
    assert "row 2" in message and "user id must not be empty" in message and "null" in message


def test_non_numeric_rating(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "u.data", "1\t2\t3\t100\n1\t3\tfive\t100\n"))
    assert "line 2" in message and "rating must be a number" in message and "'five'" in message


def test_bad_rating_on_first_udata_line_is_not_mistaken_for_a_header(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", "196\t242\tfive\t881250949\n")
    assert detect_format(path) == "udata"
    message = error_of(path)
    assert "line 1" in message and "'five'" in message


def test_csv_without_header_is_hinted(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "log.csv", "1,2\n3,4\n"))
    assert "found: '1', '2'" in message and "looks like data, not a header" in message


def test_nan_rating(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "log.csv", "user_id,item_id,rating\n1,a,nan\n"))
    assert "line 2" in message and "finite" in message


@pytest.mark.parametrize(
    ("name", "content", "fmt", "line", "expected", "found"),
    [
        ("log.csv", "user_id,item_id\n1,a\n1,b,3\n", None, 3, 2, 3),
        ("log.csv", "user_id,item_id,rating\n1,a,1\n1,b\n", None, 3, 3, 2),
        ("r.dat", "1::2::5::100\n1::3::5\n", None, 2, 4, 3),
        ("u.data", "1\t2\t3\t4\n1 2 3 4\n", "udata", 2, 4, 1),
        ("ml.txt", "1 2\n1 3\n1 4 5\n", "sasrec", 3, 2, 3),
    ],
)
def test_wrong_number_of_fields(
    tmp_path: Path, name: str, content: str, fmt: str | None, line: int, expected: int, found: int
) -> None:
    message = error_of(write(tmp_path, name, content), format=fmt)
    assert f"line {line}" in message and f"expected {expected}" in message and f"found {found}" in message


def test_sequence_line_without_items(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "s.txt", "1 2 3\n2\n"), format="sequence")
    assert "line 2" in message and "at least one item" in message


def test_undecodable_bytes_name_line_and_offset(tmp_path: Path) -> None:
    content = b"user_id,item_id\n1,a\n2,caf\xe9\n"
    message = error_of(write(tmp_path, "log.csv", content))
    offset = len("user_id,item_id\n1,a\n2,caf")
    assert "line 3" in message and f"byte offset {offset}" in message and "0xe9" in message and "UTF-8" in message


def test_quoted_newlines_fall_back_to_record_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", 'user_id,item_id,rating\n"a\nb",x,1\nc,y,bad\n')
    assert error_of(path).count("record 2") == 1
    ok = write(tmp_path, "ok.csv", 'user_id,item_id\n"a,b",x\n')
    assert load_interactions(ok).rows() == [("a,b", "x")]


# ---------------------------------------------------------------------------------------- Interactions
def test_read_interactions_orders_by_time_within_user(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp\nu,c,30\nv,a,5\nu,a,10\nu,b,10\n")
    inter = read_interactions(path)
    assert isinstance(inter, Interactions)
    u = inter.users.index("u")
    # time order, ties kept in file order
    assert inter.items.ids(inter.sequence(u)).tolist() == ["a", "b", "c"]
    assert inter.num_users == 2 and inter.num_items == 3 and len(inter) == 4
    counts = inter.item_counts()
    assert {i: int(counts[inter.items.index(i)]) for i in "abc"} == {"a": 2, "b": 1, "c": 1}
    assert counts[0] == 0


# ------------------------------------------------------------------------------------------- shared data
def needs(rel: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED / rel).exists(), reason=f"shared dataset {rel} not available at {SHARED}")


@pytest.mark.shared_data
@needs("ml-1m/ml-1m.txt")
def test_ml1m_sasrec_file() -> None:
    path = SHARED / "ml-1m" / "ml-1m.txt"
    assert detect_format(path) == "sasrec"
    df = load_interactions(path)
    assert df.height == 999_611 and df["user_id"].n_unique() == 6_040 and df["item_id"].n_unique() == 3_416
    assert df.row(0) == ("1", "1")


@pytest.mark.shared_data
@needs("ml-100k/u.data")
def test_ml100k_udata() -> None:
    path = SHARED / "ml-100k" / "u.data"
    assert detect_format(path) == "udata"
    df = load_interactions(path)
    assert df.height == 100_000 and df["user_id"].n_unique() == 943 and df["item_id"].n_unique() == 1_682
    assert df.row(0) == ("196", "242", 881250949, 3.0)
    assert set(df["rating"].unique().to_list()) == {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.shared_data
@needs("amazon-beauty/Beauty.txt")
def test_beauty_sequences() -> None:
    path = SHARED / "amazon-beauty" / "Beauty.txt"
    assert detect_format(path) == "sequence"
    df = load_interactions(path)
    assert df.height == 198_502 and df["user_id"].n_unique() == 22_363 and df["item_id"].n_unique() == 12_101


@pytest.mark.shared_data
@needs("ml-1m/extra/ratings_partial_users1-2999.dat")
def test_ml1m_ratings_dat() -> None:
    path = SHARED / "ml-1m" / "extra" / "ratings_partial_users1-2999.dat"
    assert detect_format(path) == "movielens"
    df = load_interactions(path)
    assert df.height == 487_650 and df["user_id"].n_unique() == 2_999
    assert df.row(0) == ("1", "1193", 978300760, 5.0)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("rel", "rows", "scale"),
    [
        ("ml-100k/u.data", 100_000, (1.0, 5.0)),
        ("ml-1m/ml-1m.txt", 999_611, None),
        ("amazon-beauty/Beauty.txt", 198_502, None),
        ("lastfm/LastFM.txt", 52_551, None),
        ("ml-1m/extra/ratings_partial_users1-2999.dat", 487_650, (1.0, 5.0)),
    ],
)
def test_shared_datasets_load_unchanged_with_the_default_checks(
    rel: str, rows: int, scale: tuple[float, float] | None
) -> None:
    if not (SHARED / rel).exists():
        pytest.skip(f"shared dataset {rel} not available at {SHARED}")
    from attnrec.data.loaders import load_interactions_with_report

    frame, report = load_interactions_with_report(SHARED / rel)
    assert frame.height == rows == report.rows_read == report.rows_kept
    assert report.duplicates_found == 0 and report.dedup == "first"
    assert report.rating_scale == scale
    assert report.rating_scale_source == (None if scale is None else "inferred")
