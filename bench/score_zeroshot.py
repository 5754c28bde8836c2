#!/usr/bin/env python3
"""Score habitlens zero-shot labels against gold multi-label categories.

Usage: score_zeroshot.py ROWS.csv GOLD.csv GROUP [GOLD_COLUMN]

ROWS.csv is `habitlens analyze`'s rows.csv; its column GROUP lists assigned labels as
`label:score;label:score`. GOLD.csv has an `id` column and GOLD_COLUMN (default `categories`)
with `;`-separated labels. Prints micro- and macro-F1 and per-label precision, recall and F1.
Standard library only.
"""
import csv
import sys


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    rows_path, gold_path, group = sys.argv[1:4]
    gold_col = sys.argv[4] if len(sys.argv) == 5 else "categories"
    gold = {}
    with open(gold_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gold[row["id"]] = {c for c in row[gold_col].split(";") if c}
    pred = {}
    with open(rows_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pred[row["id"]] = {x.rsplit(":", 1)[0] for x in row[group].split(";") if x}
    if set(pred) != set(gold):
        sys.exit(f"ids differ: {len(pred)} predicted rows, {len(gold)} gold rows")
    labels = sorted(set().union(*gold.values()))
    totals = [0, 0, 0]
    print(f"{'label':28} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    macro = []
    for label in labels:
        tp = sum(1 for i in gold if label in gold[i] and label in pred[i])
        fp = sum(1 for i in gold if label not in gold[i] and label in pred[i])
        fn = sum(1 for i in gold if label in gold[i] and label not in pred[i])
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        p, r, f = f1(tp, fp, fn)
        macro.append(f)
        print(f"{label:28} {p:9.3f} {r:7.3f} {f:6.3f} {tp + fn:8d}")
    print(f"micro-F1 {f1(*totals)[2]:.3f}  macro-F1 {sum(macro) / len(macro):.3f}  ({len(gold)} texts)")


if __name__ == "__main__":
    main()
