"""AutoInt: conformance, a planted pairwise field interaction (XOR) that logistic regression cannot learn, the
field-attention explanation, numeric fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnrec.data.features import ItemFeatures, UserFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.evaluation.ctr import evaluate_ctr
from attnrec.evaluation.metrics import auc
from attnrec.explain.faithfulness import field_faithfulness
from attnrec.explain.methods import default_method, explain
from attnrec.models.autoint import AutoInt
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

TINY = {"embed_dim": 8, "attention_dim": 8, "epochs": 30, "batch_size": 64, "lr": 3e-3}


def opts() -> TrainingOptions:
    return TrainingOptions(seed=0, threads=1, device="cpu")


class TestAutoInt(RecommenderConformance):
    # With ids only (no feature fields), AutoInt does not reliably recover the checkerboard: 5-14 of 40 users got
    # an item of another group in their top 3 across lr / epochs / widths tried. It is a feature-interaction model;
    # its planted check is the XOR interaction below.
    planted_block = False

    def make_model(self) -> AutoInt:
        return AutoInt(TINY)


class TestPlainAutoInt(RecommenderConformance):
    planted_block = False  # the variant only needs the contract; the planted checks run on the default above

    def make_model(self) -> AutoInt:
        return AutoInt(TINY, dnn_hidden=(), num_layers=1, epochs=5)


def xor_data(num_users: int = 200, num_items: int = 60, per_user: int = 20, seed: int = 0):  # type: ignore[no-untyped-def]
    """Users have side ``a`` (x / y) and a noise field ``c``; items have ``b`` (p / q) and a noise field ``d``.
    A user clicks an item exactly when ``(a == x) == (b == p)``: a pure pairwise interaction, invisible to any
    model that adds one weight per field value."""
    rng = np.random.default_rng(seed)
    users = [f"u{u}" for u in range(1, num_users + 1)]
    items = [f"i{i}" for i in range(1, num_items + 1)]
    a = rng.integers(0, 2, num_users)
    b = rng.integers(0, 2, num_items)
    uf = UserFeatures(
        attributes={u: [f"a={'xy'[a[k]]}", f"c={rng.integers(3)}"] for k, u in enumerate(users)},
        fields=["a", "c"],
        kinds={"a": "categorical", "c": "categorical"},
    )
    itf = ItemFeatures(
        attributes={i: [f"b={'pq'[b[k]]}", f"d={rng.integers(3)}"] for k, i in enumerate(items)},
        fields=["b", "d"],
        kinds={"b": "categorical", "d": "categorical"},
    )
    u_, i_ = [], []
    for u in range(num_users):
        for i in rng.choice(num_items, size=per_user, replace=False).tolist():
            u_.append(u + 1), i_.append(i + 1)
    uu, ii = np.asarray(u_), np.asarray(i_)
    label = (a[uu - 1] == b[ii - 1]).astype(np.int8)
    data = Interactions(
        IdVocabulary.from_ids(users, kind="user"),
        IdVocabulary.from_ids(items, kind="item"),
        uu,
        ii,
        None,
        None,
        np.arange(len(uu)),
        label,
    ).sorted()
    return data, uf, itf


@pytest.fixture(scope="module")
def xor_fit() -> tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures]:
    data, uf, itf = xor_data()
    held = np.random.default_rng(1).random(len(data)) < 0.2
    train, test = data.subset(~held), data.subset(held)
    model = AutoInt(TINY, id_fields=False).set_features(items=itf, users=uf).fit(train, options=opts())
    return model, train, test, uf, itf


@pytest.fixture(scope="module")
def xor_plain(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures],
) -> AutoInt:
    """Plain AutoInt (no DNN) on the same XOR data: the XOR can only go through the attention between fields."""
    _, train, _, uf, itf = xor_fit
    return AutoInt(TINY, id_fields=False, dnn_hidden=()).set_features(items=itf, users=uf).fit(train, options=opts())


def logistic_regression_auc(train: Interactions, test: Interactions, uf: UserFeatures, itf: ItemFeatures) -> float:
    """A logistic regression on the one-hot field values (what AutoInt adds on top of)."""
    ut, it = uf.table(train.users), itf.table(train.items)
    width_u, width_i = ut.total_size, it.total_size

    def onehot(inter: Interactions) -> torch.Tensor:
        x = np.zeros((len(inter), width_u + width_i), dtype=np.float32)
        rows = np.arange(len(inter))
        for col in ut.global_ids(inter.user_idx).T:
            x[rows, col] = 1.0
        for col in it.global_ids(inter.item_idx).T:
            x[rows, width_u + col] = 1.0
        return torch.from_numpy(x)

    torch.manual_seed(0)
    lin = torch.nn.Linear(width_u + width_i, 1)
    optim = torch.optim.LBFGS(lin.parameters(), max_iter=200)
    x, y = onehot(train), torch.from_numpy(train.label.astype(np.float32))  # type: ignore[union-attr]

    def closure() -> torch.Tensor:
        optim.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(x).squeeze(-1), y)
        loss.backward()
        return loss

    optim.step(closure)  # type: ignore[arg-type]
    with torch.no_grad():
        scores = lin(onehot(test)).squeeze(-1).numpy()
    return auc(test.label.astype(np.float64), scores)  # type: ignore[union-attr]


def test_registered_as_a_click_model() -> None:
    model = create_model("autoint")
    assert isinstance(model, AutoInt)
    assert model.task == "ctr" and model.predicts_probabilities and not model.uses_history


def test_learns_the_pairwise_interaction_logistic_regression_cannot(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures],
) -> None:
    model, train, test, uf, itf = xor_fit
    got = evaluate_ctr(model, test, n_boot=0).summary["auc"]
    baseline = logistic_regression_auc(train, test, uf, itf)
    assert baseline < 0.65, f"logistic regression reached AUC {baseline:.3f} on XOR data"
    assert got > 0.95, f"AutoInt AUC {got:.3f} on held-out impressions"


def test_field_attention_names_the_interacting_pair_without_the_dnn(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures], xor_plain: AutoInt
) -> None:
    _, _, test, _, _ = xor_fit
    model = xor_plain
    assert evaluate_ctr(model, test, n_boot=0).summary["auc"] > 0.95
    users, items = test.user_idx[:20], test.item_idx[:20]
    top = [model.explain_fields(int(u), np.asarray([i]), top=1)[0][0][0] for u, i in zip(users, items, strict=True)]
    share = np.mean([t == "user.a x item.b" for t in top])
    assert share >= 0.8, f"top field pair: {top}"
    got = explain(model, np.zeros(0, dtype=np.int64), items[:3], top=2, method="field-attention")
    assert all(a.kind == "feature_field" and " x " in str(a.name) for e in got for a in e.attributions)
    assert all(e.attributions for e in got)


@pytest.mark.parametrize("which", ["default", "plain"])
def test_field_search_names_the_fields_of_the_interaction(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures], xor_plain: AutoInt, which: str
) -> None:
    """The default explanation names single fields. For the clicked pairs (high scores: what gets recommended)
    the first is one of the two that make the XOR (either one missing breaks it), and the two carry most of the
    drop (once one is missing the other often adds nothing: the XOR is gone already). That holds whether the
    interaction goes through the attention (plain) or through the DNN as well (the AutoInt+ default)."""
    default, _, test, _, _ = xor_fit
    model = default if which == "default" else xor_plain
    assert default_method(model) == "field-search"
    clicked = test.label == 1
    got = [
        [(str(a.name).split("=")[0], a.weight) for a in e.attributions]  # "user.a=x": the field and its value
        for u, i in zip(test.user_idx[clicked][:20].tolist(), test.item_idx[clicked][:20].tolist(), strict=True)
        for e in explain(model, np.zeros(0, dtype=np.int64), np.asarray([i]), top=4, user=u)
    ]
    assert all(g and g[0][0] in ("user.a", "item.b") for g in got), got
    xor_part = [sum(w for n, w in g if n in ("user.a", "item.b")) for g in got]
    assert all(x > 3 * (sum(w for _, w in g) - x) for x, g in zip(xor_part, got, strict=True)), got


def test_numeric_fields_are_value_times_embedding() -> None:
    """A numeric user field enters as value x v: the probability moves monotonically with a planted value."""
    users = [f"u{u}" for u in range(1, 101)]
    rng = np.random.default_rng(0)
    age = rng.uniform(10, 70, 100)
    uf = UserFeatures(numeric={u: {"age": float(age[k])} for k, u in enumerate(users)}, kinds={"age": "numeric"})
    u_ = np.repeat(np.arange(1, 101), 10)
    i_ = np.tile(np.arange(1, 11), 100)
    label = (age[u_ - 1] > 40).astype(np.int8)
    data = Interactions(
        IdVocabulary.from_ids(users, kind="user"),
        IdVocabulary.from_ids([f"i{i}" for i in range(1, 11)], kind="item"),
        u_,
        i_,
        None,
        None,
        np.arange(len(u_)),
        label,
    ).sorted()
    model = AutoInt(TINY, id_fields=False).set_features(users=uf).fit(data, options=opts())
    assert model.net_ is not None and "user.age" in model.net_.names
    old, young = int(np.argmax(age)) + 1, int(np.argmin(age)) + 1
    probs = model.score_pairs(np.asarray([old, young]), np.asarray([1, 1]))
    assert probs[0] > 0.8 and probs[1] < 0.2, probs
    # explanations name a numeric field with the raw value, not the standardised one; an unknown user has none
    assert model.field_names == ["user.age"]
    assert model.field_values(old, 1) == [f"{age[old - 1]:g}"] and model.field_values(0, 1) == [""]


def test_recommend_explain_explains_the_asking_user(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures], xor_plain: AutoInt
) -> None:
    """`recommend --explain` (and the service) pass the user to the field attention: the known user's own
    fields take part, so the interacting pair names a user field."""
    from attnrec.explain.text import recommendations_payload

    model, train, _, _, _ = xor_fit
    assert model.users_ is not None
    users = [model.users_.id(int(u)) for u in np.unique(train.user_idx)[:20]]
    payload = recommendations_payload(model, users=users, k=1, explain=True)
    top = [entry["items"][0]["because"][0] for entry in payload if entry["items"][0].get("because")]
    assert len(top) == len(users)
    assert all(b["kind"] == "feature_field" for b in top)
    share = np.mean([b["name"].split("=")[0] in ("user.a", "item.b") for b in top])
    assert all("=" in b["name"] for b in top)  # the user's or item's value of the field: "user.a=x"
    assert share >= 0.8, f"top fields: {[b['name'] for b in top]}"
    assert payload[0]["explanation"]["method"] == "field-search"
    assert payload[0]["explanation"]["note"].startswith("features whose removal together")
    pairs = recommendations_payload(xor_plain, users=users, k=1, explain=True, explain_method="field-attention")
    share = np.mean([e["items"][0]["because"][0]["name"] == "user.a x item.b" for e in pairs])
    assert share >= 0.8 and pairs[0]["explanation"]["note"].startswith("feature-field pairs")


def test_dropping_a_field_of_the_explained_pair_removes_the_interaction(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures],
) -> None:
    model, _, test, _, _ = xor_fit
    users, items = test.user_idx[:200], test.item_idx[:200]
    assert model.field_attention(int(users[0]), items[:1])[1] == ["user.a", "user.c", "item.b", "item.d"]
    labels = test.label[:200].astype(np.float64)  # type: ignore[index]

    def scores(field: int | None) -> np.ndarray:
        dropped = np.zeros((1, 4), dtype=bool)
        if field is not None:
            dropped[0, field] = True
        pairs = zip(users.tolist(), items.tolist(), strict=True)
        return np.array([model.score_without_fields(u, np.asarray([i]), dropped)[0] for u, i in pairs])

    plain = scores(None)
    np.testing.assert_allclose(plain, model.score_pairs(users, items), rtol=1e-5, atol=1e-6)
    assert auc(labels, plain) > 0.95
    # user.a (or item.b) read as missing: the XOR cannot be computed; the noise field user.c changes nothing
    assert auc(labels, scores(0)) < 0.7 and auc(labels, scores(2)) < 0.7
    assert auc(labels, scores(1)) > 0.9
    with pytest.raises(ValueError, match="'dropped' must have the shape"):
        model.score_without_fields(1, np.asarray([1, 2]), np.zeros((1, 4), dtype=bool))

    report = field_faithfulness(model, np.unique(users)[:40], removed=1, seed=0)
    assert report.global_fields[0] in ("user.a", "item.b")
    assert report.mean_drop_explained > 1.5 * report.mean_drop_random
    assert report.beats_random + report.ties_random >= 0.9


def test_explain_picture_shows_fields(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures], tmp_path: Path
) -> None:
    """`attnrec explain` for a model that explains by fields: the attention between fields and each recommended
    item's drop per missing field, not the (empty) history panels."""
    import matplotlib.image as mpimg

    from attnrec.explain.plot import explanation_heatmap, field_heatmap

    model, _, _, _, _ = xor_fit
    assert model.users_ is not None and model.items_ is not None
    user = model.users_.id(1)
    path = explanation_heatmap(model, user=user, k=5, out=tmp_path / "fields.png")
    image = mpimg.imread(path)
    direct = mpimg.imread(
        field_heatmap(
            model,
            1,
            model.recommend_indices(np.asarray([1]), [model.history(1)], k=5).item_idx[0],
            who=f"user {user}",
            out=tmp_path / "direct.png",
        )
    )
    assert image.shape == direct.shape and np.array_equal(image, direct)
    assert image.shape[0] > 300 and image.std() > 0.05  # two panels of content, not a blank canvas
    # an anonymous history of unknown items still has the item's fields to explain
    assert explanation_heatmap(model, history=["not-an-item"], k=3, out=tmp_path / "anon.png").is_file()


def test_web_picture_of_a_field_model_shows_its_fields(
    xor_fit: tuple[AutoInt, Interactions, Interactions, UserFeatures, ItemFeatures],
) -> None:
    """The service's web picture (``/web/attention.svg``) for AutoInt: the top item's fields, named with the
    user's and the item's values, weighted by their drops; not an empty row over the history."""
    from types import SimpleNamespace

    from attnrec.serving.web.views import attention_grid

    model, train, _, _, _ = xor_fit
    user = int(train.user_idx[0])
    top = int(model.recommend_indices(np.asarray([user]), [model.history(user)], k=1).item_idx[0, 0])
    grid = attention_grid(SimpleNamespace(model=model), model.history(user), top, user_idx=user)  # type: ignore[arg-type]
    assert grid.by_fields and grid.rows == ["top item (field-occlusion)", "field attention"]
    assert [c.split("=")[0] for c in grid.columns] == model.field_names
    assert all("=" in c for c in grid.columns)  # every field of this pair has a value
    drops = dict(zip(model.field_names, grid.values[0], strict=True))
    assert max(drops, key=drops.__getitem__) in ("user.a", "item.b")  # a clicked-looking pair rests on the XOR
    np.testing.assert_allclose(grid.values.sum(axis=1), 1.0)
    empty = attention_grid(SimpleNamespace(model=model), model.history(user), None, user_idx=user)  # type: ignore[arg-type]
    assert empty.by_fields and empty.note == "no recommended item to explain"
