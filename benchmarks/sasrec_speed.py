"""SASRec training throughput on ML-1M: tokens/s of full training steps (forward, loss, backward, AdamW).

Each configuration runs ``--steps`` steps (after 2 warm-up steps) on batches drawn exactly as in training
(length bucketing unless disabled) and reports target tokens per second and the implied seconds per epoch.

Usage (from the project root; nothing else should be running)::

    nice -n 5 .venv/bin/python benchmarks/sasrec_speed.py --threads 2 --steps 20 \
        --config "" --config "bf16=true" --config "length_bucketing=false" --config "embed_dim=128"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from attnrec.config import coerce_value
from attnrec.models.sasrec import (
    SASRec,
    SASRecConfig,
    SASRecNet,
    next_item_loss,
    resolved_exclude_window_items,
    resolved_sliding_window_step,
    training_windows,
)
from attnrec.training.losses import make_loss
from attnrec.training.trainer import native_bf16

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"


def parse(text: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = part.split("=", 1)
        out[key] = coerce_value(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--config", action="append", default=None, help="comma-separated key=value overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raw = np.loadtxt(DATA, dtype=np.int64)
    users, items = raw[:, 0], raw[:, 1]
    seqs = [s[:-2] for s in np.split(items, np.flatnonzero(np.diff(users)) + 1)]  # leave-one-out train part
    num_items = int(items.max())
    print(f"| config | tokens/s | s/epoch (est.) | threads={args.threads} |")
    print("|---|---|---|---|")
    for text in args.config or [""]:
        cfg = SASRecConfig.create(parse(text))
        x_np, y_np = training_windows(seqs, cfg.max_seq_len, resolved_sliding_window_step(cfg))
        inputs, targets = torch.from_numpy(x_np), torch.from_numpy(y_np)
        lengths = (inputs > 0).sum(1)
        epoch_tokens = int(lengths.sum())
        torch.manual_seed(0)
        net = SASRecNet(num_items, cfg)
        train_net = torch.compile(net) if cfg.compile else net
        item_loss = make_loss(cfg.loss, num_items, num_negatives=cfg.num_negatives, chunk_size=cfg.ce_chunk_size)
        loss_fn = next_item_loss(
            train_net, net.item_emb.weight, item_loss, exclude_window=resolved_exclude_window_items(cfg)
        )
        bf16 = native_bf16() if cfg.bf16 is None else cfg.bf16
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
        model = SASRec(cfg)
        batches = model._batches(inputs, targets, lengths)(1, torch.Generator().manual_seed(0))
        gen = torch.Generator().manual_seed(1)
        tokens, start = 0, 0.0
        for step, (x, y) in enumerate(batches):
            if step == 2:
                tokens, start = 0, time.perf_counter()
            if step == args.steps + 2:
                break
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, n = loss_fn((x, y), gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tokens += n
        rate = tokens / (time.perf_counter() - start)
        print(f"| {text or 'defaults'} | {rate:,.0f} | {epoch_tokens / rate:.0f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
