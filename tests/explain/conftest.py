"""A tiny SASRec trained on planted sequences (item ``i`` is always followed by ``i + 1``), shared by the
explanation tests."""

from __future__ import annotations

import pytest
import torch

from attnrec.data.synthetic import planted_sequences
from attnrec.models.sasrec import SASRec
from attnrec.training.options import TrainingOptions


@pytest.fixture(scope="session")
def planted_model() -> SASRec:
    torch.set_num_threads(1)
    data = planted_sequences(num_users=120, num_items=30, length=8, seed=1)
    # weight_decay 0: the planted log is sparse (32 events per item, the rule would decay), and a short fit that
    # must learn the planted order exactly is what these tests need
    model = SASRec(
        embed_dim=32, num_layers=1, num_heads=1, max_seq_len=8, epochs=40, dropout=0.1, lr=5e-3, weight_decay=0.0
    )
    return model.fit(data, options=TrainingOptions(seed=0, threads=1))  # type: ignore[return-value]
