#!/usr/bin/env python3
"""Write a tiny, randomly initialised BERT sentence-transformers folder for the memory check.

Usage: tiny_model.py BASE_MODEL_DIR OUT_DIR

The folder has the base model's tokenizer and pipeline files with a 1-layer, 32-wide encoder,
so habitlens streams 200,000 rows in seconds: what is measured is the memory of the streaming
pipeline (reading, batching, writing), which does not depend on the encoder's size.
"""
import os
import shutil
import sys

import torch
from transformers import BertConfig, BertModel

base, out = sys.argv[1:3]
torch.manual_seed(0)
config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=512, hidden_act="gelu")
BertModel(config).save_pretrained(out, safe_serialization=True)
for name in ["tokenizer.json", "modules.json", "sentence_bert_config.json"]:
    shutil.copy(os.path.join(base, name), os.path.join(out, name))
os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
    f.write('{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}\n')
print(f"wrote {out}")
