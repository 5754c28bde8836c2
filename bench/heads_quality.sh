#!/usr/bin/env bash
# Head quality on four real datasets: habitlens heads against scikit-learn's logistic
# regression on the same frozen all-MiniLM-L6-v2 embeddings, scored on a held-out 20% of each
# shared training file (the official test splits are held back from this project).
#
# Usage: bench/heads_quality.sh   (needs ../shared/data and the model in HF_HOME)
# Creates bench/.venv (numpy, scikit-learn) on first use. Prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${HF_HOME:-}" ] && [ -d ../shared/hf-home ]; then export HF_HOME="$PWD/../shared/hf-home"; fi
work="${BENCH_OUT:-bench/out}/heads"
mkdir -p "$work"
if [ ! -x bench/.venv/bin/python ]; then python3 -m venv bench/.venv; fi
bench/.venv/bin/pip install -q --disable-pip-version-check numpy scikit-learn

cargo build --release --quiet
hl=target/release/habitlens
python3 bench/heads_data.py ../shared/data "$work"
export HABITLENS_CACHE="$work/cache"

results="$work/results.jsonl"
: > "$results"
for name in banking77 semeval14_restaurants hu_liu_cr airline_reasons; do
  d="$work/$name"
  multi=()
  [ "$name" = semeval14_restaurants ] && multi=(--multi-label)
  # habitlens: train (embeds and caches), then evaluate on the held-out part.
  start=$EPOCHREALTIME
  $hl --quiet train "$d/train.csv" --text-column text --label-column label "${multi[@]}" \
    --output "$d/head" > "$d/train.txt"
  train_s=$(python3 -c "print($EPOCHREALTIME - $start)")
  # Again from the cache: the time of training alone.
  start=$EPOCHREALTIME
  $hl --quiet train "$d/train.csv" --text-column text --label-column label "${multi[@]}" \
    --output "$d/head" > "$d/train.txt"
  cached_s=$(python3 -c "print($EPOCHREALTIME - $start)")
  $hl --quiet evaluate "$d/test.csv" --head "$d/head" --report "$d/habitlens.json" > "$d/eval.txt"
  # scikit-learn on the same vectors.
  for part in train test; do
    [ -f "$d/$part.npy" ] || $hl --quiet embed "$d/$part.csv" --text-column text --output "$d/$part.npy"
  done
  bench/.venv/bin/python bench/heads_peer.py "$d/train.csv" "$d/train.npy" "$d/test.csv" "$d/test.npy" \
    "${multi[@]}" > "$d/sklearn.json"
  python3 - "$name" "$d" "$train_s" "$cached_s" >> "$results" <<'PY'
import json, sys
name, d, train_s, cached_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rows = sum(1 for _ in open(f"{d}/train.csv", encoding="utf-8")) - 1
print(json.dumps({"name": name, "rows": rows, "habitlens": json.load(open(f"{d}/habitlens.json")),
                  "sklearn": json.load(open(f"{d}/sklearn.json")),
                  "train_s": train_s, "cached_train_s": cached_s}))
PY
done

python3 - "$results" <<'PY'
import json, sys
metric = {"banking77": "accuracy", "semeval14_restaurants": "micro_f1", "hu_liu_cr": "accuracy",
          "airline_reasons": "macro_f1"}
print(f"{'dataset':24} {'train rows':>10} {'metric':>9} {'habitlens':>9} {'sklearn LR':>10} "
      f"{'macro-F1 hl/sk':>15} {'train s (cached)':>17}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = metric[r["name"]]
    h, s = r["habitlens"], r["sklearn"]
    print(f"{r['name']:24} {r['rows']:>10} {m:>9} {h[m]:>9.3f} {s[m]:>10.3f} "
          f"{h['macro_f1']:>7.3f}/{s['macro_f1']:.3f} {r['train_s']:>8.1f} ({r['cached_train_s']:.1f})")
PY
