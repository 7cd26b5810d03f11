"""SASRec quality and training time on ML-1M / Amazon Beauty / LastFM: ``benchmarks/sequential.py --model sasrec``.

Protocol (``benchmarks/sequential.py`` and ``docs/benchmarks.md``): leave-one-out, full ranking over all items,
the model's defaults (no per-dataset settings), early stopping on validation NDCG@10, test evaluated once.

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/sasrec.py --data ml-1m --seeds 0,1,2 [--set key=value ...] \
        [--threads 2] [--device cpu] [--out results.json] [--log-dir runs/]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sequential import main

if __name__ == "__main__":
    raise SystemExit(main(["--model", "sasrec", *sys.argv[1:]]))
