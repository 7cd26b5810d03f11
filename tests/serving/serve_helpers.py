"""Small helpers shared by the serving tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def post_events(client: TestClient, *events: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post("/events", json={"events": list(events)}, headers=headers or {})


def top_items(response: Any) -> list[str]:
    return [item["item_id"] for item in response.json()["items"]]
