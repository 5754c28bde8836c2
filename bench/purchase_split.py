"""Seeded stratified splits for bench/purchase_quality.sh.

The official held-back rows of the shared data sets are hidden, so the benchmark cuts its own
test rows out of the shared files: within each target value, a seeded shuffle puts `test`
of the rows in the test file; both files keep the original row order and the cells byte for
byte (read and written with Python's csv module).

    python bench/purchase_split.py SRC TARGET OUT_PREFIX [--test 0.2] [--seed 42]
        [--sample N] [--columns a,b,c]

writes OUT_PREFIX.train.csv and OUT_PREFIX.test.csv. `--sample N` first draws N rows
(stratified, seeded) from the file; `--columns` keeps only those columns.
"""

import argparse
import csv
import random
import sys


def stratified(rows, target, fraction, rng):
    groups = {}
    for i, row in enumerate(rows):
        groups.setdefault(row[target], []).append(i)
    chosen = set()
    for value in sorted(groups):
        members = groups[value]
        rng.shuffle(members)
        chosen.update(members[: round(fraction * len(members))])
    return chosen


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("target")
    p.add_argument("out")
    p.add_argument("--test", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sample", type=int)
    p.add_argument("--columns")
    a = p.parse_args()

    csv.field_size_limit(sys.maxsize)
    with open(a.src, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader]
    target = header.index(a.target)
    rng = random.Random(a.seed)
    if a.sample and a.sample < len(rows):
        keep = stratified(rows, target, a.sample / len(rows), rng)
        rows = [r for i, r in enumerate(rows) if i in keep]
    test = stratified(rows, target, a.test, rng)
    columns = list(range(len(header)))
    if a.columns:
        columns = [header.index(c) for c in a.columns.split(",")]
    for name, part in (("train", False), ("test", True)):
        with open(f"{a.out}.{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([header[c] for c in columns])
            n = 0
            for i, r in enumerate(rows):
                if (i in test) == part:
                    w.writerow([r[c] for c in columns])
                    n += 1
        print(f"{a.out}.{name}.csv: {n} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
