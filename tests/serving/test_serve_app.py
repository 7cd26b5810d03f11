"""Issue 4, points 1 and 3: the app, its operational endpoints, live histories, read-your-writes, batch and
anonymous recommendations, explanations and titles."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import post_events, top_items

from attnrec.base import Recommender
from attnrec.data.features import ItemFeatures
from attnrec.models.itemknn import ItemKNN
from attnrec.serving.app import create_app, get_service
from attnrec.serving.holder import LoadedModel, ModelHolder, load_run
from attnrec.serving.service import RecommendationService
from attnrec.serving.settings import ServeSettings
from attnrec.serving.store import SQLiteStore, StoreUnavailableError


# ---------------------------------------------------------------------------------------------- point 1: app
def test_create_app_loads_nothing_until_started(knn_run: Path, tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite3"
    app = create_app(ServeSettings(run_dir=knn_run, db=f"sqlite:///{db}"))
    assert app.state.service.holder.current is None
    assert not db.exists()  # the store opens in the lifespan, not in create_app


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"].startswith("knn-run-")


class GatedHolder(ModelHolder):
    """A holder whose first load waits for a gate (to observe /ready before the model is there)."""

    def __init__(self, run_dir: Path, gate: threading.Event) -> None:
        super().__init__(run_dir)
        self.gate = gate

    def reload(self, run_dir: Any = None) -> Any:
        assert self.gate.wait(10)
        return super().reload(run_dir)


def test_ready_is_503_until_the_model_is_loaded(make_client: Any, knn_run: Path, store_factory: Any) -> None:
    gate = threading.Event()
    settings = ServeSettings(run_dir=knn_run, load_in_background=True)
    service = RecommendationService(settings, holder=GatedHolder(knn_run, gate), store_factory=store_factory)
    client = make_client(service=service, load_in_background=True)
    assert client.get("/health").status_code == 200
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready" and "not loaded" in response.json()["detail"]
    assert client.get("/users/u0_0/recommendations").status_code == 503  # not a 500
    # events are accepted (durably) even before the model is there
    assert post_events(client, {"user_id": "x", "item_id": "i2"}).json()["stored"] == 1
    gate.set()
    for _ in range(200):
        if client.get("/ready").status_code == 200:
            break
        threading.Event().wait(0.02)
    assert client.get("/ready").status_code == 200
    assert top_items(client.get("/users/x/recommendations?k=1")) == ["i3"]


def _serving_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("attnrec")]


def test_ready_polling_logs_each_state_change_once_and_no_warning(
    make_client: Any, knn_run: Path, store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gate = threading.Event()
    settings = ServeSettings(run_dir=knn_run, load_in_background=True)
    service = RecommendationService(settings, holder=GatedHolder(knn_run, gate), store_factory=store_factory)
    client = make_client(service=service, load_in_background=True)
    polls = [client.get("/ready") for _ in range(5)]
    assert [p.status_code for p in polls] == [503] * 5
    assert polls[0].json()["detail"] == "model loading (not loaded yet)"
    records = _serving_records(caplog)
    assert [r for r in records if r.levelno >= logging.WARNING] == []  # polling while loading is normal
    loading = [r for r in records if "model loading" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in loading] == [
        (logging.INFO, "not ready: model loading (not loaded yet)")
    ]
    gate.set()
    for _ in range(200):
        if client.get("/ready").status_code == 200:
            break
        threading.Event().wait(0.02)
    version = client.get("/ready").json()["model_version"]
    client.get("/ready")
    records = _serving_records(caplog)
    assert [r.getMessage() for r in records if r.getMessage().startswith("ready:")] == [f"ready: serving {version}"]
    assert [r for r in records if r.levelno >= logging.WARNING] == []


def test_a_store_outage_is_one_warning_however_often_ready_is_polled(
    make_client: Any, knn_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = ServeSettings(run_dir=knn_run, load_in_background=False)
    service = RecommendationService(settings, store_factory=lambda: DeadStore(tmp_path / "dead.sqlite3"))
    client = make_client(service=service)
    assert [client.get("/ready").status_code for _ in range(4)] == [503] * 4
    warnings = [r.getMessage() for r in _serving_records(caplog) if r.levelno == logging.WARNING]
    assert warnings == ["not ready: event store unavailable: store down (test)"]


class DeadStore(SQLiteStore):
    def ping(self) -> None:
        raise StoreUnavailableError("store down (test)")

    def user_events(self, user_id: str, limit: int | None = None) -> Any:
        raise StoreUnavailableError("store down (test)")


def test_ready_is_503_when_the_store_does_not_answer(make_client: Any, knn_run: Path, tmp_path: Path) -> None:
    settings = ServeSettings(run_dir=knn_run, load_in_background=False)
    service = RecommendationService(settings, store_factory=lambda: DeadStore(tmp_path / "dead.sqlite3"))
    client = make_client(service=service)
    assert client.get("/ready").status_code == 503
    response = client.get("/users/u0_0/recommendations")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_dependency_override_swaps_the_service(client: TestClient, knn_run: Path, tmp_path: Path) -> None:
    other = RecommendationService(
        ServeSettings(run_dir=knn_run), store_factory=lambda: SQLiteStore(tmp_path / "other.sqlite3")
    )
    other.holder.set(load_run(knn_run))
    other.store.add([], 0.0)
    client.app.dependency_overrides[get_service] = lambda: other  # type: ignore[attr-defined]
    try:
        post_events(client, {"user_id": "o", "item_id": "i4"})
        assert other.store.count() == 1
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
        other.close()


def test_openapi_schema_lists_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/health",
        "/ready",
        "/events",
        "/users/{user_id}/history",
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/admin/reload",
        "/metrics",
    } <= paths
    item = schema["components"]["schemas"]["RecommendedItem"]
    assert set(item["properties"]) == {"item_id", "score", "because", "title"}


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_events_and_fallbacks(client: TestClient, make_client: Any) -> None:
    post_events(client, {"user_id": "m", "item_id": "i2", "event_id": "e-1"}, {"user_id": "m", "item_id": "new"})
    post_events(client, {"user_id": "m", "item_id": "i2", "event_id": "e-1"})
    client.get("/users/nobody/recommendations")
    client.get("/users/m/recommendations")
    text = client.get("/metrics").text
    assert _metric(text, "attnrec_events_stored_total") == 2
    assert _metric(text, "attnrec_events_duplicate_total") == 1
    assert _metric(text, "attnrec_events_unknown_item_total") == 1
    assert _metric(text, "attnrec_fallbacks_total") == 1
    assert 'route="/users/{user_id:path}/recommendations",status="200"} 2.0' in text
    assert "attnrec_http_request_duration_seconds_bucket" in text
    # a second app has its own registry (no global state)
    other = make_client()
    assert _metric(other.get("/metrics").text, "attnrec_events_stored_total") == 0


# -------------------------------------------------------------------------------------- point 3: histories
def test_history_is_training_then_stored_events_in_time_order(client: TestClient) -> None:
    post_events(
        client,
        {"user_id": "u1_0", "item_id": "late", "timestamp": "2024-01-02T00:00:00+00:00"},
        {"user_id": "u1_0", "item_id": "early", "timestamp": 1704067200},  # 2024-01-01T00:00:00Z
        {"user_id": "u1_0", "item_id": "middle", "timestamp": "2024-01-01T12:00:00Z"},
    )
    body = client.get("/users/u1_0/history").json()
    assert body == {"user_id": "u1_0", "items": ["i2", "i3", "early", "middle", "late"]}


def test_read_your_writes_without_retraining(client: TestClient) -> None:
    before = client.get("/users/newbie/recommendations?k=3").json()
    assert before["fallback"] == "popularity"
    assert [i["item_id"] for i in before["items"]][:2] == ["i0", "i1"]
    ack = post_events(client, {"user_id": "newbie", "item_id": "i4"})
    assert ack.status_code == 200 and ack.json()["stored"] == 1 and ack.json()["unknown_users"] == 1
    after = client.get("/users/newbie/recommendations?k=3").json()
    assert after["fallback"] is None  # an unknown user with events is personalised
    assert after["items"][0]["item_id"] == "i5"  # the planted neighbour of i4
    assert "i4" not in top_items(client.get("/users/newbie/recommendations?k=9"))  # seen items are excluded
    # the next event moves the list again
    post_events(client, {"user_id": "newbie", "item_id": "i6"})
    assert set(top_items(client.get("/users/newbie/recommendations?k=2"))) == {"i5", "i7"}


def test_unknown_items_are_stored_counted_and_shown_not_scored(client: TestClient) -> None:
    ack = post_events(client, {"user_id": "u2_0", "item_id": "brand-new-item"}).json()
    assert ack == {"stored": 1, "duplicates": 0, "unknown_items": 1, "unknown_users": 0}
    assert client.get("/users/u2_0/history").json()["items"] == ["i4", "i5", "brand-new-item"]
    rec = client.get("/users/u2_0/recommendations?k=3").json()
    assert rec["fallback"] is None and "brand-new-item" not in top_items_from(rec)


def top_items_from(body: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def test_recommendations_equal_the_model_on_the_live_history(client: TestClient, knn_run: Path) -> None:
    model = Recommender.load(knn_run)
    post_events(client, {"user_id": "u3_1", "item_id": "i0"})
    body = client.get("/users/u3_1/recommendations?k=4").json()
    expected = model.recommend(["u3_1"], histories=[["i6", "i7", "i0"]], k=4)
    assert [(i["item_id"], pytest.approx(i["score"])) for i in body["items"]] == expected.row(0)
    assert body["model_version"] == client.get("/ready").json()["model_version"]


def test_batch_and_anonymous_recommendations(client: TestClient, knn_run: Path) -> None:
    post_events(client, {"user_id": "batch-user", "item_id": "i8"})
    batch = client.post("/recommendations", json={"users": ["batch-user", "u0_0", "nobody"], "k": 2}).json()
    assert [r["user_id"] for r in batch["results"]] == ["batch-user", "u0_0", "nobody"]
    assert batch["results"][0]["items"][0]["item_id"] == "i9"
    assert [r["fallback"] for r in batch["results"]] == [None, None, "popularity"]
    single = client.get("/users/u0_0/recommendations?k=2").json()
    assert batch["results"][1] == single
    anon = client.post("/recommendations", json={"history": ["i6", "unknown-item"], "k": 2}).json()
    assert anon["results"][0]["user_id"] == "" and anon["results"][0]["items"][0]["item_id"] == "i7"
    empty = client.post("/recommendations", json={"history": [], "k": 2}).json()
    assert empty["results"][0]["fallback"] == "popularity"


class ExplainingKNN(ItemKNN):
    """ItemKNN with a planted explanation: each recommended item is explained by the history in reverse order,
    weights 1/(rank+1) (only to test how the service passes explanations through)."""

    supports_explain = True

    def explain_indices(
        self, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str | None = None
    ) -> list[list[tuple[int, float]]]:
        assert method == "occlusion", "the service asks for its explain_method setting"
        rev = list(reversed(history.tolist()))[:top]
        return [[(h, 1.0 / (r + 1)) for r, h in enumerate(rev)] for _ in items]


def test_explain_passes_the_model_explanations(make_client: Any, knn_run: Path, store_factory: Any) -> None:
    settings = ServeSettings(run_dir=knn_run, load_in_background=False, explain_top=2)
    service = RecommendationService(settings, store_factory=store_factory)
    loaded = load_run(knn_run)
    model = ExplainingKNN(loaded.model.config)
    model.__dict__.update(loaded.model.__dict__)
    service.holder.set(LoadedModel(model, "explaining", knn_run, None, 0.0))
    client = make_client(service=service)
    post_events(client, {"user_id": "ex", "item_id": "i2"}, {"user_id": "ex", "item_id": "i4"})
    body = client.get("/users/ex/recommendations?k=2&explain=true").json()
    assert body["model_version"] == "explaining"
    assert body["items"][0]["because"] == [{"item_id": "i4", "weight": 1.0}, {"item_id": "i2", "weight": 0.5}]
    plain = client.get("/users/ex/recommendations?k=2").json()
    assert all(item["because"] == [] for item in plain["items"])
    # fallback rows have nothing to explain
    assert client.get("/users/nobody/recommendations?explain=true").json()["items"][0]["because"] == []


def test_explain_on_a_model_without_explanations_gives_empty_because(client: TestClient) -> None:
    body = client.get("/users/u0_0/recommendations?k=3&explain=true").json()
    assert body["items"] and all(item["because"] == [] for item in body["items"])


def test_titles_from_item_features(make_client: Any, run_copy: Path) -> None:
    ItemFeatures(titles={"i1": "Toy Story (1995)"}).save(run_copy / "item_features.json")
    client = make_client(run_dir=run_copy)
    items = client.get("/users/u0_1/recommendations?k=10").json()["items"]
    post_events(client, {"user_id": "t", "item_id": "i0"})
    items = client.get("/users/t/recommendations?k=10").json()["items"]
    assert items[0] == {
        "item_id": "i1",
        "score": pytest.approx(items[0]["score"]),
        "because": [],
        "title": "Toy Story (1995)",
    }
    assert all("title" not in item for item in items[1:])  # no title known: the key is absent


def test_cache_serves_repeats_and_never_a_stale_list(client: TestClient, store_factory: Any) -> None:
    first = client.get("/users/c1/recommendations?k=2").json()
    assert client.get("/users/c1/recommendations?k=2").json() == first
    text = client.get("/metrics").text
    assert _metric(text, 'attnrec_recommendation_cache_total{result="hit"}') == 1
    # an event written by another writer (another process, same store) changes the answer at once
    other = store_factory()
    try:
        from attnrec.serving.store import Event

        other.add([Event("c1", "i8")], received_at=1.0)
    finally:
        other.close()
    after = client.get("/users/c1/recommendations?k=2").json()
    assert after["fallback"] is None and after["items"][0]["item_id"] == "i9"
    assert client.get("/users/c1/recommendations?k=3").json()["items"][:2] == after["items"]  # k is in the key


# ------------------------------------------------------------------ fallback labels (popularity vs model)
def test_every_list_is_all_model_scores_or_all_popularity_and_says_which(client: TestClient, knn_run: Path) -> None:
    """Oracle check over every way a list is made: a list labelled ``fallback: null`` holds exactly the model's
    scores for the live history, a list labelled ``"popularity"`` exactly the popularity counts; no list mixes."""
    model = Recommender.load(knn_run)
    assert model.items_ is not None and model.users_ is not None and model.popularity_ is not None
    post_events(client, {"user_id": "fresh", "item_id": "i4"})  # unknown user, known item
    post_events(client, {"user_id": "odd", "item_id": "not-in-the-model"})  # unknown user, unknown item only
    answers: list[tuple[dict[str, Any], list[str], str]] = []  # (answer, history item ids, user id)
    for user in ("u1_0", "nobody", "fresh", "odd"):
        history = client.get(f"/users/{user}/history").json()["items"]
        answers.append((client.get(f"/users/{user}/recommendations?k=10").json(), history, user))
    batch = client.post("/recommendations", json={"users": ["u2_1", "nobody", "fresh"], "k": 10}).json()
    for result in batch["results"]:
        answers.append((result, client.get(f"/users/{result['user_id']}/history").json()["items"], result["user_id"]))
    for history in ([], ["i6"], ["unknown-item"]):
        anon = client.post("/recommendations", json={"history": history, "k": 10}).json()["results"][0]
        answers.append((anon, history, ""))
    labels = []
    for answer, history, user in answers:
        hist = model.items_.indices(history, unknown="drop")
        uidx = np.asarray([model.users_.get(user) if user else 0], dtype=np.int64)
        if answer["fallback"] == "popularity":
            expected = model.popularity_
        else:
            assert answer["fallback"] is None
            expected = model.score_indices(uidx, [hist])[0]
        got = {i["item_id"]: i["score"] for i in answer["items"]}
        want = {item: float(expected[model.items_.get(item)]) for item in got}
        assert got == pytest.approx(want), (user, history, answer)
        assert not set(got) & set(history)  # seen items never come back, whichever source
        labels.append(answer["fallback"])
    # the cases cover both labels: known user, unknown user with a known event, anonymous [i6] personalise;
    # nobody, an unknown user whose only event is an unknown item, and empty/unknown-only histories fall back
    assert labels == [None, "popularity"] * 5
