"""Attention explanations: rollout arithmetic, planted-sequence explanations, faithfulness, heatmap, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attnrec.cli.main import app
from attnrec.explain.attention import attention_rollout, explain_history, position_weights
from attnrec.explain.faithfulness import faithfulness
from attnrec.explain.plot import explanation_heatmap
from attnrec.explain.text import recommendations_payload
from attnrec.models.sasrec import SASRec


def test_rollout_of_identity_attention_is_identity() -> None:
    eye = torch.eye(4).expand(2, 3, 4, 4)  # (B, H, L, L)
    assert torch.allclose(attention_rollout([eye, eye]), torch.eye(4).expand(2, 4, 4))


def test_rollout_hand_computed() -> None:
    # one layer, one head, last query attends 0.2/0.8 to positions 0/1: with residual 0.5 -> (0.1, 0.4 + 0.5)
    attn = torch.tensor([[[[1.0, 0.0], [0.2, 0.8]]]])
    roll = attention_rollout([attn])
    assert torch.allclose(roll[0, 1], torch.tensor([0.1, 0.9]))
    # two layers multiply: R = A2 @ A1
    roll2 = attention_rollout([attn, attn])
    a = torch.tensor([[1.0, 0.0], [0.1, 0.9]])
    assert torch.allclose(roll2[0], a @ a)


def test_planted_next_item_is_explained_by_the_last_item(planted_model: SASRec) -> None:
    # history 3,4,5,6 -> the model recommends 7; the item that drives it is 6 (the pattern is "last + 1")
    history = np.array([3, 4, 5, 6])
    recs = planted_model.recommend_indices(np.array([0]), [history], k=1)
    assert recs.item_idx[0, 0] == 7
    for method in ("rollout", "rollout-grad"):
        because = explain_history(planted_model, history, recs.item_idx[0], top=4, method=method)[0]
        weights = [w for _, w in because]
        assert weights == sorted(weights, reverse=True)
        assert 0.99 <= sum(weights) <= 1.0 + 1e-9
    # the attention of the last position goes to the last item; (gradient x input may credit the first item
    # instead: with positions counted from the start, "first item + offset" predicts the next item equally well)
    because = explain_history(planted_model, history, recs.item_idx[0], top=4, method="rollout")[0]
    assert because[0][0] == 6, because


def test_weights_are_distributions_and_repeats_are_summed(planted_model: SASRec) -> None:
    history = np.array([5, 9, 5, 10])
    w = position_weights(planted_model, history, np.array([11, 12]), method="rollout-grad")
    assert w.shape == (2, 4) and np.allclose(w.sum(axis=1), 1.0) and (w >= 0).all()
    because = explain_history(planted_model, history, np.array([11]), top=5, method="rollout")[0]
    assert sorted(i for i, _ in because) == [5, 9, 10]
    base = position_weights(planted_model, history, np.array([11]))[0]
    assert dict(because)[5] == pytest.approx(base[0] + base[2])


def test_faithfulness_on_planted_model(planted_model: SASRec) -> None:
    histories = [planted_model.history(u) for u in range(1, 121)]
    report = faithfulness(planted_model, histories, removed=3, method="rollout", seed=0)
    assert report.users == 120
    # on "last + 1" data the explanation points at the last item; removing it must hurt more than random picks
    assert report.fraction_top_drop_larger == report.beats_random > 0.6
    assert report.mean_drop_explained > report.mean_drop_random


def test_payload_has_because_with_weights(planted_model: SASRec) -> None:
    payload = recommendations_payload(planted_model, histories=[["3", "4", "5"]], k=2, explain=True)
    first = payload[0]["items"][0]
    assert first["item"] == "6"
    assert first["because"][0]["item"] == "5" and 0 < first["because"][0]["weight"] <= 1


def test_heatmap_png(planted_model: SASRec, tmp_path: Path) -> None:
    out = explanation_heatmap(planted_model, history=["2", "3", "4", "5"], k=3, last=4, out=tmp_path / "e.png")
    image = mpimg.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01  # not a blank canvas


def test_cli_recommend_explain_and_explain_command(planted_model: SASRec, tmp_path: Path) -> None:
    run = tmp_path / "run"
    planted_model.save(run)
    runner = CliRunner()
    result = runner.invoke(app, ["recommend", str(run), "--user", "u1", "--k", "3", "--explain", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload[0]["user"] == "u1" and all(item["because"] for item in payload[0]["items"])
    png = tmp_path / "u1.png"
    result = runner.invoke(app, ["explain", str(run), "--user", "u1", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000
    result = runner.invoke(app, ["explain", str(run), "--user", "nobody", "--out", str(png)])
    assert result.exit_code == 2 and "nobody" in result.stderr
