import itertools

import numpy as np
import polars as pl
import pytest

from attnrec.data.synthetic import (
    block_groups,
    block_interactions,
    make_synthetic,
    planted_ratings,
    planted_sequences,
)
from attnrec.errors import ConfigError


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(num_users=150, num_items=200, seed=1, events_per_user=20)


def test_same_seed_same_data(synth) -> None:
    again = make_synthetic(num_users=150, num_items=200, seed=1, events_per_user=20)
    assert again.interactions.equals(synth.interactions)
    other = make_synthetic(num_users=150, num_items=200, seed=2, events_per_user=20)
    assert not other.interactions.equals(synth.interactions)


def test_schema_catalogue_and_time_order(synth) -> None:
    df = synth.interactions
    assert df.columns == ["user_id", "item_id", "timestamp", "rating"]
    assert synth.items.height == 200 and synth.items["item_id"].n_unique() == 200
    assert len(synth.titles) == 200 and len(set(synth.titles.values())) == 200
    assert set(df["item_id"].unique()) <= set(synth.items["item_id"])
    assert df["rating"].is_between(1, 5).all()
    increasing = df.group_by("user_id").agg((pl.col("timestamp").diff().drop_nulls() > 0).all().alias("ok"))
    assert increasing["ok"].all()
    # no re-watching
    assert df.select(["user_id", "item_id"]).is_unique().all()


def test_users_mostly_watch_their_favourite_genres(synth) -> None:
    genres = dict(zip(synth.items["item_id"], synth.items["genres"], strict=True))
    hits = [
        any(g in synth.user_genres[u] for g in genres[i].split("|"))
        for u, i in zip(synth.interactions["user_id"], synth.interactions["item_id"], strict=True)
    ]
    assert np.mean(hits) > 0.75


def test_series_are_watched_in_order(synth) -> None:
    nxt = synth.next_episode()
    assert nxt, "the catalogue has series"
    followed = total = 0
    episode_pos = {i: k for eps in synth.series.values() for k, i in enumerate(eps)}
    for _, grp in synth.interactions.group_by("user_id"):
        items = grp["item_id"].to_list()
        seen: set[str] = set()
        for a, b in itertools.pairwise(items):
            seen.add(a)
            if a in nxt and nxt[a] not in seen:
                total += 1
                followed += b == nxt[a]
        # an episode is only watched after the previous one
        for k, i in enumerate(items):
            if episode_pos.get(i, 0) > 0:
                title = next(t for t, eps in synth.series.items() if i in eps)
                prev = synth.series[title][episode_pos[i] - 1]
                assert prev in items[:k]
    assert followed / total > 0.7


def test_ratings_are_higher_for_favourite_genres(synth) -> None:
    genres = dict(zip(synth.items["item_id"], synth.items["genres"], strict=True))
    df = synth.interactions
    fav = np.asarray(
        [
            any(g in synth.user_genres[u] for g in genres[i].split("|"))
            for u, i in zip(df["user_id"], df["item_id"], strict=True)
        ]
    )
    r = df["rating"].to_numpy()
    assert r[fav].mean() > r[~fav].mean() + 0.8


def test_popularity_is_skewed(synth) -> None:
    counts = np.sort(synth.interactions["item_id"].value_counts()["count"].to_numpy())[::-1]
    top = counts[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.2  # the top 10 % of items get well over 10 % of the events


def test_planted_sequences_follow_i_plus_one() -> None:
    inter = planted_sequences(20, 15, length=5, seed=0)
    for seq in inter.sequences()[1:]:
        assert len(seq) == 5
        assert np.all(np.diff(seq) == 1)
        assert inter.items.id(int(seq[0])) == str(seq[0])


def test_block_users_stay_in_their_group() -> None:
    inter = block_interactions(24, 16, num_groups=4, density=0.5, seed=0)
    ug, ig = block_groups(24, 4), block_groups(16, 4)
    assert np.all(ug[inter.user_idx] == ig[inter.item_idx])
    assert len(inter.active_users()) == 24


def test_planted_ratings_match_truth_up_to_noise() -> None:
    inter, truth = planted_ratings(30, 20, noise=0.1, seed=0)
    resid = inter.rating - truth[inter.user_idx, inter.item_idx]
    assert abs(resid.mean()) < 0.05 and 0.05 < resid.std() < 0.15


def test_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="'num_genres'"):
        make_synthetic(num_genres=1)
    with pytest.raises(ConfigError, match="'length'"):
        planted_sequences(5, 4, length=6)


def test_item_features_carry_titles_and_genres(synth) -> None:
    feats = synth.item_features()
    first = synth.items.row(0, named=True)
    assert feats.title(first["item_id"]) == first["title"]
    assert feats.attributes_of(first["item_id"]) == [f"genre={g}" for g in first["genres"].split("|")]
    assert feats.fields == ["genre"]
