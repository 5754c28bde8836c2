#!/usr/bin/env python3
"""Export the transformer of a sentence-transformers folder to ONNX (last hidden state).

Usage: export_onnx.py MODEL_DIR OUT.onnx
"""
import sys

import torch
from transformers import AutoModel



class LastHiddenState(torch.nn.Module):
    """Calls the transformer with keyword arguments and returns its last hidden state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


model_dir, out = sys.argv[1:3]
model = LastHiddenState(AutoModel.from_pretrained(model_dir).eval())
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
