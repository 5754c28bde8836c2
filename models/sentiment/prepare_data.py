#!/usr/bin/env python3
"""Builds the training data of the shipped sentiment head from ../shared/data (read-only).

Writes two CSV files (columns: text, label, source) into OUT_DIR, outside the repository:
  train.csv  what `habitlens train` sees (it cuts its own validation split from it)
  dev.csv    10% of each source, held back, for the per-source figures in README.md

Sources (all positive/negative, no neutral class):
  hu_liu       Hu & Liu customer reviews, sentences (custrev.train80.pos/.neg)
  uci_amazon, uci_yelp, uci_imdb   UCI sentiment labelled sentences (*.train80.txt)
  blitzer_<domain>   Blitzer Amazon reviews, electronics and kitchen (review_text, 1-2 stars =
               negative, 4-5 = positive)

Usage: python3 models/sentiment/prepare_data.py ../shared/data OUT_DIR
"""

import csv
import html
import os
import random
import re
import sys


def hu_liu(data):
    d = os.path.join(data, "hu_liu_customer_reviews_cr")
    for name, label in (("custrev.train80.pos", "positive"), ("custrev.train80.neg", "negative")):
        with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    yield "hu_liu", line.strip(), label


def uci(data):
    d = os.path.join(data, "uci_sentiment_labelled_sentences")
    for src in ("amazon_cells", "yelp", "imdb"):
        with open(os.path.join(d, f"{src}_labelled.train80.txt"), encoding="utf-8", newline="\n") as f:
            for line in f.read().split("\n"):
                if "\t" not in line:
                    continue
                text, label = line.rsplit("\t", 1)
                if text.strip():
                    yield "uci_" + src.split("_")[0], text.strip(), "positive" if label.strip() == "1" else "negative"


def blitzer(data, domains=("electronics", "kitchen_&_housewares")):
    d = os.path.join(data, "blitzer_multidomain_amazon_reviews")
    for domain in domains:
        for polarity in ("positive", "negative"):
            with open(os.path.join(d, domain, f"{polarity}.train80.review"), encoding="utf-8", errors="replace") as f:
                raw = f.read()
            for m in re.finditer(r"<review_text>\s*(.*?)\s*</review_text>", raw, re.S):
                text = " ".join(html.unescape(m.group(1)).split())
                if text:
                    yield "blitzer_" + domain.split("_")[0], text, polarity


def main():
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rows = list(hu_liu(data)) + list(uci(data)) + list(blitzer(data))
    rng = random.Random(20261203)
    by_source = {}
    for r in rows:
        by_source.setdefault(r[0], []).append(r)
    train, dev = [], []
    for src in sorted(by_source):
        group = by_source[src]
        rng.shuffle(group)
        cut = len(group) // 10
        dev += group[:cut]
        train += group[cut:]
    for name, part in (("train.csv", train), ("dev.csv", dev)):
        with open(os.path.join(out, name), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label", "source"])
            for src, text, label in part:
                w.writerow([text, label, src])
    for src in sorted(by_source):
        print(f"{src}: {len(by_source[src])} rows", file=sys.stderr)
    print(f"train {len(train)} rows, dev {len(dev)} rows -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
