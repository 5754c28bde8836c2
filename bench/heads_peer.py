#!/usr/bin/env python3
"""The peer of the head benchmark: scikit-learn's logistic regression on the same embeddings.

Usage: heads_peer.py TRAIN.csv TRAIN.npy TEST.csv TEST.npy [--multi-label]

The .npy files are `habitlens embed` output for the `text` column of the CSV files (one row
per CSV row, in order), so both sides see identical vectors. The inverse regularisation C is
chosen by 5-fold cross-validation on the training part only. Prints one JSON object with the
same keys as `habitlens evaluate --report`: accuracy, macro_f1, weighted_f1 (single-label) or
micro_f1, macro_f1 (multi-label), and the seconds the fit took.
"""
import csv
import json
import sys
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import accuracy_score, f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

CS = [0.1, 1.0, 10.0, 100.0]
# scikit-learn announces coming changes of defaults; the settings here are explicit.
warnings.filterwarnings("ignore", category=FutureWarning)


def labels(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [r["label"] for r in csv.DictReader(f)]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    multi = "--multi-label" in sys.argv
    if len(args) != 4:
        sys.exit(__doc__)
    y_train, x_train = labels(args[0]), np.load(args[1])
    y_test, x_test = labels(args[2]), np.load(args[3])
    started = time.perf_counter()
    if multi:
        mlb = MultiLabelBinarizer()
        yt = mlb.fit_transform([y.split(";") for y in y_train])
        ye = mlb.transform([y.split(";") for y in y_test])
        # One C for all labels, picked by cross-validated micro-F1 of the one-vs-rest model.
        from sklearn.model_selection import cross_val_score

        best_c = max(
            CS,
            key=lambda c: cross_val_score(
                OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000)),
                x_train, yt, cv=5, scoring="f1_micro",
            ).mean(),
        )
        model = OneVsRestClassifier(LogisticRegression(C=best_c, max_iter=3000)).fit(x_train, yt)
        pred = model.predict(x_test)
        out = {
            "micro_f1": f1_score(ye, pred, average="micro", zero_division=0),
            "macro_f1": f1_score(ye, pred, average="macro", zero_division=0),
            "C": best_c,
        }
    else:
        model = LogisticRegressionCV(Cs=CS, cv=5, max_iter=3000).fit(x_train, y_train)
        pred = model.predict(x_test)
        out = {
            "accuracy": accuracy_score(y_test, pred),
            "macro_f1": f1_score(y_test, pred, average="macro", zero_division=0),
            "weighted_f1": f1_score(y_test, pred, average="weighted", zero_division=0),
            "C": float(model.C_[0]),
        }
    out["fit_seconds"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()
