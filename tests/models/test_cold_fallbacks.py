"""Cold-start fallbacks of every model: demographic popularity for described users without a history, global
popularity otherwise, and cold items ranked by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec.base import Recommender
from attnrec.data.demographics import DemographicPopularity
from attnrec.data.features import ItemFeatures, UserFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError
from attnrec.models.content import ContentRecommender
from attnrec.registry import create_model

WOMEN, MEN = 25, 40  # men are more numerous: global popularity favours their items


def planted() -> tuple[Interactions, UserFeatures]:
    """Women watch A1, A2 (and B1); men watch B1, B2, B3. Global popularity: B1 first, then B2, B3; among women A1.

    User features describe every trained user plus 'w-new' and 'm-new' who have no events; each user also has a
    zip code of their own (a group far below min_users, which must be ignored)."""
    users: list[str] = []
    items: list[str] = []
    attributes: dict[str, list[str]] = {}
    numeric: dict[str, dict[str, float]] = {}
    for n in range(WOMEN):
        u = f"w{n}"
        users += [u] * 3
        items += ["A1", "A2", "B1"] if n % 2 else ["A1", "A2", "A3"]
        attributes[u] = ["gender=F", f"zip={n}"]
        numeric[u] = {"age": 20.0 + n}
    for n in range(MEN):
        u = f"m{n}"
        users += [u] * 3
        items += ["B1", "B2", "B3"]
        attributes[u] = ["gender=M", f"zip={100 + n}"]
        numeric[u] = {"age": 20.0 + n}
    attributes["w-new"] = ["gender=F", "zip=999"]
    attributes["m-new"] = ["gender=M", "zip=998"]
    uvocab = IdVocabulary.from_ids(users, kind="user")
    ivocab = IdVocabulary.from_ids(items, kind="item")
    data = Interactions(uvocab, ivocab, uvocab.indices(users), ivocab.indices(items), None, None, None, None).sorted()
    features = UserFeatures(
        attributes=attributes,
        fields=["gender", "zip"],
        numeric=numeric,
        kinds={"gender": "categorical", "zip": "categorical", "age": "numeric"},
    )
    return data, features


@pytest.mark.parametrize("name", ["itemknn", "ease", "userknn"])
def test_a_cold_woman_gets_the_womens_items_first_with_fallback_demographic(name: str) -> None:
    data, features = planted()
    model = create_model(name).set_features(users=features).fit(data)
    recs = model.recommend(["w-new", "m-new"], k=2)
    assert recs.items[0][0] == "A1" and set(recs.items[0]) == {"A1", "A2"}
    assert recs.items[1][0] == "B1"
    assert recs.fallback_name(0) == "demographic" and recs.fallback_name(1) == "demographic"
    assert recs.fallback.tolist() == [True, True]


def test_request_time_features_and_unknown_users() -> None:
    data_features = planted()
    data, features = data_features
    model = create_model("ease").set_features(users=features).fit(data)
    recs = model.recommend(["stranger", "stranger", "stranger"], k=1, user_features=[{"gender": "F"}, None, {}])
    assert recs.items[:, 0].tolist() == ["A1", "B1", "B1"]
    assert [recs.fallback_name(i) for i in range(3)] == ["demographic", "popularity", "popularity"]
    # a value nobody has, or a group below min_users (a zip code), is no demographic answer
    recs = model.recommend(["x", "y"], k=1, user_features=[{"gender": "X"}, {"zip": "3"}])
    assert [recs.fallback_name(i) for i in range(2)] == ["popularity", "popularity"]
    # a numeric field is bucketed (5 quantile buckets of about 13 users: below min_users=20, unused here)
    assert model.demographic_groups("z", {"age": 33}) is None
    small = DemographicPopularity.fit(data_features[1], data_features[0], min_users=5)
    assert small is not None
    (token,) = small.tokens_for({"age": 33, "shoe": 42})
    assert token.startswith("age=") and token in small.groups
    with pytest.raises(ConfigError, match="user_features"):
        model.recommend(["a", "b"], user_features=[None])


def test_known_users_are_still_personalised_and_models_without_user_features_are_unchanged() -> None:
    data, _ = planted()
    plain = create_model("itemknn").fit(data)
    recs = plain.recommend(["w-new", "w0"], k=1)
    assert recs.items[0][0] == "B1" and recs.fallback_name(0) == "popularity"
    assert recs.fallback_name(1) is None and recs.fallback_kind is not None and recs.fallback_kind[1] == ""
    assert plain.demographics_ is None and plain.demographic_groups("w0") is None


def test_demographic_fallback_is_saved_with_the_model(tmp_path: Path) -> None:
    data, features = planted()
    model = create_model("itemknn").set_features(users=features).fit(data)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    recs = loaded.recommend(["w-new", "nobody"], k=1, user_features=[None, {"gender": "F", "age": 30}])
    assert recs.items[:, 0].tolist() == ["A1", "A1"]
    assert [recs.fallback_name(i) for i in range(2)] == ["demographic", "demographic"]


def test_rule_is_the_mean_of_group_shares() -> None:
    data, features = planted()
    demo = DemographicPopularity.fit(features, data, min_users=20)
    assert demo is not None
    assert set(demo.groups) >= {"gender=F", "gender=M"} and not any(g.startswith("zip=") for g in demo.groups)
    women = demo.shares[demo.groups.index("gender=F")]
    a1 = data.items.get("A1")
    assert women[a1] == pytest.approx(WOMEN / (3 * WOMEN))  # every woman watched A1: 1/3 of their events
    both = demo.scores(["gender=F", "gender=M"])
    assert both is not None
    men = demo.shares[demo.groups.index("gender=M")]
    np.testing.assert_allclose(both, (women + men) / 2, rtol=1e-6)
    assert demo.scores(["zip=3"]) is None


def test_a_cold_item_of_a_liked_genre_is_ranked_first_by_content() -> None:
    ids = ["c1", "c2", "d1", "d2", "d3"]
    features = ItemFeatures(
        attributes={"c1": ["genre=Comedy"], "c2": ["genre=Comedy"], "d1": ["genre=Drama"], "d2": ["genre=Drama"]}
        | {"d3": ["genre=Drama"], "new-comedy": ["genre=Comedy"], "new-horror": ["genre=Horror"]},
        fields=["genre"],
    )
    users = IdVocabulary(["fan", "b", "c"], kind="user")
    items = IdVocabulary(ids, kind="item")
    u = users.indices(["fan", "fan", "b", "b", "b", "c", "c"])
    i = items.indices(["c1", "c2", "d1", "d2", "d3", "d1", "d2"])
    data = Interactions(users, items, u, i, None, None, None, None).sorted().extend_items(["new-comedy", "new-horror"])
    content = ContentRecommender(item_features=features).fit(data)
    recs = content.recommend(["fan"], k=3)
    assert recs.items[0][0] == "new-comedy" and recs.fallback_name(0) is None
    # popularity cannot rank it: the cold item has no events, the dramas come first
    pop = create_model("popularity").fit(data)
    assert "new-comedy" not in pop.recommend(["fan"], k=3).items[0][:2].tolist()
