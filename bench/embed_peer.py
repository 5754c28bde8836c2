#!/usr/bin/env python3
"""Embed a corpus with a Python peer of habitlens and save the vectors.

Usage: embed_peer.py (st|ort) CORPUS.txt OUT.npy MODEL_DIR ONNX_FILE THREADS BATCH MAX_SEQ

`st` runs sentence-transformers on PyTorch (CPU); `ort` runs ONNX Runtime on the ONNX export of
the same model (exported by export_onnx.py), with mean pooling and L2 normalisation as the
model's own modules.json says. Both sort by length before batching, as habitlens does. Prints
one JSON line: load and encode seconds, token count.
"""
import json
import sys
import time

started = time.perf_counter()
kind, corpus, out, model_dir, onnx_file = sys.argv[1:6]
threads, batch, max_seq = (int(x) for x in sys.argv[6:9])
texts = [line.rstrip("\n") for line in open(corpus, encoding="utf-8")]

import numpy as np  # noqa: E402

if kind == "st":
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    model.max_seq_length = max_seq
    loaded = time.perf_counter()
    with torch.inference_mode():
        vectors = model.encode(texts, batch_size=batch, convert_to_numpy=True)
    tokens = sum(len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=max_seq)["input_ids"])
else:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_seq)
    loaded = time.perf_counter()
    encodings = tokenizer.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        width = max(len(encodings[i].ids) for i in idx)
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors[idx] = pooled
    tokens = sum(len(e.ids) for e in encodings)
done = time.perf_counter()
np.save(out, vectors.astype(np.float32))
print(json.dumps({"load_s": loaded - started, "encode_s": done - loaded, "tokens": tokens}))
