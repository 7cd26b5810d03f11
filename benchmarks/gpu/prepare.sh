#!/usr/bin/env bash
# Packs what the GPU check (benchmarks/gpu/check.sh) needs on a machine that has PyTorch with CUDA but no network:
# the Python packages attnrec imports that such an image lacks (as wheels for CPython 3.12 on x86-64 Linux, at the
# versions installed in .venv, unpacked and compressed into one archive) and the ML-1M file. Run it here (it needs
# PyPI and ../shared/data); it writes .gpu/ (git-ignored, about 40 MB), which travels with the working tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/ml-1m/ml-1m.txt}
PACKAGES=${PACKAGES:-"polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection typer annotated-doc click"}
[ -f "$DATA" ] || { echo "prepare.sh: no ML-1M file at $DATA (set DATA=...)" >&2; exit 1; }
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/site
pins=()
for name in $PACKAGES; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  pins+=("$name==$version")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/wheels "${pins[@]}"
for wheel in .gpu/wheels/*.whl; do "$PY" -m zipfile -e "$wheel" .gpu/site; done
tar -C .gpu/site -cf - . | xz -6 -T0 > .gpu/site.tar.xz
xz -6 -c "$DATA" > .gpu/ml-1m.txt.xz
rm -rf .gpu/wheels .gpu/site
echo "packed: ${pins[*]}"
du -sh .gpu/*
