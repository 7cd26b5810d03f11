"""Fuzz `attnrec serve` from its own OpenAPI schema with schemathesis; count requests and 5xx answers.

Schemathesis (``--mode all``: valid and invalid inputs, for every operation, headers, paths, queries and bodies)
runs as a separate process against a server on 127.0.0.1. The request and status counts come from the server's own
``/metrics`` (every answer is counted there, by status), so they do not depend on the fuzzer's reporting.

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/serve_fuzz.py --model sasrec --examples 1500 --max-time 900
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import WORK, Server, ensure_run, one_request


def scrape(port: int) -> dict[str, int]:
    status, body = asyncio.run(one_request(port, "GET", "/metrics"))
    assert status == 200
    by_status: dict[str, int] = {}
    for line in body.decode().splitlines():
        m = re.match(r'attnrec_http_requests_total\{method="[^"]*",route="[^"]*",status="(\d+)"\} ([\d.e+]+)', line)
        if m:
            by_status[m.group(1)] = by_status.get(m.group(1), 0) + int(float(m.group(2)))

    return by_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--examples", type=int, default=1500, help="schemathesis --max-examples per operation")
    parser.add_argument("--max-time", type=float, default=900, help="time budget of the fuzzer (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tail", type=int, default=25, help="lines of the schemathesis report to print")
    args = parser.parse_args()
    if not 1 <= args.examples <= 5000 or not 10 <= args.max_time <= 1800:
        raise SystemExit("--examples must be within 1..5000 and --max-time within 10..1800")
    run = ensure_run(args.model)
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "fuzz.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    server = Server(run, db)
    try:
        server.start()
        before = scrape(server.port)  # the start-up /ready polls (503 until loaded) are not fuzz answers
        base = f"http://127.0.0.1:{server.port}"
        cmd = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--mode",
            "all",
            "--max-examples",
            str(args.examples),
            "--max-time",
            str(int(args.max_time)),
            "--seed",
            str(args.seed),
            "--no-shrink",
            "--workers",
            "2",
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "30",
        ]
        print("$", " ".join(cmd))
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        tail = "\n".join(proc.stdout.strip().splitlines()[-args.tail :])
        print(tail)
        after = scrape(server.port)
        after["200"] = after.get("200", 0) - 1  # the /metrics request of the first scrape
        counts = {code: n - before.get(code, 0) for code, n in after.items() if n - before.get(code, 0)}
    finally:
        server.stop()
    total = sum(counts.values())
    errors = sum(n for code, n in counts.items() if code.startswith("5"))
    print(f"\nserver-side answers by status: {dict(sorted(counts.items()))}")
    print(f"requests: {total} in {seconds:.0f} s; 5xx answers: {errors}; schemathesis exit status {proc.returncode}")


if __name__ == "__main__":
    main()
