"""SASRec training throughput: target tokens/s of full training steps (forward, loss, backward, clip, AdamW).

Each configuration runs ``--steps`` steps (after 2 warm-up steps) on batches drawn exactly as in training
(leave-one-out training part, length bucketing unless disabled, the trainer's AdamW and gradient clipping) and
reports target tokens per second and the implied seconds per epoch; ``--repeats`` runs each configuration again
(round robin) and reports the median and range.

Data: ``ml-1m`` (long histories, 3,416 items), ``beauty`` (short sessions, ~8.9 events per user, 12,101 items)
or a path to any log ``attnrec`` reads. ``--max-events N`` keeps each user's last ``N`` training events: a
short-session variant of the same catalogue (it separates the cost of short sequences from that of a larger
catalogue, which the full cross-entropy pays per target).

Usage (from the project root; nothing else should be running)::

    nice -n 5 .venv/bin/python benchmarks/sasrec_speed.py --data beauty --threads 2 --steps 20 --repeats 3 \
        --config "" --config "bf16=false"
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from attnrec.config import coerce_value
from attnrec.data import Interactions, leave_one_out
from attnrec.data.loaders import read_interactions
from attnrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from attnrec.models.sequential import (
    resolved_exclude_window_items,
    resolved_sliding_window_step,
    sequence_batches,
)
from attnrec.training.losses import make_loss
from attnrec.training.sequences import next_item_loss, training_windows
from attnrec.training.trainer import Trainer, TrainerConfig, native_bf16

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NAMED = {"ml-1m": DATA / "ml-1m" / "ml-1m.txt", "beauty": DATA / "amazon-beauty" / "Beauty.txt"}


def parse(text: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = part.split("=", 1)
        out[key] = coerce_value(value)
    return out


def training_sequences(data: str, max_events: int | None) -> tuple[list[np.ndarray], np.ndarray, int, Interactions]:
    """Per-user training sequences (leave-one-out), item counts, the number of items and the training log."""
    train = leave_one_out(read_interactions(NAMED.get(data, Path(data)))).train
    seqs = train.sequences()[1:]
    if max_events is not None:
        seqs = [s[-max_events:] for s in seqs]
    return seqs, train.item_counts(), train.num_items, train


def ruled(cfg: SASRecConfig, train: Interactions) -> SASRecConfig:
    """``cfg`` with the values its data rules give on ``train`` (``weight_decay``, ``dropout``, ``batch_size`` left
    at None), as fitting SASRec would train it."""
    rules = SASRec(cfg).data_rules(train, cfg)
    return cfg.with_updates(**{k: v for k, (v, _) in rules.items()}) if rules else cfg


def run(cfg: SASRecConfig, seqs: list[np.ndarray], counts: np.ndarray, num_items: int, steps: int) -> float:
    """Target tokens per second of ``steps`` training steps after 2 warm-up steps."""
    x_np, y_np = training_windows(seqs, cfg.max_seq_len, resolved_sliding_window_step(cfg))
    inputs, targets = torch.from_numpy(x_np), torch.from_numpy(y_np)
    lengths = (inputs > 0).sum(1)
    torch.manual_seed(0)
    net = SASRecNet(num_items, cfg)
    train_net = torch.compile(net) if cfg.compile else net
    item_loss = make_loss(
        cfg.loss, num_items, num_negatives=cfg.num_negatives, item_counts=counts, chunk_size=cfg.ce_chunk_size
    )
    loss_fn = next_item_loss(
        train_net, net.item_emb.weight, item_loss, exclude_window=resolved_exclude_window_items(cfg)
    )
    bf16 = native_bf16() if cfg.bf16 is None else cfg.bf16
    trainer = Trainer(TrainerConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, bf16=bf16))
    opt = trainer._optimizer(net)  # the optimizer training uses
    batches = sequence_batches(cfg, inputs, targets, lengths)(1, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    tokens, start = 0, time.perf_counter()
    net.train()
    for step, (x, y) in enumerate(batches):
        if step == 2:
            tokens, start = 0, time.perf_counter()
        if step == steps + 2:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, n = loss_fn((x, y), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        tokens += n
    return tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-1m", help="ml-1m, beauty or a path to a log file")
    parser.add_argument("--max-events", type=int, default=None, help="keep each user's last N training events")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration (round robin)")
    parser.add_argument("--config", action="append", default=None, help="comma-separated key=value overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seqs, counts, num_items, train = training_sequences(args.data, args.max_events)
    configs = [(text, ruled(SASRecConfig.create(parse(text)), train)) for text in args.config or [""]]
    rates: dict[str, list[float]] = {text: [] for text, _ in configs}
    for _ in range(args.repeats):
        for text, cfg in configs:
            rates[text].append(run(cfg, seqs, counts, num_items, args.steps))
    events = sum(len(s) for s in seqs) / max(len(seqs), 1)
    print(f"data={args.data} users={len(seqs)} items={num_items} train events/user={events:.1f} threads={args.threads}")
    print("| config | tokens/s (median) | range | s/epoch (est.) |")
    print("|---|---|---|---|")
    for text, cfg in configs:
        x_np, _ = training_windows(seqs, cfg.max_seq_len, resolved_sliding_window_step(cfg))
        epoch_tokens = int((x_np > 0).sum())
        r = rates[text]
        med = statistics.median(r)
        print(f"| {text or 'defaults'} | {med:,.0f} | {min(r):,.0f}-{max(r):,.0f} | {epoch_tokens / med:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
