"""Cold start: held-out items (features, no events) and held-out users (demographics, no history), several seeds.

Protocols (``attnrec.evaluation.cold``; ``docs/benchmarks.md``, section "Cold start"):

* cold items: 10% of the items with features are held out with all their events; they stay in the catalogue as
  cold items; recall@10 / NDCG@10 of the held-out items among all items (full ranking, history = the user's other
  events) for the content model, popularity, and DIN / AutoInt when they are registered (``--models``).
* cold users: 10% of the users with user features are held out with all their events; at test time they have
  demographics and no history at all; global popularity vs the demographic fallback.

Usage (from the project root)::

    flock /work/bench/heavy.lock nice -n 5 .venv/bin/python benchmarks/cold_start.py --datasets ml-100k ml-1m \
        --seeds 0,1,2 [--models content popularity din autoint] [--set din.epochs=5] [--out r.json] \
        [--cache runs/bench/cold-start] [--update-docs docs/benchmarks.md --section cold-start] [--report-only]

``--cache DIR`` keeps one JSON file per (dataset, protocol, model, seed) result, keyed by everything that decides
it (the data files' sha256, the protocol's settings and every hyperparameter of the model, defaults included),
so a rerun computes only what is missing or changed; ``--update-docs`` rewrites the ``<!-- benchmark:SECTION -->``
section of a Markdown file with the command, the CPU and the table (``make bench-docs`` runs it that way).
``--report-only`` computes nothing: the table holds the cached results, and the section names the missing ones
(the partial results of a long run, like ``attnrec benchmark --report-only``).

Progress goes to stderr: one line per epoch of a neural fit (its history row) and a line at most every
``--progress-every`` seconds inside an epoch. With ``--cache``, neural fits write per-epoch checkpoints under
``DIR/checkpoints/`` (named by the result's key, so changed settings start afresh); a killed run started again
continues each unfinished fit from its last epoch (the result's ``seconds`` count the restored epochs too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrec.data import Interactions
from attnrec.data.features import load_item_features, load_user_features
from attnrec.data.loaders import load_interactions
from attnrec.errors import AttnRecError
from attnrec.evaluation.benchmark import cpu_name, without_neutral
from attnrec.evaluation.cold import cold_item_split, cold_user_split, evaluate_cold_items, evaluate_cold_users
from attnrec.evaluation.report import update_docs_section
from attnrec.registry import available_models, create_model
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str, Path, Path]] = {
    "ml-100k": (DATA / "ml-100k" / "u.data", "udata", DATA / "ml-100k" / "u.item", DATA / "ml-100k" / "u.user"),
    "ml-1m": (
        DATA / "ml-1m" / "extra" / "ratings_partial_users1-2999.dat",
        "movielens",
        DATA / "ml-1m" / "movies.dat",
        DATA / "ml-1m" / "users.dat",
    ),
}


def parse_sets(values: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected model.key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(model, {})[name] = value
    return out


def mean_sd(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return f"{arr.mean():.4f} ± {sd:.4f}"


class Cache:
    """One JSON file per result in ``folder`` (or nothing without a folder), valid while its key matches."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**what: Any) -> str:
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, name: str, key: str) -> list[dict[str, Any]] | None:
        path = None if self.folder is None else self.folder / f"{name}.json"
        if path is None or not path.is_file():
            return None
        stored = json.loads(path.read_text(encoding="utf-8"))
        return list(stored["rows"]) if stored.get("key") == key else None

    def put(self, name: str, key: str, rows: list[dict[str, Any]]) -> None:
        if self.folder is not None:
            tmp = self.folder / f"{name}.json.tmp"
            tmp.write_text(json.dumps({"key": key, "rows": rows}, indent=1), encoding="utf-8")
            tmp.replace(self.folder / f"{name}.json")


def item_result_key(digests: list[str], frac: float, k: int, seed: int, model_name: str, params: dict[str, Any]) -> str:
    """The cache key of one cold-item result: the data, the protocol's settings and every hyperparameter of the
    model, defaults included (a release that changes a default recomputes the results it touches), except the
    options added later at the value that leaves a run as it was (``NEUTRAL_PARAMS``, as in benchmark keys)."""
    config = without_neutral(create_model(model_name, params).config.model_dump(mode="json"))
    return Cache.key(data=digests, frac=frac, k=k, seed=seed, model=model_name, config=config)


def load_dataset(name: str) -> tuple[Any, Any, Any]:
    """The log, the item features and the user features of dataset ``name``."""
    path, fmt, items_path, users_path = DATASETS[name]
    inter = Interactions.from_frame(load_interactions(path, format=fmt))
    return inter, load_item_features(items_path), load_user_features(users_path)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(results: list[dict[str, Any]], k: int) -> str:
    lines = [
        f"| dataset | protocol | answer | recall@{k} | NDCG@{k} | test users | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r["dataset"], r["protocol"], r["answer"]) for r in results))
    for key in keys:
        rows = [r for r in results if (r["dataset"], r["protocol"], r["answer"]) == key]
        users_n = sorted({int(r["users"]) for r in rows})
        users_s = str(users_n[0]) if len(users_n) == 1 else f"{users_n[0]}-{users_n[-1]}"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {mean_sd([r[f'recall@{k}'] for r in rows])} | "
            f"{mean_sd([r[f'ndcg@{k}'] for r in rows])} | {users_s} | {len(rows)} |"
        )
    return "\n".join(lines)


class Progress:
    """Progress lines on stderr for one fit: each epoch's history row, and the in-epoch progress at most every
    ``every`` seconds (a DIN epoch on ML-1M takes many minutes at 1 thread)."""

    def __init__(self, label: str, every: float) -> None:
        self.label = label
        self.every = every
        self.start = time.perf_counter()
        self.last = self.start
        self.epochs: set[int] = set()

    def _line(self, text: str) -> None:
        print(f"# {time.perf_counter() - self.start:8.0f} s  {self.label}: {text}", file=sys.stderr, flush=True)

    def progress(self, description: str, completed: float, total: float | None) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line(f"{description} {completed:g}" + (f"/{total:g}" if total else ""))

    def log(self, row: dict[str, Any]) -> None:
        self.last = time.perf_counter()
        if isinstance(row.get("epoch"), int):
            self.epochs.add(row["epoch"])
        shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
        self._line(json.dumps(shown))


def earlier_seconds(model: Any, epochs_here: set[int]) -> float:
    """Training and validation seconds of the epochs a resumed fit restored from its checkpoints (those this
    process did not run), so that a result's ``seconds`` is its whole cost, not only the last process's share."""
    rows = [r for r in getattr(model, "history_", []) if r.get("epoch") not in epochs_here]
    return float(sum(float(r.get("seconds", 0.0)) + float(r.get("valid_seconds", 0.0)) for r in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"], choices=sorted(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", nargs="+", default=["content", "popularity", "din", "autoint"])
    parser.add_argument("--set", action="append", default=[], help="model.key=value (JSON value)")
    parser.add_argument("--frac", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-users", action="store_true", help="only the cold-item protocol")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path, help="folder of finished results (a rerun computes only the missing)")
    parser.add_argument("--update-docs", type=Path, help="Markdown file whose section receives the table")
    parser.add_argument("--section", default="cold-start", help="section of --update-docs")
    parser.add_argument("--report-only", action="store_true", help="compute nothing: report the cached results")
    parser.add_argument("--progress-every", type=float, default=60.0, help="seconds between in-epoch progress lines")
    args = parser.parse_args(argv)
    # --threads for the whole script: the cold-item rankings after each fit too, not only the training loop
    torch.set_num_threads(args.threads)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"]
    command = shlex.join(["python", "benchmarks/cold_start.py", *given])
    cache = Cache(args.cache)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = parse_sets(args.set)
    registered = set(available_models())
    missing = [m for m in args.models if m not in registered]
    models = [m for m in args.models if m in registered]
    for m in missing:
        print(f"# {m}: not registered in this attnrec, skipped", file=sys.stderr)
    results: list[dict[str, Any]] = []
    not_computed: list[str] = []
    k = args.k
    for name in args.datasets:
        absent = [str(p) for p in DATASETS[name] if isinstance(p, Path) and not p.is_file()]
        if absent:
            print(
                f"cold_start.py: dataset {name!r} needs {', '.join(absent)} (the shared data folder next to the "
                "project); not found",
                file=sys.stderr,
            )
            return 2
        digests = [file_digest(p) for p in DATASETS[name] if isinstance(p, Path)]
        loaded: tuple[Any, Any, Any] | None = None
        for seed in seeds:
            split = None
            for model_name in models:
                model_params = params.get(model_name, {})
                key = item_result_key(digests, args.frac, k, seed, model_name, model_params)
                cached = cache.get(f"{name}-items-{model_name}-s{seed}", key)
                if cached is not None:
                    results.extend(cached)
                    continue
                if args.report_only:
                    not_computed.append(f"{name} cold items {model_name} seed {seed}")
                    continue
                loaded = loaded or load_dataset(name)
                inter, items, users = loaded
                if split is None:
                    split = cold_item_split(inter, items, frac=args.frac, seed=seed)
                model = create_model(model_name, model_params)
                model.set_features(items=items, users=users)
                start = time.perf_counter()
                label = f"{name} cold items {model_name} seed {seed}"
                progress = Progress(label, args.progress_every)
                folder = f"{name}-{model_name}-s{seed}-{key[:12]}"
                checkpoints = None if args.cache is None else args.cache / "checkpoints" / folder
                options = TrainingOptions(
                    seed=seed,
                    threads=args.threads,
                    device=args.device,
                    progress=progress.progress,
                    log=progress.log,
                    checkpoint_dir=checkpoints,
                    resume=checkpoints is not None,
                )
                print(f"# {label}: fitting", file=sys.stderr, flush=True)
                try:
                    model.fit(split.train, options=options)
                except AttnRecError as exc:
                    print(f"# {name} seed {seed} {model_name}: {exc}", file=sys.stderr)
                    continue
                metrics = evaluate_cold_items(model, split, k=k)
                row = {"dataset": name, "protocol": "cold items", "answer": model_name, "seed": seed, **metrics}
                row["seconds"] = round(time.perf_counter() - start + earlier_seconds(model, progress.epochs), 1)
                results.append(row)
                cache.put(f"{name}-items-{model_name}-s{seed}", key, [row])
                print(json.dumps(row), file=sys.stderr, flush=True)
            if args.skip_users:
                continue
            key = Cache.key(data=digests, frac=args.frac, k=k, seed=seed, protocol="cold users")
            cached = cache.get(f"{name}-users-s{seed}", key)
            if cached is not None:
                results.extend(cached)
                continue
            if args.report_only:
                not_computed.append(f"{name} cold users seed {seed}")
                continue
            loaded = loaded or load_dataset(name)
            inter, items, users = loaded
            usplit = cold_user_split(inter, users.ids, frac=args.frac, seed=seed)
            base = create_model("itemknn").set_features(users=users).fit(usplit.train)
            rows = []
            for answer, metrics in evaluate_cold_users(base, usplit, k=k).items():
                row = {"dataset": name, "protocol": "cold users", "answer": answer, "seed": seed, **metrics}
                row["unreachable_events"] = usplit.unreachable
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            results.extend(rows)
            cache.put(f"{name}-users-s{seed}", key, rows)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    text = table(results, k)
    print(text)
    for missing_result in not_computed:
        print(f"# not computed: {missing_result}", file=sys.stderr)
    if args.update_docs is not None:
        block = (
            "<!-- generated by benchmarks/cold_start.py; do not edit by hand: rerun the command below -->\n\n"
            f"Command: `{command}`\n\nCPU: {cpu_name()}, {args.threads} thread(s); cold-item rows: "
            f"{sum(float(r.get('seconds', 0.0)) for r in results):.0f} s of fit + evaluation in all (wall time, "
            "summed over models and seeds). Mean ± sd over the seeds.\n\n"
            f"{text}\n"
        )
        if not_computed:
            block += (
                f"\nNot computed yet ({len(not_computed)} result{'s' if len(not_computed) != 1 else ''}; "
                "the command above computes them): " + "; ".join(not_computed) + ".\n"
            )
        changed = update_docs_section(args.update_docs, args.section, block)
        print(f"{args.update_docs}: section {args.section!r} {'updated' if changed else 'unchanged'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
