#!/usr/bin/env python3
"""Draw K training examples per label from a `text,label` CSV, seeded.

Usage: few_shot.py TRAIN.csv K SEED OUT.csv

Labels with fewer than K rows keep all of theirs. Standard library only.
"""
import csv
import random
import sys

src, k, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(src, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
by_label = {}
for row in rows:
    by_label.setdefault(row["label"], []).append(row)
rng = random.Random(seed)
picked = []
for label in sorted(by_label):
    group = by_label[label]
    picked.extend(rng.sample(group, min(k, len(group))))
rng.shuffle(picked)
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=["text", "label"])
    w.writeheader()
    w.writerows({"text": r["text"], "label": r["label"]} for r in picked)
print(f"{len(picked)} rows, {len(by_label)} labels -> {out}", file=sys.stderr)
