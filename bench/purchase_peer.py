"""scikit-learn peers for bench/purchase_quality.sh, on the same split as habitlens.

    python bench/purchase_peer.py shoppers OUT_PREFIX HABITLENS_PREDICTIONS.csv HABITLENS_REPORT.json
    python bench/purchase_peer.py clothing OUT_PREFIX NUMBERS_ONLY_REPORT.json WITH_TEXT_REPORT.json

`shoppers` trains MLPClassifier(64, 32) (early stopping) and HistGradientBoostingClassifier on
OUT_PREFIX.train.csv, scores them and the habitlens predictions on OUT_PREFIX.test.csv with
scikit-learn's metrics, and prints one table. The scikit-learn models get the usual
preprocessing: numbers standardised, Month/VisitorType/Weekend and the integer-coded
OperatingSystems/Browser/Region/TrafficType one-hot (HGB: categorical codes, its native
handling). F1 is shown at each model's own decision rule (0.5 for scikit-learn, the threshold
saved by `purchase train` for habitlens) and at the best threshold on the test rows (an
oracle, for comparison only). It also checks that habitlens's own report agrees with
scikit-learn's metrics on the same predictions.
"""

import json
import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.neural_network import MLPClassifier

NUMERIC = [
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay",
]
CATEGORICAL = [
    "Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType", "Weekend",
]
SEEDS = [0, 1, 2]


def best_f1(y, p):
    precision, recall, _ = precision_recall_curve(y, p)
    f = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f[:-1].max())


def row(name, y, p, threshold):
    return {
        "model": name,
        "roc_auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "f1": f1_score(y, p >= threshold),
        "threshold": threshold,
        "best_f1": best_f1(y, p),
        "brier": brier_score_loss(y, p),
    }


def print_table(rows):
    cols = ["model", "roc_auc", "pr_auc", "f1", "threshold", "best_f1", "brier"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r["model"]] + [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols[1:]]
        print("| " + " | ".join(cells) + " |")


def shoppers(prefix, predictions, report_path):
    train = pd.read_csv(f"{prefix}.train.csv")
    test = pd.read_csv(f"{prefix}.test.csv")
    y_train = train.pop("Revenue").astype(str).eq("True").to_numpy(int)
    y_test = test.pop("Revenue").astype(str).eq("True").to_numpy(int)
    both = pd.concat([train, test], ignore_index=True)
    numbers = both[NUMERIC].astype(float)
    numbers = (numbers - numbers.iloc[: len(train)].mean()) / numbers.iloc[: len(train)].std()
    onehot = pd.get_dummies(both[CATEGORICAL].astype(str))
    x = pd.concat([numbers, onehot], axis=1).to_numpy(float)
    x_train, x_test = x[: len(train)], x[len(train):]
    rows = []
    for seed in SEEDS:
        mlp = MLPClassifier((64, 32), early_stopping=True, max_iter=500, random_state=seed)
        p = mlp.fit(x_train, y_train).predict_proba(x_test)[:, 1]
        rows.append(row(f"scikit-learn MLP (64,32), seed {seed}", y_test, p, 0.5))
    codes = both[NUMERIC].astype(float).copy()
    for c in CATEGORICAL:
        codes[c] = both[c].astype("category").cat.codes
    is_cat = [c in CATEGORICAL for c in codes.columns]
    for seed in SEEDS:
        hgb = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=seed)
        p = hgb.fit(codes.iloc[: len(train)], y_train).predict_proba(codes.iloc[len(train):])[:, 1]
        rows.append(row(f"scikit-learn HistGradientBoosting, seed {seed}", y_test, p, 0.5))

    for path in predictions.split(","):
        seed, path = path.split("=")
        ours = pd.read_csv(path)
        assert len(ours) == len(y_test), "one prediction per test row"
        report = json.load(open(report_path.replace("SEED", seed)))
        p = ours["probability"].to_numpy(float)
        r = row(f"habitlens purchase (64,32), seed {seed}", y_test, p, report["threshold"])
        rows.append(r)
        # habitlens's own metrics must agree with scikit-learn's on the same predictions
        # (probabilities are written with 6 decimals, hence the tolerance).
        for key in ["roc_auc", "pr_auc", "f1", "brier"]:
            assert abs(report[key] - r[key]) < 2e-3, (key, report[key], r[key])
    print(f"UCI Online Shoppers, {len(y_train)} training rows, {len(y_test)} test rows "
          f"({y_test.sum()} buyers); seeded stratified 80/20 split of the shared file")
    print_table(rows)


def clothing(prefix, numbers_report, text_report):
    a = json.load(open(numbers_report))
    b = json.load(open(text_report))
    print(f"Women's clothing reviews, `Recommended IND`, {a['rows']} test rows "
          f"({a['positives']} recommend)")
    print("| features | roc_auc | pr_auc | f1 | threshold |")
    print("|---|---|---|---|---|")
    for name, r in [("Age", a), ("Age + Review Text (all-MiniLM-L6-v2)", b)]:
        print(f"| {name} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['f1']:.4f} | {r['threshold']:.4f} |")


if __name__ == "__main__":
    if sys.argv[1] == "shoppers":
        shoppers(*sys.argv[2:5])
    else:
        clothing(*sys.argv[2:5])
