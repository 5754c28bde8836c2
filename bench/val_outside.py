#!/usr/bin/env python3
"""Hold out N validation rows of a `text,label` CSV that a few-shot draw does not use.

Usage: val_outside.py TRAIN.csv DRAW.csv N OUT.csv

The rows of TRAIN whose (text, label) is not in DRAW are shuffled with a fixed seed (7) and the
first N are written: a validation set for choosing few-shot settings that shares no text with
the draw and none with the held-out test cut (TRAIN is the training part of that cut).
Standard library only.
"""
import csv
import random
import sys

src, draw, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


used = set(rows(draw))
pool = [r for r in rows(src) if r not in used]
random.Random(7).shuffle(pool)
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["text", "label"])
    w.writerows(pool[:n])
print(f"{min(n, len(pool))} of {len(pool)} rows outside the draw -> {out}", file=sys.stderr)
