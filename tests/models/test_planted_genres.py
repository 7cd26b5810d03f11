"""Collaborative-filtering models find the genre tastes planted by make_synthetic (and popularity does not)."""

import numpy as np
import pytest

from attnrec.data.synthetic import make_synthetic
from attnrec.models.ease import EASE
from attnrec.models.itemknn import ItemKNN
from attnrec.models.popularity import Popularity
from attnrec.training.options import TrainingOptions


@pytest.fixture(scope="module")
def synth():
    data = make_synthetic(num_users=200, num_items=150, events_per_user=20, seed=4)
    return data, data.to_interactions()


def _favourite_share(model, data, inter) -> float:
    model.fit(inter, options=TrainingOptions(seed=0, threads=1))
    users = inter.users.all_ids
    recs = model.recommend(users, k=10)
    genres = dict(zip(data.items["item_id"], data.items["genres"], strict=True))
    hits = [
        any(g in data.user_genres[u] for g in genres[i].split("|"))
        for row, u in enumerate(users)
        for i in recs.items[row]
        if i
    ]
    return float(np.mean(hits))


def test_cf_models_recommend_favourite_genres(synth) -> None:
    data, inter = synth
    pop = _favourite_share(Popularity(), data, inter)
    for model in (EASE(l2=50.0), ItemKNN(neighbors=50)):
        share = _favourite_share(model, data, inter)
        # chance level is about 0.25 (1-2 of 8 genres, some items have two); popularity's unseen top items are
        # mostly from other genres (the popular favourites are already watched)
        assert share > 0.5, f"{type(model).__name__}: {share:.2f} of top-10 items in a favourite genre"
        assert share > pop + 0.3, f"{type(model).__name__}: {share:.2f} vs popularity {pop:.2f}"
