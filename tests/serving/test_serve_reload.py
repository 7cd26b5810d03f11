"""Issue 4, point 6: model hot swap (POST /admin/reload and SIGHUP); in-flight requests finish on the old model;
a folder that fails to load is refused and the old model keeps serving."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import post_events, top_items

from attnrec.models.itemknn import ItemKNN
from attnrec.models.popularity import Popularity

ADMIN = "admin-key-0123456789abcdef"


def version(client: Any) -> str:
    return client.get("/ready").json()["model_version"]


def test_reload_to_a_new_folder_swaps_the_model(client: Any, tmp_path: Path, interactions: Any) -> None:
    old = version(client)
    post_events(client, {"user_id": "s", "item_id": "i2"})
    assert top_items(client.get("/users/s/recommendations?k=1")) == ["i3"]
    new_run = tmp_path / "pop-2"
    Popularity().fit(interactions).save(new_run)
    answer = client.post("/admin/reload", json={"run_dir": str(new_run)})
    assert answer.status_code == 200
    assert answer.json()["previous_version"] == old and answer.json()["model_version"].startswith("pop-2-")
    body = client.get("/users/s/recommendations?k=1").json()
    assert body["model_version"] == answer.json()["model_version"] and top_items_of(body) == ["i0"]
    text = client.get("/metrics").text
    assert 'attnrec_model_reloads_total{result="ok"} 2.0' in text  # start-up + this one
    assert f'attnrec_model_loaded{{version="{answer.json()["model_version"]}"}} 1.0' in text
    assert old not in text


def top_items_of(body: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def test_reload_of_the_same_folder_picks_up_new_weights(make_client: Any, run_copy: Path, interactions: Any) -> None:
    client = make_client(run_dir=run_copy)
    old = version(client)
    ItemKNN({"neighbors": 1, "shrinkage": 5.0}).fit(interactions).save(run_copy)
    answer = client.post("/admin/reload").json()
    assert answer["previous_version"] == old and answer["model_version"] != old
    assert answer["model_version"].startswith("run-a-")


def _corrupt(run: Path, how: str) -> None:
    if how == "truncated weights":
        data = (run / "model.safetensors").read_bytes()
        (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "wrong format version":
        info = json.loads((run / "model.json").read_text())
        info["format_version"] = 99
        (run / "model.json").write_text(json.dumps(info))
    elif how == "pickle weights":
        (run / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif how == "pickle only":
        (run / "model.safetensors").unlink()
        (run / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif how == "bad vocabulary":
        (run / "vocab.json").write_text('{"users": 3}')
    elif how == "unknown model":
        info = json.loads((run / "model.json").read_text())
        info["model"] = "no-such-model"
        (run / "model.json").write_text(json.dumps(info))
    elif how == "not json":
        (run / "model.json").write_text("{")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated weights", "safetensors"),
        ("wrong format version", "format_version 99"),
        ("pickle weights", "pickle"),
        ("pickle only", "model.safetensors is missing"),
        ("bad vocabulary", "vocab"),
        ("unknown model", "unknown model"),
        ("not json", "not valid JSON"),
    ],
)
def test_a_failing_folder_is_refused_and_the_old_model_serves_on(
    make_client: Any, knn_run: Path, tmp_path: Path, how: str, message: str
) -> None:
    client = make_client(api_keys=(), run_dir=knn_run)
    old = version(client)
    bad = tmp_path / "bad-run"
    shutil.copytree(knn_run, bad)
    _corrupt(bad, how)
    answer = client.post("/admin/reload", json={"run_dir": str(bad)})
    assert answer.status_code == 409
    assert message in answer.json()["detail"] and old in answer.json()["detail"]
    assert version(client) == old
    post_events(client, {"user_id": "still", "item_id": "i2"})
    body = client.get("/users/still/recommendations?k=1").json()
    assert body["model_version"] == old and top_items_of(body) == ["i3"]
    assert 'attnrec_model_reloads_total{result="refused"} 1.0' in client.get("/metrics").text
    # and a later good reload still works
    assert client.post("/admin/reload", json={"run_dir": str(knn_run)}).status_code == 200


def test_requests_in_flight_finish_on_the_old_model(client: Any, tmp_path: Path, interactions: Any) -> None:
    service = client.app.state.service
    old_loaded = service.holder.current
    entered, release = threading.Event(), threading.Event()
    original = old_loaded.model.recommend_indices

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return original(*args, **kwargs)

    old_loaded.model.recommend_indices = slow  # only this (old) model instance is slowed
    post_events(client, {"user_id": "f", "item_id": "i2"})
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(r=client.get("/users/f/recommendations?k=1")))
    worker.start()
    assert entered.wait(10)
    new_run = tmp_path / "pop-live"
    Popularity().fit(interactions).save(new_run)
    swap = client.post("/admin/reload", json={"run_dir": str(new_run)})
    assert swap.status_code == 200
    during = client.get("/users/f/recommendations?k=1").json()  # new requests already use the new model
    release.set()
    worker.join(10)
    assert result["r"].status_code == 200
    assert result["r"].json()["model_version"] == old_loaded.version and top_items(result["r"]) == ["i3"]
    assert during["model_version"] == swap.json()["model_version"] and top_items_of(during) == ["i0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_attnrec_serve_process_reloads_on_sighup(run_copy: Path, tmp_path: Path, interactions: Any) -> None:
    port = _free_port()
    env = {**os.environ, "ATTNREC_API_KEYS": f"admin:{ADMIN}"}
    code = (
        "import sys; from pathlib import Path; from attnrec.cli.serve import serve_command; "
        f"serve_command(Path(sys.argv[1]), '127.0.0.1', {port}, 'sqlite:///' + sys.argv[2], None, log_level='warning')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_copy), str(tmp_path / "ev.sqlite3")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        first = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{base}/ready", timeout=1)
                if r.status_code == 200:
                    first = r.json()["model_version"]
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert first is not None, proc.stdout.read1().decode() if proc.stdout else ""  # type: ignore[union-attr]
        assert httpx.get(f"{base}/users/x/history", timeout=5).status_code == 401
        Popularity().fit(interactions).save(run_copy)  # new weights in the served folder
        proc.send_signal(signal.SIGHUP)
        second = first
        while time.monotonic() < deadline and second == first:
            time.sleep(0.1)
            second = httpx.get(f"{base}/ready", timeout=1).json()["model_version"]
        assert second != first and second.startswith("run-a-")
        assert proc.poll() is None  # SIGHUP reloads, it does not stop the server
    finally:
        proc.terminate()
        proc.wait(15)


def test_unusable_reload_paths_are_refused_not_500(client: Any, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for path in (
        "0" * 4000,
        "a/" * 2000,
        str(tmp_path / "file"),
        str(tmp_path / "file" / "below"),
        "~nobody-such-user/x",
    ):
        answer = client.post("/admin/reload", json={"run_dir": path})
        assert answer.status_code == 409, (path[:50], answer.text)
