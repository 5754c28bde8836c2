#!/usr/bin/env python3
"""Load a folder written by `habitlens train --fine-tune` in sentence-transformers and compare
its embeddings of the check texts with the ones the training run recorded.

Usage: st_load_check.py FOLDER

Prints the lowest cosine and exits 1 when it is below 0.9999.
"""
import json
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

folder = sys.argv[1]
check = json.load(open(f"{folder}/fine_tune_check.json", encoding="utf-8"))
model = SentenceTransformer(folder, device="cpu")
got = model.encode(check["texts"], normalize_embeddings=False)
want = np.asarray(check["embeddings"], dtype=np.float32)
cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
print(json.dumps({"folder": folder, "texts": len(cos), "lowest_cosine": float(cos.min())}))
sys.exit(0 if cos.min() >= 0.9999 else 1)
