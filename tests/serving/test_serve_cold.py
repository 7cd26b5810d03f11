"""The service's cold-start answers: a described user without events and an unknown user with demographics given
in the request get the 'demographic' fallback; others keep 'popularity' (planted: women like A, men like B)."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from test_cold_fallbacks import planted

from attnrec.registry import create_model


def test_service_says_which_fallback_answered(tmp_path: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    data, features = planted()
    run = tmp_path / "run"
    create_model("itemknn").set_features(users=features).fit(data).save(run)
    client: TestClient = make_client(run)
    body = client.get("/users/w-new/recommendations", params={"k": 2}).json()
    assert body["fallback"] == "demographic" and body["items"][0]["item_id"] == "A1"
    body = client.get("/users/stranger/recommendations", params={"k": 1}).json()
    assert body["fallback"] == "popularity" and body["items"][0]["item_id"] == "B1"
    batch = client.post(
        "/recommendations", json={"users": ["stranger", "w0"], "k": 1, "user_features": {"gender": "F"}}
    ).json()["results"]
    assert batch[0]["fallback"] == "demographic" and batch[0]["items"][0]["item_id"] == "A1"
    assert batch[1]["fallback"] is None  # a known user with a history: the model's own answer
    anonymous = client.post("/recommendations", json={"history": [], "k": 1, "user_features": {"gender": "M"}})
    assert anonymous.json()["results"][0]["fallback"] == "demographic"
    assert anonymous.json()["results"][0]["items"][0]["item_id"] == "B1"
    # the cache must not answer a request with other demographics from an earlier one
    again = client.post("/recommendations", json={"users": ["stranger"], "k": 1}).json()["results"][0]
    assert again["fallback"] == "popularity" and again["items"][0]["item_id"] == "B1"
