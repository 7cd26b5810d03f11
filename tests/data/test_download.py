"""MovieLens download: real HTTP against a local server, checksum, safe extraction, no partial leftovers."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from attnrec.data import MOVIELENS, download_movielens
from attnrec.errors import DataError


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, list[str]]]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # talk to the local server directly
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n"


def test_download_checks_sha256_and_extracts(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, requests = server
    archive = make_zip({"ml-100k/u.data": U_DATA, "ml-100k/README": b"readme"})
    (root / "ml-100k.zip").write_bytes(archive)
    digest = hashlib.sha256(archive).hexdigest()
    dest = tmp_path / "datasets"
    out = download_movielens("ml-100k", dest, url=f"{base}/ml-100k.zip", sha256=digest)
    assert out == dest / "ml-100k"
    assert (out / "u.data").read_bytes() == U_DATA
    assert sorted(p.name for p in dest.iterdir()) == ["ml-100k"]  # no temporary leftovers
    # a second call finds the folder and does not download again
    assert download_movielens("ml-100k", dest, url=f"{base}/ml-100k.zip", sha256=digest) == out
    assert requests == ["/ml-100k.zip"]


def test_checksum_mismatch_leaves_nothing(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, _ = server
    (root / "ml-1m.zip").write_bytes(make_zip({"ml-1m/ratings.dat": b"1::2::3::4\n"}))
    dest = tmp_path / "datasets"
    with pytest.raises(DataError) as info:
        # no sha256 given: the published checksum of ml-1m applies, and this file is not it
        download_movielens("ml-1m", dest, url=f"{base}/ml-1m.zip")
    assert MOVIELENS["ml-1m"].sha256 in str(info.value) and "sha256" in str(info.value)
    assert list(dest.iterdir()) == []


def test_http_error_is_reported(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, _, _ = server
    with pytest.raises(DataError, match="HTTP status 404"):
        download_movielens("ml-100k", tmp_path / "d", url=f"{base}/missing.zip", sha256="0" * 64)


def test_unsafe_archive_is_refused(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, _ = server
    archive = make_zip({"ml-100k/u.data": U_DATA, "../evil.txt": b"x"})
    (root / "ml-100k.zip").write_bytes(archive)
    dest = tmp_path / "d"
    with pytest.raises(DataError, match="unsafe path"):
        download_movielens("ml-100k", dest, url=f"{base}/ml-100k.zip", sha256=hashlib.sha256(archive).hexdigest())
    assert not (tmp_path / "evil.txt").exists() and list(dest.iterdir()) == []


def test_archive_without_expected_folder(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, _ = server
    archive = make_zip({"other/u.data": U_DATA})
    (root / "ml-100k.zip").write_bytes(archive)
    with pytest.raises(DataError, match="does not contain the folder 'ml-100k/'"):
        download_movielens(
            "ml-100k", tmp_path / "d", url=f"{base}/ml-100k.zip", sha256=hashlib.sha256(archive).hexdigest()
        )


def test_not_a_zip(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, _ = server
    (root / "ml-100k.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not a valid zip"):
        download_movielens(
            "ml-100k",
            tmp_path / "d",
            url=f"{base}/ml-100k.zip",
            sha256=hashlib.sha256(b"<html>not found</html>").hexdigest(),
        )


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown MovieLens dataset 'ml-2m'"):
        download_movielens("ml-2m", tmp_path)
    assert MOVIELENS["ml-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
