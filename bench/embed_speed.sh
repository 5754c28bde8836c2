#!/usr/bin/env bash
# Embedding throughput and memory, habitlens side by side with sentence-transformers on PyTorch
# and ONNX Runtime, on real reviews from ../shared/data.
#
# Usage: bench/embed_speed.sh [TEXTS] [MEMORY_ROWS]
#   TEXTS        corpus size, default 2000 (first non-empty `Review Text` of the women's
#                clothing reviews: mixed lengths)
#   MEMORY_ROWS  comma-separated row counts for the bounded-memory check, e.g. 20000,200000
#                (the corpus repeated); skipped when empty
# Creates bench/.venv from PyPI (sentence-transformers, onnxruntime, onnx) on first use and
# exports the ONNX file itself. THREADS (default: all cores) and BATCH (default 32) override.
# TINY=1 runs the memory check with a tiny random encoder (bench/tiny_model.py) instead of the
# default model, so that 200,000 rows are practical.
set -euo pipefail
# A relative CARGO_TARGET_DIR means the caller's folder, as it does for cargo there.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"; fi
cd "$(dirname "$0")/.."
texts="${1:-2000}"
memory_rows="${2:-}"
if [ -z "${HF_HOME:-}" ] && [ -d ../shared/hf-home ]; then export HF_HOME="$PWD/../shared/hf-home"; fi
work=bench/out/embed-speed
mkdir -p "$work"

if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
fi
bench/.venv/bin/pip install -q --disable-pip-version-check sentence-transformers onnx onnxruntime numpy

cargo build --release --quiet
# The model folder, resolved through the Hugging Face cache as habitlens does.
model_dir=$(bench/.venv/bin/python -c "from huggingface_hub import snapshot_download as s; print(s('sentence-transformers/all-MiniLM-L6-v2'))")
[ -f "$work/model.onnx" ] || bench/.venv/bin/python bench/export_onnx.py "$model_dir" "$work/model.onnx"

bench/.venv/bin/python - "$texts" "$work/corpus.txt" <<'PY'
import csv, sys
n, out = int(sys.argv[1]), sys.argv[2]
path = "../shared/data/womens_ecommerce_clothing_reviews/Womens Clothing E-Commerce Reviews.train80.csv"
with open(path, newline="", encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
    kept = 0
    for row in csv.DictReader(f):
        text = " ".join(row["Review Text"].split())
        if text:
            o.write(text + "\n")
            kept += 1
        if kept == n:
            break
PY

memory_models=()
if [ -n "$memory_rows" ] && [ -n "${TINY:-}" ]; then
  # The streaming pipeline's memory does not depend on the encoder: a tiny random encoder
  # makes 200,000 rows take seconds instead of an hour.
  [ -d "$work/tiny-model" ] || bench/.venv/bin/python bench/tiny_model.py "$model_dir" "$work/tiny-model"
  memory_models=(--memory-model "tiny-random-bert=$work/tiny-model")
fi

HF_HUB_OFFLINE=1 bench/.venv/bin/python bench/embed_speed.py "${memory_models[@]}" --habitlens "${CARGO_TARGET_DIR:-target}/release/habitlens" \
  --model-dir "$model_dir" --onnx "$work/model.onnx" --corpus "$work/corpus.txt" --work "$work" \
  --threads "${THREADS:-$(nproc)}" --batch "${BATCH:-32}" --memory-rows "$memory_rows"
