#!/usr/bin/env bash
# Zero-shot baseline on SemEval-2014 restaurant aspect categories (multi-label, 5 categories):
# converts the training XML to CSV, runs `habitlens analyze` with the taxonomy written for these
# categories (no threshold tuned on the gold labels), and prints micro- and macro-F1.
#
# Usage: bench/zeroshot_semeval.sh   (needs ../shared/data and the model in HF_HOME)
set -euo pipefail
# A relative CARGO_TARGET_DIR means the caller's folder, as it does for cargo there.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"; fi
cd "$(dirname "$0")/.."
if [ -z "${HF_HOME:-}" ] && [ -d ../shared/hf-home ]; then export HF_HOME="$PWD/../shared/hf-home"; fi
work="${BENCH_OUT:-bench/out}/zeroshot-semeval"
mkdir -p "$work"

python3 bench/semeval_to_csv.py ../shared/data/semeval2014_absa/Restaurants_Train_v2.xml "$work/gold.csv"
cargo build --release --quiet
"${CARGO_TARGET_DIR:-target}"/release/habitlens analyze "$work/gold.csv" --text-column text --id-column id \
  --taxonomy models/semeval2014-restaurants.toml --output-dir "$work" --quiet > "$work/table.txt"
python3 bench/score_zeroshot.py "$work/rows.csv" "$work/gold.csv" aspects
