"""User features, numeric / text fields, the FeatureTable models embed, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from log_files import write

from attnrec.data import IdVocabulary
from attnrec.data.features import (
    ItemFeatures,
    UserFeatures,
    build_feature_table,
    load_item_features,
    load_user_features,
)
from attnrec.errors import DataError


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        load_user_features(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_users_dat_demographics(tmp_path: Path) -> None:
    path = write(tmp_path, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    f = load_user_features(path)
    assert isinstance(f, UserFeatures)
    assert f.attributes["1"] == ["gender=F", "age=1", "occupation=10", "zip=48067"]
    assert f.kinds == {"gender": "categorical", "age": "categorical", "occupation": "categorical", "zip": "categorical"}
    assert f.user_ids == ["1", "2"]


def test_uuser_age_is_numeric(tmp_path: Path) -> None:
    path = write(tmp_path, "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    f = load_user_features(path)
    assert f.value("1", "age") == 24.0 and f.value("2", "age") == 53.0
    assert f.attributes["2"] == ["gender=F", "occupation=other", "zip=94043"]
    assert f.numeric_fields == ["age"]


def test_uuser_bad_age_names_line_field_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n")
    message = error_of(path)
    assert "line 2" in message and "'age'" in message and "'old'" in message and "number" in message


def test_users_dat_wrong_field_count_and_duplicate(tmp_path: Path) -> None:
    assert "expected 5 fields" in error_of(write(tmp_path, "users.dat", "1::F::1::10\n"))
    message = error_of(write(tmp_path, "users.dat", "1::F::1::10::1\n1::M::1::10::2\n"))
    assert "duplicate user id '1'" in message and "line 2" in message


def test_csv_user_table_kinds_inferred_and_declared(tmp_path: Path) -> None:
    rows = "".join(f"u{i},{'MF'[i % 2]},{18 + i},a|b,{100 + i}\n" for i in range(30))
    path = write(tmp_path, "users.csv", "user_id,gender,age,tags,code\n" + rows)
    f = load_user_features(path, kinds={"code": "categorical"})
    assert f.kinds == {"gender": "categorical", "age": "numeric", "tags": "multi", "code": "categorical"}
    assert f.value("u3", "age") == 21.0
    assert "code=103" in f.attributes["u3"] and "tags=b" in f.attributes["u3"]
    assert not any(t.startswith("age=") for t in f.attributes["u3"]), "numeric values must not become tokens"


def test_declared_numeric_column_with_text_is_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "user_id,score\nu1,3.5\nu2,high\n")
    message = error_of(path, kinds={"score": "numeric"})
    assert "line 3" in message and "'score'" in message and "'high'" in message
    assert "not a feature column" in error_of(path, kinds={"nope": "numeric"})
    assert "field kind must be one of" in error_of(path, kinds={"score": "float"})


def test_item_table_numeric_and_text_fields(tmp_path: Path) -> None:
    plot = "a long sentence about what happens in item {}"
    rows = "".join(f"i{i},T{i},{i * 0.5},{plot.format(i)}\n" for i in range(5))
    f = load_item_features(write(tmp_path, "items.csv", "item_id,title,price,plot\n" + rows))
    assert f.kinds == {"price": "numeric", "plot": "text"}
    assert f.value("i3", "price") == 1.5 and f.text("i2", "plot") == plot.format(2)
    assert f.attributes["i3"] == [] and f.fields == []


def test_movielens_titles_give_numeric_year(tmp_path: Path) -> None:
    f = load_item_features(write(tmp_path, "movies.dat", "1::Toy Story (1995)::Comedy\n2::No Year::Drama\n"))
    assert f.value("1", "year") == 1995.0 and f.value("2", "year") is None
    assert f.kind_of("year") == "numeric" and f.attributes["1"] == ["genre=Comedy"]


def test_user_features_save_load_round_trip(tmp_path: Path) -> None:
    f = load_user_features(write(tmp_path, "u.user", "1|24|M|technician|85711\n"))
    again = UserFeatures.load(f.save(tmp_path / "user_features.json"))
    assert again == f
    with pytest.raises(Exception, match="not an attnrec item-features file"):
        ItemFeatures.load(tmp_path / "user_features.json")


def test_feature_table_oracle() -> None:
    f = ItemFeatures(
        attributes={"a": ["genre=Drama", "genre=Comedy"], "b": ["genre=Horror"], "c": []},
        fields=["genre"],
        numeric={"a": {"year": 1990.0}, "b": {"year": 2000.0}, "c": {"year": 2010.0}},
        kinds={"genre": "multi", "year": "numeric"},
    )
    vocab = IdVocabulary(["b", "zz", "a"], kind="item")  # "zz" has no features
    table = build_feature_table(f, vocab, buckets=3)
    genre, year = table.field("genre"), table.field("year")
    assert genre.values == ("Comedy", "Drama", "Horror") and genre.width == 2
    assert table.ids[:, genre.columns].tolist() == [[0, 0], [3, 0], [0, 0], [2, 1]]
    assert table.present.tolist() == [False, True, False, True]
    assert np.isnan(table.numeric[2, 0]) and table.numeric[3, 0] == 1990.0
    assert table.ids[3, year.start] < table.ids[1, year.start]  # 1990 in a lower bucket than 2000
    assert table.ids[2, year.start] == 0  # missing value -> 0
    glob = table.global_ids()
    assert glob[3, genre.start] == 2 and glob[1, year.start] == year.offset + table.ids[1, year.start]
    assert glob.max() < table.total_size
    arrays, meta = table.to_state()
    again = type(table).from_state(arrays, meta)
    assert again.fields == table.fields and np.array_equal(again.ids, table.ids)
