"""Item side information: every format, id maps, the attribute matrix, persistence and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from log_files import write

from attnrec.data import IdVocabulary, ItemFeatures, load_interactions, load_item_features
from attnrec.data.features import ML100K_GENRES
from attnrec.errors import DataError, PersistenceError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        load_item_features(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def uitem_line(ident: str, title: str, genres: set[int]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in range(19))
    return f"{ident}|{title}|01-Jan-1995||http://example.org|{flags}\n"


# ------------------------------------------------------------------------------------------------ formats
def test_movies_dat_latin1_titles_and_genres(tmp_path: Path) -> None:
    content = (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Misérables, Les (1995)::Drama\n3::X::(no genres listed)\n"
    )
    path = write(tmp_path, "movies.dat", content.encode("latin-1"))
    f = load_item_features(path)
    assert f.title("2") == "Misérables, Les (1995)"
    assert f.attributes == {
        "1": ["genre=Animation", "genre=Children's", "genre=Comedy"],
        "2": ["genre=Drama"],
        "3": [],
    }
    assert f.fields == ["genre"] and f.title("99") is None and len(f) == 3


def test_movies_dat_utf8_is_read_as_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "movies.dat", "1::Amélie (2001)::Comedy\n")
    assert load_item_features(path).title("1") == "Amélie (2001)"


def test_uitem_with_standard_genres(tmp_path: Path) -> None:
    path = write(tmp_path, "u.item", uitem_line("1", "Toy Story (1995)", {3, 4, 5}) + uitem_line("2", "G", {1}))
    f = load_item_features(path)
    assert f.title("1") == "Toy Story (1995)"
    assert f.attributes["1"] == ["genre=Animation", "genre=Children's", "genre=Comedy"]
    assert f.attributes["2"] == ["genre=Action"]


def test_uitem_reads_genre_names_from_u_genre(tmp_path: Path) -> None:
    write(tmp_path, "u.genre", "".join(f"G{i}|{i}\n" for i in range(19)))
    path = write(tmp_path, "u.item", uitem_line("7", "T", {0, 18}))
    assert load_item_features(path).attributes["7"] == ["genre=G0", "genre=G18"]


def test_item2attributes_json(tmp_path: Path) -> None:
    path = write(tmp_path, "Beauty_item2attributes.json", json.dumps({"4": [1, 2, 3], "83": [4, 1]}))
    f = load_item_features(path)
    assert f.attributes == {"4": ["attribute=1", "attribute=2", "attribute=3"], "83": ["attribute=4", "attribute=1"]}
    assert f.fields == ["attribute"] and f.titles == {}


def test_csv_multivalued_columns_and_titles(tmp_path: Path) -> None:
    path = write(tmp_path, "items.csv", "item_id,title,genre,year\na,Alpha,Comedy|Drama,1999\nb,,Drama,\n")
    f = load_item_features(path)
    assert f.titles == {"a": "Alpha"}
    assert f.attributes == {"a": ["genre=Comedy", "genre=Drama", "year=1999"], "b": ["genre=Drama"]}
    assert f.fields == ["genre", "year"]


def test_parquet_with_list_column(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame({"item_id": [1, 2], "tags": [["x", "y"], []], "brand": ["b1", None]}).write_parquet(path)
    f = load_item_features(path)
    assert f.attributes == {"1": ["tags=x", "tags=y", "brand=b1"], "2": []}


def test_id_map_rekeys_features(tmp_path: Path) -> None:
    movies = write(tmp_path, "movies.dat", "1198::Raiders::Action\n356::Forrest Gump::Comedy|Drama\n5::Other::War\n")
    mapping = write(tmp_path, "map.txt", "1 1198\n2 356\n3 999\n")
    f = load_item_features(movies, id_map=mapping)
    assert f.titles == {"1": "Raiders", "2": "Forrest Gump"}
    assert f.attributes == {"1": ["genre=Action"], "2": ["genre=Comedy", "genre=Drama"]}


# ---------------------------------------------------------------------------------------- attribute matrix
def test_attribute_matrix_matches_explicit_oracle() -> None:
    f = ItemFeatures(
        titles={},
        attributes={"a": ["genre=Drama", "year=10"], "b": ["year=9", "genre=Comedy"], "z": ["genre=Horror"]},
        fields=["genre", "year"],
    )
    vocab = IdVocabulary(["b", "unknown", "a"], kind="item")
    mat, names = f.attribute_matrix(vocab)
    # only attributes of vocabulary items; ordered by field, then value (numbers numerically: 9 before 10)
    assert names == ["genre=Comedy", "genre=Drama", "year=9", "year=10"]
    expected = np.array(
        [
            [0, 0, 0, 0],  # padding
            [1, 0, 1, 0],  # b
            [0, 0, 0, 0],  # unknown item: no attributes
            [0, 1, 0, 1],  # a
        ],
        dtype=np.float32,
    )
    assert mat.shape == (4, 4) and mat.dtype == np.float32
    np.testing.assert_array_equal(mat.toarray(), expected)


def test_save_load_round_trip(tmp_path: Path) -> None:
    f = ItemFeatures(titles={"1": "Amélie"}, attributes={"1": ["genre=Comedy"], "2": []}, fields=["genre"])
    path = f.save(tmp_path / "run" / "item_features.json")
    assert ItemFeatures.load(path) == f
    write(tmp_path, "bad.json", json.dumps({"format": "something-else"}))
    with pytest.raises(PersistenceError):
        ItemFeatures.load(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------------- errors
def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "file not found" in error_of(tmp_path / "movies.dat")
    assert "is a directory" in error_of(tmp_path)


def test_empty_files(tmp_path: Path) -> None:
    assert "empty" in error_of(write(tmp_path, "movies.dat", ""))
    assert "empty" in error_of(write(tmp_path, "x.json", ""))
    assert "no rows" in error_of(write(tmp_path, "items.csv", "item_id,genre\n"))


def test_unknown_and_undetectable_format(tmp_path: Path) -> None:
    path = write(tmp_path, "items.txt", "a b c\n")
    assert "unknown item-features format 'xml'" in error_of(path, format="xml")
    assert "cannot detect the item-features format" in error_of(path)


def test_movies_dat_wrong_field_count(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "movies.dat", "1::A::Drama\n\n2::B\n"))
    assert "line 3" in message and "expected 3" in message and "found 2" in message


def test_duplicate_item_id(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "movies.dat", "1::A::Drama\n1::B::Drama\n"))
    assert "line 2" in message and "duplicate item id '1'" in message and "line 1" in message


def test_uitem_bad_genre_flag(tmp_path: Path) -> None:
    line = uitem_line("1", "T", set()).replace("|0\n", "|2\n")
    message = error_of(write(tmp_path, "u.item", uitem_line("0", "S", set()) + line))
    assert "line 2" in message and "'Western'" in message and "must be 0 or 1" in message and "'2'" in message


def test_json_errors(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "a.json", '{"1": [1,\n 2,,]}'))
    assert "line 2" in message and "invalid JSON" in message
    assert "must be a list" in error_of(write(tmp_path, "b.json", '{"1": 5}'))
    assert "JSON object" in error_of(write(tmp_path, "c.json", "[1, 2]"))


def test_csv_missing_item_id_lists_columns(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "items.csv", "movieId,title\n1,A\n"))
    assert "missing required column 'item_id'" in message and "found: 'movieId', 'title'" in message


def test_csv_empty_item_id_names_line(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "items.csv", "item_id,genre\na,x\n\n,y\n"))
    assert "line 4" in message and "item id must not be empty" in message


def test_id_map_errors(tmp_path: Path) -> None:
    movies = write(tmp_path, "movies.dat", "10::A::Drama\n")
    bad = write(tmp_path, "bad.txt", "1 10\n2\n")
    message = error_of(movies, id_map=bad)
    assert "bad.txt" in message and "line 2" in message and "expected 2" in message
    dup = write(tmp_path, "dup.txt", "1 10\n1 11\n")
    assert "duplicate new id '1'" in error_of(movies, id_map=dup)
    disjoint = write(tmp_path, "disjoint.txt", "1 99\n")
    assert "none of its original ids" in error_of(movies, id_map=disjoint)


# ------------------------------------------------------------------------------------------- shared data
def needs(rel: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED / rel).exists(), reason=f"shared dataset {rel} not available at {SHARED}")


@pytest.mark.shared_data
@needs("ml-1m/movies.dat")
def test_ml1m_movies_dat() -> None:
    f = load_item_features(SHARED / "ml-1m" / "movies.dat")
    assert len(f.titles) == 3_883
    assert f.title("1") == "Toy Story (1995)"
    assert any("é" in t for t in f.titles.values())  # latin-1 decoded
    assert len({tok for toks in f.attributes.values() for tok in toks}) == 18


@pytest.mark.shared_data
@needs("ml-1m/sas_to_original_items.txt")
def test_ml1m_sasrec_items_get_movie_titles() -> None:
    f = load_item_features(SHARED / "ml-1m" / "movies.dat", id_map=SHARED / "ml-1m" / "sas_to_original_items.txt")
    items = IdVocabulary.from_ids(load_interactions(SHARED / "ml-1m" / "ml-1m.txt")["item_id"].to_list())
    assert all(f.title(i) is not None for i in items.all_ids)
    assert f.title("1") == "Raiders of the Lost Ark (1981)"  # sas item 1 is movie 1198
    mat, names = f.attribute_matrix(items)
    assert mat.shape == (3_417, 18) and len(names) == 18
    assert (np.diff(mat.indptr)[1:] > 0).all()  # every movie has a genre


@pytest.mark.shared_data
@needs("ml-100k/u.item")
def test_ml100k_uitem() -> None:
    f = load_item_features(SHARED / "ml-100k" / "u.item")
    assert len(f.titles) == 1_682 and f.title("1") == "Toy Story (1995)"
    assert f.attributes["1"] == ["genre=Animation", "genre=Children's", "genre=Comedy"]
    assert {t.split("=", 1)[1] for toks in f.attributes.values() for t in toks} <= set(ML100K_GENRES)


@pytest.mark.shared_data
@needs("amazon-beauty/Beauty_item2attributes.json")
def test_beauty_item2attributes_cover_the_log() -> None:
    f = load_item_features(SHARED / "amazon-beauty" / "Beauty_item2attributes.json")
    items = IdVocabulary.from_ids(load_interactions(SHARED / "amazon-beauty" / "Beauty.txt")["item_id"].to_list())
    assert len(f.attributes) == 12_101 and set(f.attributes) == set(items.all_ids)
    mat, names = f.attribute_matrix(items)
    assert mat.shape == (12_102, 637) and len(names) == 637


# ------------------------------------------------------------------------------------- id column, separator
def test_table_id_column_follows_the_log_item_column(tmp_path: Path) -> None:
    path = write(tmp_path, "items.csv", "sku,title,genre\ns1,Shoe,wear|sport\ns2,Hat,wear\n")
    features = load_item_features(path, log_item_col="sku")
    assert features.titles == {"s1": "Shoe", "s2": "Hat"}
    assert features.attributes == {"s1": ["genre=wear", "genre=sport"], "s2": ["genre=wear"]}
    assert features.fields == ["genre"]
    # without the log's column name, the error suggests the flag
    message = error_of(path)
    assert "missing required column 'item_id' (found: 'sku', 'title', 'genre')" in message
    assert "did you mean --items-id-col 'sku' (id_col=...)?" in message


def test_explicit_id_column_wins_and_item_id_becomes_an_attribute(tmp_path: Path) -> None:
    path = write(tmp_path, "items.csv", "code,item_id,title\nc1,42,A\nc2,43,B\n")
    features = load_item_features(path, id_col="code", log_item_col="item_id")
    assert features.titles == {"c1": "A", "c2": "B"}
    assert features.attributes == {"c1": ["item_id=42"], "c2": ["item_id=43"]}
    message = error_of(path, id_col="sku")
    assert (
        "column 'sku' given by id_col (--items-id-col) is not in the file (found: 'code', 'item_id', 'title')"
        in message
    )


def test_missing_log_column_names_both_candidates(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "items.csv", "product_id,title\np,A\n"), log_item_col="sku")
    assert "missing required column 'sku' (as in the log) or 'item_id'" in message
    assert "--items-id-col 'product_id'" in message


def test_parquet_features_with_id_col_and_spaced_names(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame({" sku": ["a", "b"], "title ": ["A", "B"]}).write_parquet(path)
    features = load_item_features(path, id_col="sku")
    assert features.titles == {"a": "A", "b": "B"}


def test_feature_separator_explicit_and_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "items.csv", "item_id;title;genre\n1;Heat;Action|Crime\n")
    assert load_item_features(path, separator=";").attributes == {"1": ["genre=Action", "genre=Crime"]}
    assert load_item_features(path).titles == {"1": "Heat"}  # the header clearly uses ';'
    message = error_of(path, separator=",")
    assert "the file seems to use ';' as separator: pass --separator ';'" in message
    tab = write(tmp_path, "items.txt", "item_id\ttitle\n1\tHeat\n")
    assert load_item_features(tab, separator="\t").titles == {"1": "Heat"}


def test_table_options_on_fixed_formats_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "movies.dat", "1::Toy Story (1995)::Animation\n")
    assert "separator=';' applies only to csv, tsv and parquet" in error_of(path, format="movielens", separator=";")
    assert "id_col='sku'" in error_of(path, format="movielens", id_col="sku")
    # the log's item column name is only a default: it does not bother fixed formats
    assert load_item_features(path, log_item_col="sku").title("1") == "Toy Story (1995)"
