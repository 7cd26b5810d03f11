"""Sampled negatives of click models fitted on a plain log come from items with training events only."""

from __future__ import annotations

import numpy as np
import torch

from attnrec.data.synthetic import block_interactions
from attnrec.models._ctr import impression_batches


def test_cold_catalogue_items_are_never_sampled_as_negatives() -> None:
    warm = block_interactions(30, 20, num_groups=2, density=0.4, seed=0)
    train = warm.extend_items([f"cold-{i}" for i in range(60)])  # 60 feature-only items after the 20 warm ones
    assert train.num_items == 80 and len(np.unique(train.item_idx)) <= 20

    def make(users: np.ndarray, items: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> dict[str, torch.Tensor]:
        return {"users": torch.from_numpy(users), "items": torch.from_numpy(items), "labels": torch.from_numpy(labels)}

    batches, _ = impression_batches(train, negatives=4, batch_size=10_000, make=make)
    gen = torch.Generator().manual_seed(0)
    seen_events = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    negatives: list[int] = []
    for epoch in range(3):
        for batch in batches(epoch, gen):
            neg = batch["labels"] == 0
            pairs = zip(batch["users"][neg].tolist(), batch["items"][neg].tolist(), strict=True)
            assert not any(p in seen_events for p in pairs)  # a user's own events are not negatives
            negatives += batch["items"][neg].tolist()
    assert len(negatives) == 3 * 4 * len(train)
    # drawn uniformly over all 80 items, three quarters of the negatives would be cold items
    assert set(negatives) <= set(np.unique(train.item_idx).tolist())
    assert len(set(negatives)) > 10  # and they still spread over the warm items
