"""Screenshots of the web page for docs/serving.md, and the server time of each page.

Starts ``attnrec serve RUN [--compare RUN2]`` on a free loopback port with a temporary events database and a
read+write key, signs in with Debian's Chromium (Playwright, ``executable_path``), visits each page, adds one event
through the "+ event" button, and saves ``docs/img/web-<page>.png``. With ``--timing N`` it then measures, in
process (``fastapi.testclient.TestClient`` on the same app, torch on one thread), the time of N requests of each
page and prints the median and 95th percentile, with the CPU, the machine load and the thread count. The
reasons of the user, session and compare lists are timed as their own rows (``/web/reasons``, fetched by the page's
script after the page has arrived).

Usage (from the project root)::

    .venv/bin/python benchmarks/web_screenshots.py --run /work/bench/web/run100k --compare /work/bench/web/ease100k \\
        --user 1 --timing 50
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

KEY = "docs-screenshot-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"attnrec serve exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"attnrec serve at {url} not ready after {timeout:.0f} s")


def pages(user: str, session: list[str], query: str) -> list[tuple[str, str]]:
    """``(name, path)`` of every page shown in the docs."""
    h = "&".join(f"h={i}" for i in session)
    return [
        ("home", "/"),
        ("user", f"/web/user?id={user}"),
        ("session", f"/web/session?{h}"),
        ("search", f"/web/search?q={query}&user={user}"),
        ("model", "/web/model"),
        ("compare", f"/web/compare?user={user}"),
    ]


def screenshots(args: argparse.Namespace, db: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "attnrec.cli.main", "serve", str(args.run), "--port", str(port), "--db", str(db)]
    cmd += ["--threads", "1", "--device", "cpu", "--log-level", "warning"]
    if args.compare:
        cmd += ["--compare", str(args.compare)]
    env = {**os.environ, "ATTNREC_API_KEYS": f"read+write:{KEY}"}
    proc = subprocess.Popen(cmd, env=env)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        _wait_ready(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(f"{url}/")
            page.screenshot(path=str(out / "web-signin.png"))
            page.get_by_label("API key").fill(KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/")
            for name, path in pages(args.user, args.session.split(","), args.query):
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                _wait_for_reasons(page)
                page.screenshot(path=str(out / f"web-{name}.png"), full_page=name not in ("user", "compare"))
                if name == "user":  # one click on "+ event": the lists redraw in place
                    page.locator("ol.recs li").first.get_by_role("button").click()
                    page.locator("#status").filter(has_text="as an event").wait_for()
                    page.wait_for_load_state("networkidle")
                    _wait_for_reasons(page)
                    page.screenshot(path=str(out / "web-user-after-event.png"))
            page.set_viewport_size({"width": 400, "height": 860})
            page.goto(f"{url}/web/user?id={args.user}")
            page.wait_for_load_state("networkidle")
            _wait_for_reasons(page)
            page.screenshot(path=str(out / "web-user-400px.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print("screenshots:", ", ".join(sorted(p.name for p in out.glob("web-*.png"))))


def _wait_for_reasons(page: Any) -> None:
    """Until every list's reasons (fetched after the page by web.js) are in, so the pictures show them (a locator,
    not wait_for_function: the page's CSP forbids evaluating strings)."""
    page.locator("ol[data-reasons], ol[aria-busy]").first.wait_for(state="detached", timeout=60_000)


def cpu_name() -> str:
    """The CPU's model name from ``lscpu`` (else the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def timing(args: argparse.Namespace, db: Path) -> None:
    """Each page ``args.timing`` times; user pages for that many different known users, the result cache off."""
    import torch
    from fastapi.testclient import TestClient

    from attnrec.serving.app import create_app
    from attnrec.serving.settings import ServeSettings

    torch.set_num_threads(1)
    settings = ServeSettings(
        run_dir=args.run,
        compare_run_dir=args.compare,
        db=str(db),
        load_in_background=False,
        device="cpu",
        cache_size=0,  # every request scores afresh
        explain_method=args.explain_method,
    )
    with TestClient(create_app(settings)) as client:
        model = client.app.state.service.model().model  # type: ignore[attr-defined]
        users = [model.users_.id(i) for i in range(1, min(args.timing, len(model.users_)) + 1)]
        served = client.app.state.service.model().version  # type: ignore[attr-defined]
        compared = client.app.state.web.compare_model()  # type: ignore[attr-defined]
        print(f"server time per page, {args.timing} requests each (in process, one torch thread, no cache, ", end="")
        print(f"explain_method {args.explain_method})")
        print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; torch threads {torch.get_num_threads()}; ", end="")
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"{'page':<16} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        session = args.session.split(",")
        h = "&".join(f"h={i}" for i in session)
        named = [
            *pages("{user}", session, args.query),
            ("attention", "/web/attention.svg?user={user}"),
            # the reasons fragments the pages' script fetches after load (histories untouched: version 0-0-0)
            ("reasons user", f"/web/reasons?user={{user}}&k=10&v=0-0-0&mv={served}"),
            ("reasons session", f"/web/reasons?{h}&k=10&mv={served}"),
        ]
        if compared is not None and compared.model.supports_explain:  # fetched only for a model that explains
            compare_reasons = f"/web/reasons?user={{user}}&k=10&model=compare&v=0-0-0&mv={compared.version}"
            named.append(("reasons compare", compare_reasons))
        for name, path in named:
            client.get(path.format(user=users[0])).raise_for_status()  # warm-up: page data, the compare model
            times = []
            for n in range(args.timing):
                start = time.perf_counter()
                client.get(path.format(user=users[n % len(users)])).raise_for_status()
                times.append((time.perf_counter() - start) * 1000)
            q = statistics.quantiles(times, n=20)
            print(f"{name:<16} {statistics.median(times):8.1f} {q[18]:8.1f} {max(times):8.1f}")
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder to serve")
    parser.add_argument("--compare", type=Path, help="second run folder (--compare of attnrec serve)")
    parser.add_argument("--user", default="1", help="user shown on the user and compare pages")
    parser.add_argument("--session", default="50,172,181", help="items of the anonymous session (comma-separated)")
    parser.add_argument("--query", default="star", help="search box text")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timing", type=int, default=0, help="requests per page for the server-time table")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--explain-method", default="occlusion", help="ServeSettings.explain_method for --timing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_screenshots:
            screenshots(args, Path(tmp) / "shots.sqlite3")
        if args.timing:
            timing(args, Path(tmp) / "timing.sqlite3")


if __name__ == "__main__":
    main()
