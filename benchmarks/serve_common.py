"""Shared pieces of the serving benchmarks: an ML-1M run folder, a server process, a tiny HTTP/1.1 load client.

The load client is a minimal keep-alive HTTP/1.1 client on asyncio streams: it costs far less CPU per request than
a general-purpose client, which matters when client and server share two cores. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"
WORK = ROOT / "benchmarks" / "out" / "serve"  # run folders, databases, logs (git-ignored)


# ---------------------------------------------------------------------------------------------- run folders
def ml1m_interactions() -> Any:
    import polars as pl

    from attnrec.data import Interactions

    if not DATA.exists():
        raise SystemExit(f"ML-1M not found at {DATA}")
    users, items = [], []
    for line in DATA.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            users.append(parts[0])
            items.append(parts[1])
    return Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))


def ensure_run(model: str = "sasrec", name: str | None = None, *, epochs: int = 2, seed: int = 0) -> Path:
    """Fit ``model`` on all of ML-1M once (quality does not matter here) and save it under WORK/<name>."""
    folder = WORK / (name or f"ml1m-{model}")
    if (folder / "model.safetensors").exists():
        return folder
    from attnrec.registry import create_model
    from attnrec.training.options import TrainingOptions

    params: dict[str, Any] = {}
    if model == "sasrec":
        params = {"epochs": epochs, "loss": "sampled", "num_negatives": 128, "max_seq_len": 200}
    elif model == "itemknn":
        params = {"neighbors": 50}
    inter = ml1m_interactions()
    start = time.perf_counter()
    fitted = create_model(model, params).fit(inter, options=TrainingOptions(seed=seed, threads=2))
    fitted.save(folder)
    print(f"fitted {model} on ML-1M ({len(inter)} events) in {time.perf_counter() - start:.1f} s -> {folder}")
    return folder


def user_ids() -> list[str]:
    from attnrec.data.vocab import IdVocabulary
    from attnrec.io import read_json

    vocab = read_json(ensure_run() / "vocab.json")
    return IdVocabulary.from_json(vocab["items"]).all_ids, IdVocabulary.from_json(vocab["users"]).all_ids  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    run: Path
    db: Path  # SQLite file (also names the log file)
    db_url: str | None = None  # overrides db (e.g. postgresql://...)
    port: int = field(default_factory=free_port)
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> float:
        """Start ``attnrec serve`` (nice 5); returns seconds until /ready answered 200."""
        code = (
            "import sys; from pathlib import Path; from attnrec.cli.serve import serve_command; "
            "serve_command(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), sys.argv[3], None, "
            "torch_threads=int(sys.argv[4]), log_level='warning')"
        )
        self.log = self.db.with_suffix(".log")
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                "nice",
                "-n",
                "5",
                sys.executable,
                "-c",
                code,
                str(self.run),
                str(self.port),
                self.db_url or f"sqlite:///{self.db}",
                str(self.threads),
            ],
            env={**os.environ, "OMP_NUM_THREADS": str(self.threads), **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        return self.wait_ready(start)

    def wait_ready(self, start: float, timeout: float = 60) -> float:
        while time.perf_counter() - start < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                status, _ = asyncio.run(one_request(self.port, "GET", "/ready"))
                if status == 200:
                    return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {timeout} s; see {self.log}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------- HTTP client
class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + payload)
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split()[1])
            length, close = 0, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            data = await self.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def one_request(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = Connection(port)
    try:
        return await conn.request(method, path, body)
    finally:
        conn.close()


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(name, []).append(seconds)
        by = self.statuses.setdefault(name, {})
        by[status] = by.get(status, 0) + 1

    def error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    def table(self, wall: float) -> str:
        lines = [f"{'endpoint':<28}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  statuses"]
        total = 0
        for name, lat in sorted(self.latencies.items()):
            arr = np.asarray(lat) * 1000
            total += len(arr)
            p50, p95, p99 = np.percentile(arr, [50, 95, 99])
            lines.append(
                f"{name:<28}{len(arr):>10}{len(arr) / wall:>9.1f}{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}  "
                f"{dict(sorted(self.statuses[name].items()))}"
            )
        lines.append(f"{'total':<28}{total:>10}{total / wall:>9.1f}   connection errors: {self.errors or 0}")
        return "\n".join(lines)


def mixed_request(
    rng: random.Random, users: list[str], items: list[str], counter: list[int]
) -> tuple[str, str, str, Any]:
    """80% recommend (GET user, some with explain, some batch), 20% events."""
    r = rng.random()
    if r < 0.20:
        counter[0] += 1
        user = rng.choice(users) if rng.random() < 0.8 else f"new-{rng.randrange(10_000)}"
        body = {
            "events": [
                {
                    "user_id": user,
                    "item_id": rng.choice(items),
                    "event_id": f"load-{os.getpid()}-{counter[1]}-{counter[0]}",
                }
            ]
        }
        return "POST /events", "POST", "/events", body
    if r < 0.75:
        return "GET /recommendations", "GET", f"/users/{rng.choice(users)}/recommendations?k=10", None
    if r < 0.80:
        return (
            "GET /recommendations?explain",
            "GET",
            f"/users/{rng.choice(users)}/recommendations?k=10&explain=true",
            None,
        )
    return "POST /recommendations", "POST", "/recommendations", {"history": rng.sample(items, 20), "k": 10}


async def drive(
    port: int,
    seconds: float,
    concurrency: int,
    users: list[str],
    items: list[str],
    *,
    seed: int = 0,
    stats: Stats | None = None,
    stop: asyncio.Event | None = None,
    headers: dict[str, str] | None = None,
    on_answer: Any = None,
) -> tuple[Stats, float]:
    """Closed-loop mixed load from ``concurrency`` connections for ``seconds``; returns (stats, wall seconds)."""
    stats = stats or Stats()
    deadline = time.perf_counter() + seconds
    counter = [0, seed]  # events sent, run seed (both go into event ids)

    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = Connection(port)
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            name, method, path, body = mixed_request(rng, users, items, counter)
            t0 = time.perf_counter()
            try:
                status, data = await conn.request(method, path, body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                stats.error(name)
                await asyncio.sleep(0.01)
                continue
            stats.add(name, time.perf_counter() - t0, status)
            if on_answer is not None:
                on_answer(name, body, status, data)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return stats, time.perf_counter() - start
