"""The web page for people (``attnrec.serving.web``): sign-in, CSRF, escaping, security headers, roles, pages.

The run folder is a tiny SASRec on the planted pairs of ``conftest.py`` with item side information whose titles and
attributes hold markup (``<script>``), so every page that shows an item is checked for escaping.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attnrec.data import Interactions
from attnrec.data.features import ItemFeatures
from attnrec.models.sasrec import SASRec
from attnrec.serving.app import create_app
from attnrec.serving.auth import ApiKey
from attnrec.serving.service import RecommendationService
from attnrec.serving.settings import ServeSettings
from attnrec.serving.store import SQLiteStore
from attnrec.serving.web.security import CSRF_COOKIE, CSRF_FIELD, KEY_COOKIE
from attnrec.training.options import TrainingOptions

READ_KEY = "read-key-0123456789abcdef"
WRITE_KEY = "rw-key-0123456789abcdef"
EVIL = "<script>alert('x')</script>"
TINY = {"embed_dim": 16, "num_layers": 2, "num_heads": 1, "max_seq_len": 8, "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def web_run(tmp_path_factory: pytest.TempPathFactory, interactions: Interactions) -> Path:
    """A SASRec run folder with titles (one of them markup), attributes and a metrics.json."""
    folder = tmp_path_factory.mktemp("web") / "sasrec-run"
    SASRec(TINY).fit(interactions, options=TrainingOptions(seed=0, threads=1, device="cpu")).save(folder)
    titles = {f"i{n}": f"Film {n}" for n in range(10)}
    titles["i3"] = EVIL
    attributes = {f"i{n}": ["genre=Drama"] for n in range(10)}
    attributes["i2"] = ["genre=<b>Bold</b>"]
    ItemFeatures(titles=titles, attributes=attributes, fields=["genre"]).save(folder / "item_features.json")
    rules = {"dropout": {"value": 0.5, "why": "4.5 training events per item (< 50: sparse catalogue)"}}
    fit = {"kind": "epochs", "epochs": 3, "best_epoch": 2, "stopped_early": False, "data_rules": rules}
    metrics = {
        "model": "sasrec",
        "valid": {"hr@10": 0.5},
        "test": {"hr@10": 0.25, "ndcg@10": 0.125},
        "train_seconds": 1.0,
        "fit": fit,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def _client(tmp_path: Path, run: Path, keys: bool = True, **values: Any) -> TestClient:
    api_keys = (ApiKey(READ_KEY, frozenset({"read"})), ApiKey(WRITE_KEY, frozenset({"read", "write"})))
    settings = ServeSettings(
        run_dir=run, api_keys=api_keys if keys else (), load_in_background=False, cache_size=0, **values
    )
    db = tmp_path / "events.sqlite3"
    service = RecommendationService(settings, store_factory=lambda: SQLiteStore(db))
    return TestClient(create_app(settings, service=service), raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path, web_run: Path) -> Iterator[TestClient]:
    with _client(tmp_path, web_run) as c:
        yield c


@pytest.fixture
def open_client(tmp_path: Path, web_run: Path) -> Iterator[TestClient]:
    """No API keys (loopback development mode): pages are open."""
    with _client(tmp_path, web_run, keys=False) as c:
        yield c


def _csrf(client: TestClient) -> str:
    client.get("/web/signin")
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    return token


def sign_in(client: TestClient, key: str) -> None:
    token = _csrf(client)
    r = client.post("/web/signin", data={"key": key, CSRF_FIELD: token, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _history(client: TestClient, user: str) -> list[str]:
    r = client.get(f"/users/{user}/history", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 200
    return r.json()["items"]  # type: ignore[no-any-return]


REASON_RE = r'<li>([^<]*?)(?: <span class="tag">[^<]*</span>)? <span class="weight">([^<]*)</span>'


def _reasons_url(page_html: str, n: int = 0) -> str:
    """The ``/web/reasons`` URL of the ``n``-th list of a page (its ``data-reasons`` attribute)."""
    found = re.findall(r'<ol class="recs" data-reasons="([^"]+)"', page_html)
    assert len(found) > n, "the list carries no reasons URL"
    return html.unescape(found[n])


def _listed_items(page_html: str) -> list[str]:
    return [html.unescape(i) for i in re.findall(r'<li class="rec[^"]*" data-item="([^"]*)"', page_html)]


def _reasons_by_item(fragment_html: str) -> dict[str, list[tuple[str, str]]]:
    """``item id -> [(reason label, weight)]`` of a ``/web/reasons`` fragment (or a page with inline reasons)."""
    out: dict[str, list[tuple[str, str]]] = {}
    blocks = re.split(r'(?:data-reasons-for|data-item)="([^"]*)"', fragment_html)[1:]
    for ident, body in zip(blocks[::2], blocks[1::2], strict=True):
        pairs = re.findall(REASON_RE, body)
        out[html.unescape(ident)] = [(html.unescape(label), weight) for label, weight in pairs]
    return out


def _set_cookie_headers(response: Any, name: str) -> list[str]:
    return [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]


# ---------------------------------------------------------------------------------------------- headers
def test_pages_carry_the_security_headers(open_client: TestClient) -> None:
    for path in ("/", "/web/user?id=u1_0", "/web/session?h=i2", "/web/search?q=film", "/web/model", "/web/compare"):
        r = open_client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        # no inline script or style: every <script> has a src, no style= or on*= attributes
        assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None
        assert re.search(r"\s(style|on[a-z]+)=", r.text) is None
    for asset in ("/web/static/web.js", "/web/static/web.css"):
        r = open_client.get(asset)
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"


def test_json_api_is_untouched_and_ignores_the_cookie(client: TestClient) -> None:
    sign_in(client, WRITE_KEY)
    assert client.cookies.get(KEY_COOKIE)
    # the JSON API takes keys from headers only: a cookie would make it open to cross-site requests
    r = client.get("/users/u1_0/history")
    assert r.status_code == 401 and r.json()["detail"].startswith("missing API key")
    assert client.get("/health").json()["status"] == "ok"


# ---------------------------------------------------------------------------------------------- sign-in
def test_pages_send_you_to_sign_in_without_a_key(client: TestClient) -> None:
    r = client.get("/web/user?id=u1_0", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/web/signin?next=%2Fweb%2Fuser%3Fid%3Du1_0"


def test_sign_in_cookie_is_httponly_samesite_strict_session(client: TestClient) -> None:
    (csrf_cookie,) = _set_cookie_headers(client.get("/web/signin"), CSRF_COOKIE)
    assert "HttpOnly" in csrf_cookie and "SameSite=strict" in csrf_cookie
    token = client.cookies[CSRF_COOKIE]
    r = client.post(
        "/web/signin", data={"key": READ_KEY, CSRF_FIELD: token, "next": "/web/model"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/model"
    (cookie,) = _set_cookie_headers(r, KEY_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age" not in cookie and "expires" not in cookie.lower()  # gone when the browser closes
    assert "Secure" not in cookie  # plain http here; set over https (see the next test)
    assert client.get("/web/user?id=u1_0").status_code == 200


def test_sign_in_cookie_is_secure_over_https(tmp_path: Path, web_run: Path) -> None:
    with _client(tmp_path, web_run) as c:
        c.base_url = c.base_url.copy_with(scheme="https")  # type: ignore[misc]
        token = _csrf(c)
        r = c.post("/web/signin", data={"key": READ_KEY, CSRF_FIELD: token}, follow_redirects=False)
        (cookie,) = _set_cookie_headers(r, KEY_COOKIE)
        assert "Secure" in cookie


def test_a_wrong_key_is_refused_and_not_echoed(client: TestClient) -> None:
    token = _csrf(client)
    wrong = "not-a-configured-key-123456"
    r = client.post("/web/signin", data={"key": wrong, CSRF_FIELD: token}, follow_redirects=False)
    assert r.status_code == 401
    assert "not accepted" in r.text and wrong not in r.text
    assert not _set_cookie_headers(r, KEY_COOKIE)


def test_sign_in_never_redirects_to_another_site(client: TestClient) -> None:
    token = _csrf(client)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = client.post(
            "/web/signin", data={"key": READ_KEY, CSRF_FIELD: token, "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == "/", target


def test_sign_out_clears_the_cookie(client: TestClient) -> None:
    sign_in(client, READ_KEY)
    r = client.post("/web/signout", data={CSRF_FIELD: client.cookies[CSRF_COOKIE]}, follow_redirects=False)
    assert r.status_code == 303
    (cookie,) = _set_cookie_headers(r, KEY_COOKIE)
    assert "Max-Age=0" in cookie or "expires=Thu, 01 Jan 1970" in cookie


# ---------------------------------------------------------------------------------------------- CSRF and roles
def _event_form(client: TestClient, user: str = "u1_0", item: str = "i5", **extra: str) -> dict[str, str]:
    return {"user_id": user, "item_id": item, CSRF_FIELD: client.cookies.get(CSRF_COOKIE) or "", **extra}


@pytest.mark.parametrize("case", ["missing", "wrong", "no-cookie", "other-origin", "cross-site"])
def test_event_posts_without_a_matching_csrf_token_are_refused(client: TestClient, case: str) -> None:
    sign_in(client, WRITE_KEY)
    form = _event_form(client)
    headers: dict[str, str] = {}
    if case == "missing":
        del form[CSRF_FIELD]
    elif case == "wrong":
        form[CSRF_FIELD] = "A" * 43
    elif case == "no-cookie":
        client.cookies.delete(CSRF_COOKIE)
    elif case == "other-origin":
        headers["Origin"] = "http://evil.example"
    else:
        headers["Sec-Fetch-Site"] = "cross-site"
    r = client.post("/web/events", data=form, headers=headers, follow_redirects=False)
    assert r.status_code == 403
    assert "i5" not in _history(client, "u1_0")


def test_sign_in_form_needs_the_csrf_token_too(client: TestClient) -> None:
    _csrf(client)
    r = client.post("/web/signin", data={"key": WRITE_KEY}, follow_redirects=False)
    assert r.status_code == 403 and not _set_cookie_headers(r, KEY_COOKIE)


def test_a_read_key_cannot_add_events(client: TestClient) -> None:
    sign_in(client, READ_KEY)
    page = client.get("/web/user?id=u1_0")
    assert "+ event" not in page.text and "read-only" in page.text
    r = client.post("/web/events", data=_event_form(client), follow_redirects=False)
    assert r.status_code == 403, r.text[-900:]
    assert "&#39;write&#39; role" in r.text
    assert "i5" not in _history(client, "u1_0")


def test_add_event_goes_through_the_store_and_the_page_reflects_it(client: TestClient) -> None:
    sign_in(client, WRITE_KEY)
    before = client.get("/web/user?id=u1_0&k=5")
    assert "+ event" in before.text
    recommended = re.findall(r'name="item_id" value="([^"]+)"', before.text)
    item = recommended[0]
    form = _event_form(client, item=item, event_id="web-test-1", k="5")
    r = client.post("/web/events", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/web/user?id=u1_0&added={item}&k=5"
    assert _history(client, "u1_0")[-1] == item  # durable, visible to the JSON API
    after = client.get(r.headers["location"])
    assert "as an event" in after.text
    assert item not in re.findall(r'name="item_id" value="([^"]+)"', after.text)  # seen items are not recommended
    # the same event_id again (a double click, a retry) is not stored twice
    client.post("/web/events", data=form, follow_redirects=False)
    assert _history(client, "u1_0").count(item) == 1


def test_an_invalid_id_gets_a_page_naming_the_field(open_client: TestClient) -> None:
    r = open_client.get("/web/user", params={"id": "a\nb"})
    assert r.status_code == 400 and "user id must be 1-256 printable characters" in r.text
    token = _csrf(open_client)
    r = open_client.post("/web/events", data={"user_id": "u", "item_id": "x" * 300, CSRF_FIELD: token})
    assert r.status_code == 400 and "item_id" in r.text


# ---------------------------------------------------------------------------------------------- escaping
def test_titles_ids_and_attributes_are_escaped_everywhere(open_client: TestClient) -> None:
    token = _csrf(open_client)
    # a user id with markup, holding the markup-titled item
    open_client.post("/web/events", data={"user_id": EVIL, "item_id": "i3", CSRF_FIELD: token})
    pages = [
        open_client.get("/web/user", params={"id": "u1_0"}),  # history i2, i3: both markup
        open_client.get("/web/user", params={"id": EVIL}),
        open_client.get("/web/session", params=[("h", "i3"), ("h", "i2")]),
        open_client.get("/web/search", params={"q": "script"}),
        open_client.get("/web/search", params={"q": EVIL}),
        open_client.get("/web/compare", params={"user": EVIL}),
    ]
    for r in pages:
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<b>Bold" not in r.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages[0].text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in pages[0].text
    assert "&lt;script&gt;" in pages[3].text  # found by the search
    # the reasons arrive in a fragment after the page: u1_0's reasons name i2 and i3 (both markup)
    fragments = [
        open_client.get(_reasons_url(pages[0].text)),
        open_client.get(_reasons_url(pages[2].text)),
        open_client.get(_reasons_url(pages[0].text).replace("/web/reasons?", "/web/reasons?junk=<b>&")),
    ]
    for r in fragments:
        assert r.status_code == 200 and "because of" in r.text
        assert "<script>alert" not in r.text and "<b>Bold" not in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in fragments[0].text  # a reason's title
    inline = open_client.get("/web/user", params={"id": "u1_0", "reasons": "1"})
    assert "because of" in inline.text and "<script>alert" not in inline.text
    svg = open_client.get("/web/attention.svg", params={"user": "u1_0"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<script>" not in svg.text and "&lt;script&gt;" in svg.text


# ---------------------------------------------------------------------------------------------- pages
def test_user_page_shows_history_recommendations_reasons_and_model(open_client: TestClient) -> None:
    r = open_client.get("/web/user?id=u1_0&k=3")
    text = r.text
    assert text.count('<li class="rec') == 3
    # the list comes without explanations; they are fetched after the page (or inline through the link)
    assert "because of" not in text
    assert _reasons_url(text).startswith("/web/reasons?user=u1_0&k=3&v=0-0-0&mv=sasrec-run-")
    assert 'href="/web/user?id=u1_0&amp;k=3&amp;reasons=1">Show the reasons' in text
    assert "/web/attention.svg?user=u1_0" in text
    assert "sasrec" in text and "0.2500" in text  # name and test hr@10 from metrics.json
    unknown = open_client.get("/web/user?id=nobody")
    assert "not in the model's training data" in unknown.text and "most popular items" in unknown.text


def test_attention_picture_has_layers_rollout_and_the_top_item(open_client: TestClient) -> None:
    r = open_client.get("/web/attention.svg", params={"user": "u1_0"})
    assert r.status_code == 200
    for label in ("layer 1", "layer 2", "rollout", "top item (rollout-grad)"):
        assert label in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_session_page_follows_the_clicked_history(tmp_path: Path, knn_run: Path) -> None:
    """ItemKNN on the planted pairs: after [i2] the next item is i3, and the add link appends to the history."""
    with _client(tmp_path, knn_run, keys=False) as c:
        empty = c.get("/web/session")
        assert "Popular items" in empty.text
        r = c.get("/web/session", params={"h": "i2"})
        first = re.search(
            r'<span class="rank">1</span>\s*<span>\s*<span class="item">\s*<span class="title">([^<]+)', r.text
        )
        assert first is not None and first.group(1) == "i3"
        assert "/web/session?h=i2&amp;h=i3" in r.text
        assert "The session so far" in r.text and "remove" in r.text


def test_search_matches_every_word_of_the_title(open_client: TestClient) -> None:
    r = open_client.get("/web/search", params={"q": "film 7", "user": "u1_0"})
    assert "1 item found" in r.text and 'value="i7"' in r.text
    none = open_client.get("/web/search", params={"q": "zzz"})
    assert "0 items found" in none.text


def test_model_page_shows_metrics_and_configuration(open_client: TestClient) -> None:
    r = open_client.get("/web/model")
    assert "hr@10" in r.text and "0.5000" in r.text and "0.2500" in r.text
    assert "embed_dim" in r.text and "<code>16</code>" in r.text
    assert "3 epochs (best 2)" in r.text
    assert "chosen from the data" in r.text and "<code>dropout</code> 0.5" in r.text
    assert "(4.5 training events per item (&lt; 50: sparse catalogue))" in r.text  # escaped


def test_compare_needs_a_second_run_folder(open_client: TestClient) -> None:
    r = open_client.get("/web/compare?user=u1_0")
    assert "--compare" in r.text


def test_compare_shows_both_models_for_the_same_user(tmp_path: Path, web_run: Path, knn_run: Path) -> None:
    other = tmp_path / "knn-copy"
    shutil.copytree(knn_run, other)
    with _client(tmp_path, web_run, keys=False, compare_run_dir=other) as c:
        r = c.get("/web/compare", params={"user": "u1_0", "k": "9"})
        assert r.status_code == 200
        assert "sasrec" in r.text and "itemknn" in r.text
        assert r.text.count('<section class="col"') == 2
        assert "of the top 9 items are in both lists" in r.text
        model = c.get("/web/model?compare=1")
        assert "itemknn" in model.text


def test_attribute_reasons_of_a_content_model_are_shown_and_escaped(tmp_path: Path, interactions: Interactions) -> None:
    """Reasons that are item attributes (not history items) appear with their name, escaped, and a tag."""
    from attnrec.models.content import ContentRecommender

    ids = interactions.items.all_ids
    # pair p's items share a genre; the genre of pair 1 is markup
    attributes = {ident: [f"genre=g{int(ident[1:]) // 2}"] for ident in ids}
    attributes["i2"] = attributes["i3"] = ["genre=<b>Bold</b>"]
    features = ItemFeatures(titles={i: f"Film {i}" for i in ids}, attributes=attributes, fields=["genre"])
    folder = tmp_path / "content-run"
    ContentRecommender(item_features=features).fit(interactions).save(folder)
    features.save(folder / "item_features.json")
    with _client(tmp_path, folder, keys=False, explain_top=2) as c:
        c.post("/events", json={"events": [{"user_id": "new", "item_id": "i2"}]})
        page = c.get(_reasons_url(c.get("/web/user", params={"id": "new"}).text)).text
    assert "genre=&lt;b&gt;Bold&lt;/b&gt;" in page and "<b>Bold</b>" not in page
    assert '<span class="tag">attribute</span>' in page


# ---------------------------------------------------------------------------------------------- deferred reasons
def test_deferred_reasons_are_the_json_apis_and_match_the_listed_items(client: TestClient) -> None:
    """The page lists items without explaining; /web/reasons gives, per listed item, the reasons of explain=true;
    the no-JavaScript link (reasons=1) shows the same reasons inline."""
    sign_in(client, READ_KEY)
    page = client.get("/web/user?id=u2_0&k=4")
    assert "because of" not in page.text
    listed = _listed_items(page.text)
    fragment = client.get(_reasons_url(page.text))
    assert fragment.status_code == 200
    got = _reasons_by_item(fragment.text)
    assert list(got) == listed  # one entry per listed item, in the list's order
    api = client.get("/users/u2_0/recommendations", params={"k": 4, "explain": "true"}, headers={"X-API-Key": READ_KEY})
    titles = {f"i{n}": f"Film {n}" for n in range(10)} | {"i3": EVIL}
    expected = {
        it["item_id"]: [(titles.get(b["item_id"], b["item_id"]), f"{b['weight']:.2f}") for b in it["because"]]
        for it in api.json()["items"]
    }
    assert any(expected.values())  # SASRec explains itself: the comparison is not vacuous
    assert got == expected
    inline = client.get("/web/user?id=u2_0&k=4&reasons=1")
    assert "Show the reasons" not in inline.text and "data-reasons=" not in inline.text
    assert _reasons_by_item(inline.text) == expected


def test_an_event_added_from_a_page_with_inline_reasons_returns_to_inline_reasons(client: TestClient) -> None:
    sign_in(client, WRITE_KEY)
    inline = client.get("/web/user?id=u2_0&k=4&reasons=1")
    assert inline.text.count('name="reasons" value="1"') == len(_listed_items(inline.text))
    form = _event_form(client, user="u2_0", item=_listed_items(inline.text)[0], event_id="web-inline-1", k="4")
    r = client.post("/web/events", data={**form, "reasons": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("&k=4&reasons=1")
    after = client.get(r.headers["location"])
    assert "Show the reasons" not in after.text and any(_reasons_by_item(after.text).values())
    deferred = client.get("/web/user?id=u2_0&k=4")  # the default page keeps deferring them
    assert 'name="reasons"' not in deferred.text


def test_reasons_for_an_outdated_history_or_model_are_refused(client: TestClient) -> None:
    """A live event between the page and its reasons: the old list's reasons are not sent (409), the new page's are."""
    sign_in(client, WRITE_KEY)
    page = client.get("/web/user?id=u1_0&k=3")
    old_url = _reasons_url(page.text)
    form = _event_form(client, item=_listed_items(page.text)[0], event_id="web-stale-1", k="3")
    assert client.post("/web/events", data=form, follow_redirects=False).status_code == 303
    stale = client.get(old_url)
    assert stale.status_code == 409
    assert 'data-stale="1"' in stale.text and "changed" in stale.text and "because of" not in stale.text
    fresh_page = client.get("/web/user?id=u1_0&k=3")
    fresh_url = _reasons_url(fresh_page.text)
    assert fresh_url != old_url and "&v=1-" in fresh_url
    fresh = client.get(fresh_url)
    assert fresh.status_code == 200 and list(_reasons_by_item(fresh.text)) == _listed_items(fresh_page.text)
    other_model = re.sub(r"mv=[^&]+", "mv=another-version", fresh_url)
    assert client.get(other_model).status_code == 409
    missing_version = re.sub(r"&v=[^&]+", "", fresh_url)
    assert client.get(missing_version).status_code == 400


def test_session_and_compare_lists_get_their_reasons_after_the_page(
    tmp_path: Path, web_run: Path, knn_run: Path
) -> None:
    other = tmp_path / "knn-copy"
    shutil.copytree(knn_run, other)
    with _client(tmp_path, web_run, keys=False, compare_run_dir=other) as c:
        session = c.get("/web/session", params=[("h", "i2"), ("h", "i4"), ("k", "5")])
        assert "because of" not in session.text
        url = _reasons_url(session.text)
        assert url.startswith("/web/reasons?h=i2&h=i4&k=5&mv=")
        assert list(_reasons_by_item(c.get(url).text)) == _listed_items(session.text)
        inline = c.get("/web/session", params=[("h", "i2"), ("h", "i4"), ("k", "5"), ("reasons", "1")])
        assert _reasons_by_item(inline.text) == _reasons_by_item(c.get(url).text)
        # without JavaScript, adding or removing a session item keeps the reasons inline
        links = re.findall(r'href="(/web/session\?[^"]+)"', inline.text)
        assert links and all(link.endswith("reasons=1") for link in links)
        clicked = c.get(html.unescape(links[-1]))
        assert "Show the reasons" not in clicked.text and any(_reasons_by_item(clicked.text).values())
        compare = c.get("/web/compare", params={"user": "u1_0", "k": "4"})
        assert "because of" not in compare.text
        served = _reasons_url(compare.text)
        assert "model=served" in served and c.get(served).status_code == 200
        # the compare model: reasons only when it explains itself (ItemKNN does not), from its own list
        knn_explains = 'data-reasons="' in compare.text.split('<section class="col"')[2]
        assert knn_explains == bool(c.app.state.web.compare_model().model.supports_explain)  # type: ignore[attr-defined]
        assert c.get("/web/reasons", params={"user": "u1_0", "model": "nope", "v": "0-0-0"}).status_code == 400
