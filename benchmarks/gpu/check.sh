#!/usr/bin/env bash
# The GPU check of docs/training.md, "Checking the GPU path": run on a machine with a CUDA GPU and PyTorch, from the
# repository root, after benchmarks/gpu/prepare.sh has packed .gpu/ (where the network is). It needs no network.
#   1. the device tests: every neural model trained on the GPU scores the same after loading on the CPU (the
#      conformance suite's CUDA check), device options, one GPU per process;
#   2. the SASRec default on ML-1M with --device cuda, timed (training + evaluation), then NARM and BERT4Rec
#      while the time budget lasts (STEP_LIMIT seconds each, default 240).
# Results: $OUT (default runs/gpu-check): check.log, pytest.log and MODEL-metrics.json per finished run.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/gpu-check}
STEP_LIMIT=${STEP_LIMIT:-240}
PY=${PY:-python3}
MODELS=${MODELS:-"sasrec narm bert4rec"}
mkdir -p "$OUT" /tmp/attnrec-site /tmp/attnrec-gpu-runs
exec > >(tee -a "$OUT/check.log") 2>&1
if [ -f .gpu/site.tar.xz ]; then
  tar -xJf .gpu/site.tar.xz -C /tmp/attnrec-site
  export PYTHONPATH="$PWD/src:/tmp/attnrec-site"
else
  export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1
[ -f .gpu/ml-1m.txt.xz ] && xz -dc .gpu/ml-1m.txt.xz > /tmp/ml-1m.txt
DATA=${DATA:-/tmp/ml-1m.txt}
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
lscpu | grep -m1 'Model name' || true
"$PY" -c "import torch, attnrec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"

echo "== device tests"
"$PY" -m pytest -q -p no:cacheprovider -k "gpu or device or cuda" \
  tests/training/test_neural.py tests/training/test_distributed.py \
  tests/models/test_sasrec.py tests/models/test_bert4rec.py tests/models/test_narm.py tests/models/test_nais.py \
  tests/models/test_din.py tests/models/test_autoint.py tests/models/test_fm.py tests/models/test_logreg.py \
  tests/models/test_mf.py 2>&1 | tee "$OUT/pytest.log"

for model in $MODELS; do
  [ -f "$DATA" ] || { echo "no ML-1M file ($DATA): skipping the timed runs"; break; }
  echo "== $model on ML-1M, --device cuda, default hyperparameters (at most $STEP_LIMIT s)"
  start=$(date +%s.%N)
  timeout "$STEP_LIMIT" "$PY" -m attnrec.cli.main train --model "$model" --data "$DATA" --format sasrec \
    --device cuda --seed 0 --quiet --out "/tmp/attnrec-gpu-runs/$model"
  rc=$?
  end=$(date +%s.%N)
  echo "$model: exit $rc, wall $("$PY" -c "print(round($end - $start, 1))") s (start-up, training and evaluation)"
  [ -f "/tmp/attnrec-gpu-runs/$model/metrics.json" ] && cp "/tmp/attnrec-gpu-runs/$model/metrics.json" "$OUT/$model-metrics.json"
  "$PY" - "$model" "/tmp/attnrec-gpu-runs/$model" <<'PYEOF' || true
import json, sys
from pathlib import Path
run = Path(sys.argv[2])
if (run / "metrics.json").exists():
    m = json.loads((run / "metrics.json").read_text())
    test = m.get("test", {})
    print(sys.argv[1], "test ndcg@10", round(test.get("ndcg@10", float("nan")), 4), "hr@10",
          round(test.get("hr@10", float("nan")), 4), "train s", m.get("train_seconds"), "epochs", m.get("epochs"),
          "best", m.get("best_epoch"))
PYEOF
done
date -u
