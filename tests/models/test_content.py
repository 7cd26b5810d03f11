"""Content model: conformance with features, genre-sharing items first, attribute explanations, cold items."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec.data.features import ItemFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.synthetic import block_groups
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError
from attnrec.explain.methods import explain, methods_for
from attnrec.models.content import ContentRecommender
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance


def block_features(data: Interactions, num_groups: int = 4) -> ItemFeatures:
    """Genre = the item's checkerboard group; a title with a word of its own so that every item differs."""
    groups = block_groups(data.num_items, num_groups)
    ids = data.items.all_ids
    return ItemFeatures(
        titles={ident: f"film {ident}" for ident in ids},
        attributes={ident: [f"genre=g{groups[i]}"] for i, ident in enumerate(ids, start=1)},
        fields=["genre"],
    )


class TestContentConformance(RecommenderConformance):
    def make_model(self) -> ContentRecommender:
        data = self.block_data()
        return ContentRecommender(item_features=block_features(data))


def catalogue() -> tuple[Interactions, ItemFeatures]:
    """Six films; user a watched two comedies, b two dramas; 'cold' has features but no events."""
    ids = ["c1", "c2", "c3", "d1", "d2", "h1"]
    genres = {"c1": "Comedy", "c2": "Comedy", "c3": "Comedy", "d1": "Drama", "d2": "Drama", "h1": "Horror"}
    features = ItemFeatures(
        titles={i: f"Title {i}" for i in ids} | {"cold": "A new comedy"},
        attributes={i: [f"genre={g}"] for i, g in genres.items()} | {"cold": ["genre=Comedy", "genre=Romance"]},
        fields=["genre"],
    )
    users = IdVocabulary(["a", "b"], kind="user")
    items = IdVocabulary(ids, kind="item")
    u = np.asarray([1, 1, 2, 2, 2], dtype=np.int64)
    i = items.indices(["c1", "c2", "d1", "d2", "h1"])
    data = Interactions(users, items, u, i, None, None, None, None).sorted()
    return data, features


def test_items_sharing_the_history_genres_come_first_and_the_attribute_explains_them() -> None:
    data, features = catalogue()
    model = ContentRecommender(item_features=features).fit(data)
    recs = model.recommend(["a"], k=3)
    assert recs.items[0][0] == "c3"  # the only unseen comedy
    assert recs.scores[0][0] > recs.scores[0][1]
    e = explain(model, model.history(1), recs.item_idx[0][:1], top=3)[0]
    assert e.method == "attributes" and methods_for(model)[0] == "attributes"
    assert e.attributions[0].kind == "item_attribute" and e.attributions[0].name == "genre=Comedy"
    assert e.attributions[0].weight > 0.5


def test_contributions_sum_to_the_score() -> None:
    data, features = catalogue()
    model = ContentRecommender(item_features=features).fit(data)
    history = data.items.indices(["c1", "d1", "h1"])
    items = np.arange(1, data.num_items + 1)
    scores = model.score_indices(np.zeros(1, dtype=np.int64), [history])[0, 1:]
    contrib, names = model.attribute_contributions(history, items)
    assert len(names) == contrib.shape[1]
    np.testing.assert_allclose(contrib.sum(axis=1), scores, atol=1e-6)
    np.testing.assert_allclose(model.history_contributions(history, items).sum(axis=1), scores, atol=1e-6)


def test_recency_profile_prefers_the_latest_genre() -> None:
    data, features = catalogue()
    model = ContentRecommender(item_features=features, half_life=1.0).fit(data)
    idx = data.items.indices
    recs = model.recommend_indices(np.zeros(1, dtype=np.int64), [idx(["c1", "c2", "d1"])], k=1)
    assert data.items.id(int(recs.item_idx[0, 0])) == "d2"  # the drama watched last outweighs two older comedies
    uniform = ContentRecommender(item_features=features, profile="uniform").fit(data)
    recs = uniform.recommend_indices(np.zeros(1, dtype=np.int64), [idx(["c1", "c2", "d1"])], k=1)
    assert data.items.id(int(recs.item_idx[0, 0])) == "c3"


def test_a_cold_item_in_the_catalogue_is_recommended_by_its_features() -> None:
    data, features = catalogue()
    items = IdVocabulary([*data.items.all_ids, "cold"], kind="item")
    data = data.with_vocabularies(data.users, items)
    model = ContentRecommender(item_features=features).fit(data)
    assert model.popularity_ is not None and model.popularity_[items.get("cold")] == 0  # no events
    recs = model.recommend(["a"], k=2)
    assert set(recs.items[0].tolist()) == {"c3", "cold"}


def test_no_item_features_is_a_one_line_config_error() -> None:
    data, _ = catalogue()
    with pytest.raises(ConfigError) as info:
        create_model("content").fit(data)
    assert "\n" not in str(info.value) and "--items" in str(info.value)
    with pytest.raises(ConfigError, match="none of the 6 items"):
        ContentRecommender(item_features=ItemFeatures(attributes={"zz": ["genre=X"]}, fields=["genre"])).fit(data)


def test_english_function_words_in_titles_are_not_tokens_nor_reasons() -> None:
    """'The' shared by every title would match every film and be given as a reason; the default leaves it out
    (``title_stop_words='english'``), 'none' keeps every word."""
    data, _ = catalogue()
    features = ItemFeatures(
        titles={"c1": "The Wind", "c2": "The Rain", "c3": "Of the Wind", "d1": "The Sea", "d2": "A Sea", "h1": "The"},
        attributes={},
        fields=[],
    )
    model = ContentRecommender(item_features=features).fit(data)
    assert not {"title=the", "title=of", "title=a"} & set(model.tokens_)
    assert {"title=wind", "title=rain", "title=sea"} <= set(model.tokens_)
    recs = model.recommend(["a"], k=1)  # history: The Wind, The Rain
    assert recs.items[0][0] == "c3"  # the other 'wind' film, not one sharing only 'the'
    e = explain(model, model.history(1), recs.item_idx[0][:1], top=5)[0]
    assert [a.name for a in e.attributions] == ["title=wind"]
    every_word = ContentRecommender(item_features=features, title_stop_words="none").fit(data)
    assert {"title=the", "title=of", "title=a"} <= set(every_word.tokens_)
    e = explain(every_word, every_word.history(1), recs.item_idx[0][:1], top=5)[0]
    assert "title=the" in [a.name for a in e.attributions]
