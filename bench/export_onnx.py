#!/usr/bin/env python3
"""Export the transformer of a sentence-transformers folder to ONNX (last hidden state).

Usage: export_onnx.py MODEL_DIR OUT.onnx
"""
import sys

import torch
from transformers import AutoModel

model_dir, out = sys.argv[1:3]
model = AutoModel.from_pretrained(model_dir).eval()
ids = torch.ones((2, 16), dtype=torch.int64)
with torch.inference_mode():
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        out,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "sequence"}
                      for name in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
print(f"exported {out}")
