"""Browser tests of the web page: a real ``attnrec serve`` (subprocess, free port) driven by Playwright for Python
through Debian's Chromium (``executable_path``; Playwright's own browser downloads are never used).

``.ci/setup-browser.sh`` installs Chromium (``make test`` calls it). Locally, without Chromium or Playwright, the
tests skip with that reason; under CI (``CI`` set) they fail instead, so they never skip silently there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from browser_helpers import EVIL, READ_KEY, WRITE_KEY, Server

CHROMIUM_ENV = "ATTNREC_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
NUM_PAIRS = 6


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} under CI: .ci/setup-browser.sh should have installed it")
    pytest.skip(f"{reason}: run `bash .ci/setup-browser.sh` (Debian's chromium) to run the browser tests")


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or DEFAULT_CHROMIUM
    if not Path(path).is_file():
        _unavailable(f"Chromium not found (looked at ${CHROMIUM_ENV}, PATH and {DEFAULT_CHROMIUM})")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_run(folder: Path) -> Path:
    """A small SASRec run: items in pairs (i0 i1), (i2 i3), ...; titles (i3's is markup) and genres."""
    from attnrec.data import Interactions
    from attnrec.data.features import ItemFeatures
    from attnrec.models.sasrec import SASRec
    from attnrec.training.options import TrainingOptions

    users, items, times = [], [], []
    for pair in range(NUM_PAIRS):
        for u in range(4):
            for step, item in enumerate((2 * pair, 2 * pair + 1, (2 * pair + 2) % (2 * NUM_PAIRS))):
                users.append(f"u{pair}_{u}")
                items.append(f"i{item}")
                times.append(step)
    data = Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items, "timestamp": times}))
    params = {"embed_dim": 16, "num_layers": 2, "num_heads": 1, "max_seq_len": 8, "epochs": 3, "batch_size": 16}
    SASRec(params).fit(data, options=TrainingOptions(seed=0, threads=1, device="cpu")).save(folder)
    titles = {f"i{n}": f"Film number {n}" for n in range(2 * NUM_PAIRS)}
    titles["i3"] = EVIL
    genres = {f"i{n}": ["genre=Drama" if n % 2 else "genre=Comedy"] for n in range(2 * NUM_PAIRS)}
    ItemFeatures(titles=titles, attributes=genres, fields=["genre"]).save(folder / "item_features.json")
    (folder / "metrics.json").write_text(json.dumps({"model": "sasrec", "test": {"hr@10": 0.5}}), encoding="utf-8")
    return folder


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"attnrec serve exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"attnrec serve at {url} was not ready after {timeout:.0f} s")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``attnrec serve`` on a fresh run folder, on a free loopback port, with a read key and a write key."""
    run = _make_run(tmp_path_factory.mktemp("browser") / "sasrec-run")
    port = _free_port()
    env = {**os.environ, "ATTNREC_API_KEYS": f"read:{READ_KEY},read+write:{WRITE_KEY}"}
    env.pop("ATTNREC_API_KEYS_FILE", None)
    log = (run.parent / "serve.log").open("wb")
    cmd = [sys.executable, "-m", "attnrec.cli.main", "serve", str(run), "--port", str(port), "--device", "cpu"]
    cmd += ["--threads", "1", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield Server(url, run)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
        raise
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; fails the test on any console error (a CSP violation too)
    or a JavaScript dialog (an escaped ``<script>`` title must never run)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        # "Failed to load resource" = an HTTP error status, which some tests provoke on purpose (403 pages);
        # everything else, notably CSP violations ("Refused to execute inline script ..."), is a failure
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            problems.append(f"console {msg.type}: {msg.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not problems, problems


@pytest.fixture
def page_without_js(browser: Any) -> Iterator[Any]:
    """A fresh context with JavaScript off: what a person with scripts blocked sees."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, java_script_enabled=False)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
