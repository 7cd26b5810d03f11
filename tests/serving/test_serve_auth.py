"""Issue 4, point 5: API keys (Bearer / X-API-Key, roles, constant-time comparison, never logged), the
loopback-only rule without keys, and the per-key rate limit (429 + Retry-After)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import post_events

from attnrec.errors import ConfigError
from attnrec.serving.auth import RateLimiter, extract_key, find_key, parse_api_keys
from attnrec.serving.settings import ServeSettings, check_bind, is_loopback

READ = "read-key-0123456789abcdef"
WRITE = "write-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"
KEYS = parse_api_keys(f"read:{READ}\nwrite:{WRITE}\nadmin:{ADMIN}", source="test")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(make_client: Any) -> Any:
    return make_client(api_keys=tuple(KEYS))


def test_keys_are_required_and_roles_enforced(secured: Any) -> None:
    event = {"user_id": "a", "item_id": "i2"}
    assert secured.get("/health").status_code == 200  # probes stay open
    assert secured.get("/ready").status_code == 200
    missing = secured.get("/users/a/recommendations")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert secured.get("/users/a/recommendations", headers=bearer("wrong-key-0123456789abcdef")).status_code == 401
    assert secured.get("/users/a/recommendations", headers={"Authorization": f"Basic {READ}"}).status_code == 401
    assert post_events(secured, event).status_code == 401
    # read key: reads yes, writes no
    assert secured.get("/users/a/recommendations", headers=bearer(READ)).status_code == 200
    assert secured.get("/users/a/history", headers={"X-API-Key": READ}).status_code == 200
    assert post_events(secured, event, headers=bearer(READ)).status_code == 403
    # write key: writes yes, reads no
    assert post_events(secured, event, headers={"X-API-Key": WRITE}).status_code == 200
    assert secured.get("/users/a/history", headers=bearer(WRITE)).status_code == 403
    assert secured.post("/admin/reload", headers=bearer(WRITE)).status_code == 403
    assert secured.post("/admin/reload", headers=bearer(READ)).status_code == 403
    # admin key: everything
    assert secured.post("/admin/reload", headers=bearer(ADMIN)).status_code == 200
    assert secured.get("/users/a/history", headers=bearer(ADMIN)).json()["items"] == ["i2"]
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/metrics", headers=bearer(READ)).status_code == 200


def test_401_comes_before_body_validation(secured: Any) -> None:
    assert secured.post("/events", json={"events": "not a list"}).status_code == 401


def test_keys_never_appear_in_logs_or_answers(secured: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        secured.get("/users/a/recommendations", headers=bearer(READ + "x")),
        post_events(secured, {"user_id": "a", "item_id": "i1"}, headers=bearer(READ)),
        secured.post("/admin/reload", json={"run_dir": "/nowhere"}, headers=bearer(ADMIN)),
        secured.get("/metrics", headers=bearer(READ)),
    ]
    text = caplog.text + "".join(a.text for a in answers) + repr(KEYS)
    for key in (READ, WRITE, ADMIN):
        assert key not in text


def test_key_parsing(tmp_path: Path) -> None:
    keys = parse_api_keys(f"# comment\n\nread+write:{READ}\n admin:{ADMIN} \n", source="f")
    assert [sorted(k.roles) for k in keys] == [["read", "write"], ["admin"]]
    assert keys[0].allows("write") and not keys[0].allows("admin") and keys[1].allows("read")
    for bad in (f"reader:{READ}", READ, "read:short", f"read:{READ} tail"):
        with pytest.raises(ConfigError, match="entry 1") as info:
            parse_api_keys(bad, source="f")
        assert READ not in str(info.value)
    path = tmp_path / "keys.txt"
    path.write_text(f"admin:{ADMIN}\n")
    settings = ServeSettings.from_env(
        {"ATTNREC_API_KEYS": f"read:{READ},write:{WRITE}"}, api_keys_file=path, run_dir=tmp_path
    )
    assert [sorted(k.roles) for k in settings.api_keys] == [["read"], ["write"], ["admin"]]
    assert ServeSettings.from_env({}, run_dir=tmp_path).api_keys == ()
    with pytest.raises(ConfigError, match="cannot be read"):
        ServeSettings.from_env({}, api_keys_file=tmp_path / "missing", run_dir=tmp_path)


def test_key_lookup_and_headers() -> None:
    assert find_key(tuple(KEYS), WRITE) is KEYS[1]
    assert find_key(tuple(KEYS), WRITE[:-1]) is None
    assert find_key(tuple(KEYS), "é" * 30) is None
    assert extract_key({"authorization": "Bearer  abc "}) == "abc"
    assert extract_key({"authorization": "Token abc", "x-api-key": "def"}) == "def"
    assert extract_key({}) is None


def test_non_loopback_bind_needs_keys(tmp_path: Path) -> None:
    open_settings = ServeSettings(run_dir=tmp_path)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        check_bind(host, open_settings)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        with pytest.raises(ConfigError, match="refusing to bind"):
            check_bind(host, open_settings)
        check_bind(host, ServeSettings(run_dir=tmp_path, api_keys=tuple(KEYS)))


def test_rate_limit_answers_429_with_retry_after(make_client: Any) -> None:
    client = make_client(api_keys=tuple(KEYS), rate_limit=0.5, rate_burst=3)
    codes = [client.get("/users/a/history", headers=bearer(READ)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/users/a/history", headers=bearer(READ))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # buckets are per key: another key still passes
    assert client.get("/users/a/history", headers=bearer(ADMIN)).status_code == 200


def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0
    now[0] += 10
    assert [limiter.acquire("k") for _ in range(3)][:2] == [0.0, 0.0]  # refills up to the burst only
