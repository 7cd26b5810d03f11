"""Reasons that are not history items (item attributes, feature fields) reach `recommend --explain` and the
service's `because` with their kind and name; history-item reasons keep their 0.1 shape."""

from __future__ import annotations

import numpy as np

from attnrec.data.features import ItemFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.explain.text import recommendations_payload
from attnrec.models.content import ContentRecommender
from attnrec.serving.schemas import Because


def comedy_fan() -> ContentRecommender:
    ids = ["c1", "c2", "c3", "d1", "d2"]
    features = ItemFeatures(
        titles={i: f"Title {i}" for i in ids},
        attributes={"c1": ["genre=Comedy"], "c2": ["genre=Comedy"], "c3": ["genre=Comedy"], "d1": ["genre=Drama"]}
        | {"d2": ["genre=Drama"]},
        fields=["genre"],
    )
    users = IdVocabulary(["a", "b"], kind="user")
    items = IdVocabulary(ids, kind="item")
    u = np.asarray([1, 1, 2, 2], dtype=np.int64)
    i = items.indices(["c1", "c2", "d1", "d2"])
    data = Interactions(users, items, u, i, None, None, None, None).sorted()
    return ContentRecommender(item_features=features).fit(data)


def test_recommend_explain_shows_the_matching_attribute() -> None:
    model = comedy_fan()
    payload = recommendations_payload(model, users=["a"], k=1, explain=True)
    top = payload[0]["items"][0]
    assert top["item_id"] == "c3"
    first = top["because"][0]
    assert (first["kind"], first["name"]) == ("item_attribute", "genre=Comedy")
    assert first["weight"] > 0.5  # the genre outweighs the title word every title shares
    assert all(set(b) == {"kind", "name", "weight"} for b in top["because"])


def test_service_because_carries_kind_and_name_and_keeps_the_item_shape() -> None:
    attribute = Because(kind="item_attribute", item_id=None, name="genre=Comedy", weight=0.7)
    item = Because(item_id="i4", name=None, weight=0.3)
    assert attribute.model_dump() == {"kind": "item_attribute", "name": "genre=Comedy", "weight": 0.7}
    assert item.model_dump() == {"item_id": "i4", "weight": 0.3}
