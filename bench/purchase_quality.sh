#!/usr/bin/env bash
# Purchase prediction quality, habitlens beside scikit-learn on the same rows.
#
# 1. UCI Online Shoppers (`Revenue`): a seeded stratified 80/20 split of the shared file (the
#    official held-back rows are hidden); habitlens trains on the 80 with three seeds and
#    predicts the 20; scikit-learn's MLPClassifier(64, 32) and HistGradientBoosting train and
#    score on the same rows; one table with all of them.
# 2. Women's clothing reviews (`Recommended IND`): a seeded stratified sample of
#    ${CLOTHING_ROWS:-4000} reviews split 80/20; habitlens with `Age` only, then with
#    `Review Text` embedded by all-MiniLM-L6-v2 and joined to `Age`; ROC-AUC of both.
#
# Usage: bench/purchase_quality.sh   (needs ../shared/data, the model in HF_HOME, python3;
# scikit-learn is installed into bench/.venv on first use). About 3 minutes on 2 cores, most
# of it embedding the reviews.
set -euo pipefail
# A relative CARGO_TARGET_DIR means the caller's folder, as it does for cargo there.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"; fi
cd "$(dirname "$0")/.."
if [ -z "${HF_HOME:-}" ] && [ -d ../shared/hf-home ]; then export HF_HOME="$PWD/../shared/hf-home"; fi
work="${BENCH_OUT:-bench/out}/purchase"
mkdir -p "$work"
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet numpy pandas scikit-learn
fi
py=bench/.venv/bin/python
cargo build --release --quiet
hl="${CARGO_TARGET_DIR:-target}/release/habitlens --quiet purchase"

# 1. Online Shoppers.
$py bench/purchase_split.py ../shared/data/uci_online_shoppers_intention/online_shoppers_intention.train80.csv \
  Revenue "$work/shoppers" --seed 42
predictions=()
for seed in 1 2 3; do
  $hl train "$work/shoppers.train.csv" --target Revenue \
    --categorical OperatingSystems,Browser,Region,TrafficType \
    --seed "$seed" --output "$work/shoppers-model-$seed" > "$work/shoppers-train-$seed.txt"
  $hl predict "$work/shoppers.test.csv" --model "$work/shoppers-model-$seed" \
    --output "$work/shoppers-predictions-$seed.csv" 2> /dev/null
  $hl evaluate "$work/shoppers.test.csv" --model "$work/shoppers-model-$seed" \
    --report "$work/shoppers-report-$seed.json" > /dev/null
  predictions+=("$seed=$work/shoppers-predictions-$seed.csv")
done
$hl evaluate "$work/shoppers.test.csv" --model "$work/shoppers-model-1" --importance \
  > "$work/shoppers-importance.txt"
(IFS=,; $py bench/purchase_peer.py shoppers "$work/shoppers" "${predictions[*]}" \
  "$work/shoppers-report-SEED.json")
echo

# 2. Clothing reviews: numbers alone, then text joined to them.
$py bench/purchase_split.py "../shared/data/womens_ecommerce_clothing_reviews/Womens Clothing E-Commerce Reviews.train80.csv" \
  "Recommended IND" "$work/clothing" --seed 42 --sample "${CLOTHING_ROWS:-4000}" \
  --columns "Age,Review Text,Recommended IND"
$hl train "$work/clothing.train.csv" --target "Recommended IND" --numeric Age \
  --ignore "Review Text" --output "$work/clothing-age" > "$work/clothing-age-train.txt"
$hl evaluate "$work/clothing.test.csv" --model "$work/clothing-age" \
  --report "$work/clothing-age.json" > /dev/null
$hl train "$work/clothing.train.csv" --target "Recommended IND" --numeric Age \
  --text-column "Review Text" --output "$work/clothing-text" > "$work/clothing-text-train.txt"
$hl evaluate "$work/clothing.test.csv" --model "$work/clothing-text" \
  --report "$work/clothing-text.json" > /dev/null
$py bench/purchase_peer.py clothing "$work/clothing" "$work/clothing-age.json" "$work/clothing-text.json"
