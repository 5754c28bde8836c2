#!/usr/bin/env bash
# Head quality on four real datasets: habitlens heads against scikit-learn's logistic
# regression on the same frozen all-MiniLM-L6-v2 embeddings, scored on a held-out 20% of each
# shared training file (the official test splits are held back from this project).
#
# Usage: bench/heads_quality.sh   (needs ../shared/data and the model in HF_HOME)
# Creates bench/.venv (numpy, scikit-learn) on first use. Prints one table.
set -euo pipefail
# A relative CARGO_TARGET_DIR means the caller's folder, as it does for cargo there.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"; fi
cd "$(dirname "$0")/.."
if [ -z "${HF_HOME:-}" ] && [ -d ../shared/hf-home ]; then export HF_HOME="$PWD/../shared/hf-home"; fi
work="${BENCH_OUT:-bench/out}/heads"
mkdir -p "$work"
if [ ! -x bench/.venv/bin/python ]; then python3 -m venv bench/.venv; fi
bench/.venv/bin/pip install -q --disable-pip-version-check numpy scikit-learn

cargo build --release --quiet
hl="${CARGO_TARGET_DIR:-target}/release/habitlens"
python3 bench/heads_data.py ../shared/data "$work"
export HABITLENS_CACHE="$work/cache"
rm -rf "$HABITLENS_CACHE"  # so the first training run of each dataset includes embedding

results="$work/results.jsonl"
: > "$results"
for name in banking77 semeval14_restaurants hu_liu_cr airline_reasons; do
  d="$work/$name"
  rm -f "$d/times.txt"
  multi=()
  [ "$name" = semeval14_restaurants ] && multi=(--multi-label)
  # habitlens: train (embeds and caches), then evaluate on the held-out part; the default linear
  # head, then one hidden layer. The second `train` of the default head reads the cache: the time
  # of training alone.
  for variant in linear hidden256; do
    opts=()
    [ "$variant" = hidden256 ] && opts=(--hidden 256 --dropout 0.3)
    start=$EPOCHREALTIME
    $hl --quiet train "$d/train.csv" --text-column text --label-column label "${multi[@]}" \
      "${opts[@]}" --output "$d/head-$variant" > "$d/train-$variant.txt"
    echo "$variant $(python3 -c "print($EPOCHREALTIME - $start)")" >> "$d/times.txt"
    $hl --quiet evaluate "$d/test.csv" --head "$d/head-$variant" --report "$d/$variant.json" \
      > "$d/eval-$variant.txt"
  done
  start=$EPOCHREALTIME
  $hl --quiet train "$d/train.csv" --text-column text --label-column label "${multi[@]}" \
    --output "$d/head-linear" > "$d/train-linear.txt"
  echo "cached $(python3 -c "print($EPOCHREALTIME - $start)")" >> "$d/times.txt"
  # scikit-learn on the same vectors.
  for part in train test; do
    [ -f "$d/$part.npy" ] || $hl --quiet embed "$d/$part.csv" --text-column text --output "$d/$part.npy"
  done
  bench/.venv/bin/python bench/heads_peer.py "$d/train.csv" "$d/train.npy" "$d/test.csv" "$d/test.npy" \
    "${multi[@]}" > "$d/sklearn.json"
  python3 - "$name" "$d" >> "$results" <<'PY'
import csv, json, sys
name, d = sys.argv[1], sys.argv[2]
with open(f"{d}/train.csv", newline="", encoding="utf-8") as f:
    rows = sum(1 for _ in csv.DictReader(f))
times = dict(line.split() for line in open(f"{d}/times.txt"))
print(json.dumps({"name": name, "rows": rows,
                  "linear": json.load(open(f"{d}/linear.json")),
                  "hidden256": json.load(open(f"{d}/hidden256.json")),
                  "sklearn": json.load(open(f"{d}/sklearn.json")),
                  "times": {k: float(v) for k, v in times.items()}}))
PY
done

python3 - "$results" <<'PY'
import json, sys
metric = {"banking77": "accuracy", "semeval14_restaurants": "micro_f1", "hu_liu_cr": "accuracy",
          "airline_reasons": "macro_f1"}
print("held-out 20%; main metric (macro-F1 in brackets); train seconds: first run with embedding,")
print("then from the embedding cache")
print(f"{'dataset':22} {'rows':>5} {'metric':>8}  {'habitlens linear':>17}  {'hidden 256':>15}  "
      f"{'sklearn LR':>15}  {'train s':>13}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = metric[r["name"]]
    cell = lambda x: f"{x[m]:.3f} ({x['macro_f1']:.3f})"
    t = r["times"]
    print(f"{r['name']:22} {r['rows']:>5} {m:>8}  {cell(r['linear']):>17}  {cell(r['hidden256']):>15}  "
          f"{cell(r['sklearn']):>15}  {t['linear']:>5.1f} ({t['cached']:.1f})")
PY
