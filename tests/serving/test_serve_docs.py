"""/docs and /redoc work offline: every script, stylesheet and icon they load is served by the app itself."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attnrec.errors import ConfigError
from attnrec.serving.app import docs_assets_dir
from attnrec.serving.auth import parse_api_keys

KEYS = parse_api_keys("read:read-key-0123456789abcdef", source="test")

_ASSET_RE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def asset_urls(html: str) -> list[str]:
    return _ASSET_RE.findall(html)


@pytest.mark.parametrize(("page", "script_marker"), [("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str, script_marker: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "://" not in html, "the page names another host (CDN, fonts)"
    urls = asset_urls(html)
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url  # the real file, not a stub
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"] and script_marker in asset.text
        if url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css") and ".swagger-ui" in asset.text
    assert "/openapi.json" in html and client.get("/openapi.json").status_code == 200


def test_docs_stay_open_when_keys_are_on_and_the_api_does_not(make_client: Any) -> None:
    secured = make_client(api_keys=tuple(KEYS))
    assert secured.get("/users/a/recommendations").status_code == 401
    for page in ("/docs", "/redoc"):
        html = secured.get(page)
        assert html.status_code == 200
        assert all(secured.get(url).status_code == 200 for url in asset_urls(html.text))


def test_docs_assets_are_counted_under_one_route_label(client: TestClient) -> None:
    for url in asset_urls(client.get("/docs").text):
        client.get(url)
    text = client.get("/metrics").text
    assert 'route="/docs-assets"' in text
    assert "swagger-ui-bundle.js" not in text  # file names never become label values


def test_docs_are_not_in_the_api_schema(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert not {"/docs", "/redoc"} & paths and not any(p.startswith("/docs-assets") for p in paths)


def test_missing_docs_package_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (docs_assets_dir() / "swagger-ui-bundle.js").is_file()
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"fastapi-offline.*attnrec\[serve\]"):
        docs_assets_dir()
