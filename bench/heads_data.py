#!/usr/bin/env python3
"""Prepare the four head benchmarks as CSV files (`text`, `label`), each cut into a training
part and a held-out part.

Usage: heads_data.py SHARED_DATA_DIR OUT_DIR

For each dataset writes OUT_DIR/NAME/train.csv and OUT_DIR/NAME/test.csv. The official test
splits are held back from this project, so the held-out part is a seeded, stratified 20% of the
shared training files; identical texts (after collapsing whitespace and case) stay on one side.
Standard library only.

- banking77: 77 intents, single-label (`category`).
- semeval14_restaurants: 5 aspect categories, multi-label, `;`-separated.
- hu_liu_cr: positive / negative customer-review sentences.
- airline_reasons: `negativereason` of the negative tweets (the file is Windows-1252).
"""
import csv
import os
import random
import sys
import xml.etree.ElementTree as ET

SEED = 20261203


def norm(text):
    return " ".join(text.split()).lower()


def split(rows, seed=SEED, fraction=0.2):
    """Stratified by (first) label, duplicates grouped; returns (train, test)."""
    groups = {}
    for text, label in rows:
        groups.setdefault(norm(text), []).append((text, label))
    strata = {}
    for key in sorted(groups):
        strata.setdefault(groups[key][0][1].split(";")[0], []).append(key)
    train, test = [], []
    for stratum in sorted(strata):
        keys = strata[stratum]
        random.Random(f"{seed}:{stratum}").shuffle(keys)
        n_test = round(fraction * sum(len(groups[k]) for k in keys))
        taken = 0
        for key in keys:
            side = test if taken < n_test else train
            side.extend(groups[key])
            if side is test:
                taken += len(groups[key])
    random.Random(seed).shuffle(train)
    random.Random(seed + 1).shuffle(test)
    return train, test


def write(out_dir, name, rows):
    train, test = split(rows)
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for part, data in (("train", train), ("test", test)):
        with open(os.path.join(out_dir, name, f"{part}.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(data)
    print(f"{name}: {len(train)} train, {len(test)} held out")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, out = sys.argv[1:]

    with open(os.path.join(data, "banking77/train.csv"), newline="", encoding="utf-8") as f:
        write(out, "banking77", [(r["text"], r["category"]) for r in csv.DictReader(f)])

    root = ET.parse(os.path.join(data, "semeval2014_absa/Restaurants_Train_v2.xml")).getroot()
    rows = []
    for s in root.iter("sentence"):
        cats = [c.get("category").replace("/", "_") for c in s.iter("aspectCategory")]
        if cats:
            rows.append((s.findtext("text"), ";".join(cats)))
    write(out, "semeval14_restaurants", rows)

    rows = []
    for suffix, label in (("pos", "positive"), ("neg", "negative")):
        path = os.path.join(data, f"hu_liu_customer_reviews_cr/custrev.train80.{suffix}")
        with open(path, encoding="utf-8") as f:
            rows += [(line.strip(), label) for line in f if line.strip()]
    write(out, "hu_liu_cr", rows)

    path = os.path.join(data, "twitter_us_airline_sentiment/Airline-Sentiment-2-w-AA.train80.csv")
    with open(path, newline="", encoding="cp1252", errors="replace") as f:
        rows = [
            (r["text"], r["negativereason"])
            for r in csv.DictReader(f)
            if r["airline_sentiment"] == "negative" and r["negativereason"]
        ]
    write(out, "airline_reasons", rows)


if __name__ == "__main__":
    main()
