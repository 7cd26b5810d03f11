"""Hot swap under load: 20 reloads (POST /admin/reload) alternating two run folders while a mixed load runs; then a
corrupt run folder, which must be refused while serving continues. Counts failed requests (anything but 200, or a
broken connection) and the model versions seen in answers.

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/serve_swap.py --model sasrec --reloads 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import WORK, Connection, Server, drive, ensure_run, user_ids

ADMIN = "bench-admin-key-0123456789"
READ_WRITE = "bench-rw-key-0123456789abc"


async def run(
    server: Server, folders: list[Path], corrupt: Path, reloads: int, users: list[str], items: list[str]
) -> dict[str, Any]:
    versions: dict[str, int] = {}

    def on_answer(name: str, body: Any, status: int, data: bytes) -> None:
        if status == 200 and "recommendations" in name and data:
            v = json.loads(data).get("model_version")
            versions[v] = versions.get(v, 0) + 1

    stop = asyncio.Event()
    load = asyncio.create_task(
        drive(
            server.port,
            3600,
            6,
            users,
            items,
            seed=7,
            stop=stop,
            headers={"X-API-Key": READ_WRITE},
            on_answer=on_answer,
        )
    )
    admin = Connection(server.port)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    swaps: list[dict[str, Any]] = []
    await asyncio.sleep(2)
    for n in range(reloads):
        folder = folders[n % len(folders)]
        t0 = time.perf_counter()
        status, body = await admin.request("POST", "/admin/reload", {"run_dir": str(folder)}, headers)
        swaps.append(
            {
                "status": status,
                "seconds": round(time.perf_counter() - t0, 2),
                "version": json.loads(body).get("model_version"),
            }
        )
        await asyncio.sleep(0.5)
    status, body = await admin.request("POST", "/admin/reload", {"run_dir": str(corrupt)}, headers)
    refused = {"status": status, "detail": json.loads(body)["detail"][:160]}
    await asyncio.sleep(2)  # serving continues after the refusal
    _, ready = await admin.request("GET", "/ready")
    admin.close()
    stop.set()
    stats, wall = await load
    failed = sum(n for by in stats.statuses.values() for code, n in by.items() if code != 200)
    return {
        "reloads": len(swaps),
        "reloads_ok": sum(s["status"] == 200 for s in swaps),
        "reload_seconds_max": max(s["seconds"] for s in swaps),
        "corrupt_folder": refused,
        "serving_after_refusal": json.loads(ready),
        "requests": sum(len(v) for v in stats.latencies.values()),
        "failed_requests": failed + sum(stats.errors.values()),
        "load_seconds": round(wall, 1),
        "answers_per_model_version": versions,
        "table": stats.table(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--other", default="itemknn", help="the second run folder's model")
    parser.add_argument("--reloads", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.reloads <= 100:
        raise SystemExit("--reloads must be within 1..100")
    first, second = ensure_run(args.model), ensure_run(args.other)
    corrupt = WORK / "corrupt-run"
    shutil.rmtree(corrupt, ignore_errors=True)
    shutil.copytree(first, corrupt)
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 3])  # truncated weights
    items, users = user_ids()
    db = WORK / "swap.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    server = Server(first, db, env={"ATTNREC_API_KEYS": f"admin:{ADMIN},read+write:{READ_WRITE}"})
    try:
        server.start()
        result = asyncio.run(run(server, [second, first], corrupt, args.reloads, users, items))
    finally:
        server.stop()
    table = result.pop("table")
    print(json.dumps(result, indent=2))
    print(table)


if __name__ == "__main__":
    main()
