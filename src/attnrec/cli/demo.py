"""``attnrec demo``: the main job on built-in synthetic data, end to end, in a few minutes on 2 cores.

It writes a synthetic log and catalogue as CSV (so the demo goes through the same loaders as your data), trains
a popularity baseline, EASE and SASRec into run folders, prints their test metrics side by side, and shows one
user's recent history and top-10 with titles and the history items that drove each recommendation.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from attnrec.cli.progress import RichProgress
from attnrec.runs import DataSpec, RunConfig, train_run

DEMO_MODELS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "ease": {"l2": 100.0},
    "sasrec": {"embed_dim": 64, "num_layers": 2, "max_seq_len": 50, "epochs": 20, "lr": 5e-3, "batch_size": 64},
}
QUICK_MODELS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "ease": {"l2": 100.0},
    "sasrec": {"embed_dim": 32, "num_layers": 1, "max_seq_len": 30, "epochs": 6, "lr": 5e-3, "batch_size": 64},
}


def run_demo(
    out: Path, console: Console, err_console: Console, *, quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    from attnrec.data.synthetic import make_synthetic
    from attnrec.explain.text import recommendations_payload
    from attnrec.runs import load_run_features

    out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(num_users=200 if quick else 600, num_items=120 if quick else 300, seed=seed)
    data_dir = out / "data"
    data_dir.mkdir(exist_ok=True)
    log_path = data_dir / "interactions.csv"
    items_path = data_dir / "items.csv"
    data.interactions.write_csv(log_path)
    data.items.write_csv(items_path)
    console.print(
        f"[bold]attnrec demo[/]: synthetic streaming log with {data.interactions.height:,} events, "
        f"{data.interactions['user_id'].n_unique():,} users, {data.items.height:,} titles "
        f"(genre tastes + series watched in order), written to {data_dir}"
    )
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, Path] = {}
    for name, params in (QUICK_MODELS if quick else DEMO_MODELS).items():
        run_dir = out / name
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        config = RunConfig(
            model=name,
            params=params,
            data=DataSpec(path=str(log_path), items_path=str(items_path)),
            seed=seed,
            ks=(10,),
        )
        with RichProgress(err_console) as progress:
            results[name] = train_run(config, run_dir, progress=progress).metrics
        runs[name] = run_dir

    table = Table(title="Test metrics (leave-one-out, full ranking over all items, seen items excluded)")
    table.add_column("model")
    for col in ("hr@10", "ndcg@10", "mrr@10", "coverage@10"):
        table.add_column(col, justify="right")
    table.add_column("train s", justify="right")
    for name, metrics in results.items():
        test = metrics["test"]
        table.add_row(
            name,
            *(f"{test.get(c, float('nan')):.4f}" for c in ("hr@10", "ndcg@10", "mrr@10", "coverage@10")),
            f"{metrics['train_seconds']:.1f}",
        )
    console.print(table)

    from attnrec.runs import load_run

    model, _ = load_run(runs["sasrec"])
    features = load_run_features(runs["sasrec"])
    # a user in the middle of a series shows the sequential pattern best
    user = _pick_user(model, data.series)
    history = model.history(model.users_.index(user))  # type: ignore[union-attr]
    hist_table = Table(title=f"User {user}: last 8 of {len(history)} events (oldest first)")
    hist_table.add_column("item")
    hist_table.add_column("title")
    for idx in history[-8:].tolist():
        item_id = model.items_.id(idx)  # type: ignore[union-attr]
        hist_table.add_row(item_id, features.title(item_id) if features else "")
    console.print(hist_table)
    from attnrec.explain.attention import last_position_weights

    attended = last_position_weights(model, [history])[0]
    clipped = history[-len(attended) :]
    order = np.argsort(-attended)[:4]
    console.print(
        "SASRec's last position attends to (attention rollout): "
        + ", ".join(f"{_title(model, features, int(clipped[j]))} ({attended[j]:.2f})" for j in order)
    )
    payload = recommendations_payload(model, users=[user], k=10, explain=True, features=features)[0]
    rec_table = Table(
        title=f"SASRec top-10 for user {user}; 'because' = the history items whose removal lowers that item's "
        "score most (occlusion search, the default)"
    )
    rec_table.add_column("#", justify="right")
    rec_table.add_column("title")
    rec_table.add_column("score", justify="right")
    rec_table.add_column("because (share of the score drop)")
    for rank, item in enumerate(payload["items"], start=1):
        because = ", ".join(f"{b.get('title', b['item_id'])} ({b['weight']:.2f})" for b in item.get("because", [])[:2])
        rec_table.add_row(str(rank), item.get("title", item["item_id"]), f"{item['score']:.2f}", because)
    console.print(rec_table)
    console.print(
        f"Run folders: {', '.join(str(p) for p in runs.values())}. Next: "
        f"`attnrec recommend {runs['sasrec']} --user {user} --explain` or "
        f"`attnrec explain {runs['sasrec']} --user {user} --out explain.png`."
    )
    return {"metrics": results, "user": user, "recommendations": payload}


def _title(model: Any, features: Any | None, idx: int) -> str:
    item_id = model.items_.id(idx)
    return (features.title(item_id) if features is not None else None) or item_id


def _pick_user(model: Any, series: dict[str, list[str]]) -> str:
    """A user whose last event is an episode with a next episode (the planted sequential habit)."""
    next_episode = {}
    for episodes in series.values():
        for a, b in itertools.pairwise(episodes):
            next_episode[a] = b
    for user in model.users_.all_ids:
        hist = model.history(model.users_.index(user))
        if len(hist) >= 5 and model.items_.id(int(hist[-1])) in next_episode:
            return str(user)
    return str(model.users_.all_ids[int(np.argmax([len(model.history(u)) for u in range(1, 10)]))])
