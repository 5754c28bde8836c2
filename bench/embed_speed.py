#!/usr/bin/env python3
"""Embedding speed and memory: habitlens against sentence-transformers (PyTorch) and ONNX Runtime.

Run through bench/embed_speed.sh, which builds habitlens and prepares the Python environment.
Each engine runs as its own process on the same corpus with the same thread count, batch size
and max_seq_length; wall time and peak resident memory are measured per process (whole
process: start-up and model load included). Prints a table, the ratios, agreement between the
three (cosine per text) and the share of the machine's float32 peak habitlens reaches.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env=None):
    """Runs a command; returns (wall seconds, peak RSS in MB, stdout).

    Peak memory is the process's VmHWM, polled from /proc every 20 ms: unlike the rusage
    maximum, it starts afresh at exec, so it does not include this Python parent's memory.
    """
    import tempfile

    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, env=env)
        peak_kb = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}")
        out.seek(0)
        return wall, peak_kb / 1024, out.read().decode()


def model_flops(config, lengths):
    """Forward FLOPs (multiply-add = 2) of a BERT encoder over texts of the given token counts."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    dense = 2 * (4 * h * h + 2 * h * i)  # Q, K, V, output, and the two feed-forward layers
    return sum(layers * (n * dense + 4 * n * n * h) for n in lengths)


def theoretical_peak(threads):
    """float32 FLOP/s: cores x clock x 2 FMA pipes x vector lanes x 2."""
    info = open("/proc/cpuinfo").read()
    mhz = max(float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", info))
    flags = set(re.search(r"flags\s*:(.*)", info).group(1).split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    return threads * mhz * 1e6 * 2 * lanes * 2, f"{threads} cores x {mhz:.0f} MHz x 2 FMA x {lanes} lanes"


SGEMM = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; best = max(best, 2 * 2048**3 / (time.perf_counter() - t))
print(best)
"""


def measured_sgemm_peak(threads):
    """PyTorch's best rate on a large float32 matrix product, in a separate process."""
    return float(subprocess.check_output([sys.executable, "-c", SGEMM, str(threads)]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--habitlens", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-seq", type=int, default=256)
    p.add_argument("--memory-rows", default="", help="comma-separated row counts for the memory check")
    p.add_argument("--memory-model", action="append", default=[],
                   help="NAME=DIR of a model for the memory check (repeatable); the default model if none")
    args = p.parse_args()

    texts = [line.rstrip("\n") for line in open(args.corpus, encoding="utf-8")]
    n = len(texts)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    results = {}

    out = os.path.join(args.work, "habitlens.npy")
    wall, rss, _ = run([args.habitlens, "embed", args.corpus, "-o", out, "--quiet",
                        "--threads", str(args.threads), "--batch-size", str(args.batch),
                        "--model", args.model_dir], env)
    results["habitlens"] = dict(wall=wall, rss=rss, vectors=np.load(out))
    for kind, name in [("st", "sentence-transformers"), ("ort", "onnxruntime")]:
        out = os.path.join(args.work, f"{kind}.npy")
        wall, rss, line = run([sys.executable, os.path.join(HERE, "embed_peer.py"), kind, args.corpus, out,
                               args.model_dir, args.onnx, str(args.threads), str(args.batch),
                               str(args.max_seq)], env)
        results[name] = dict(wall=wall, rss=rss, vectors=np.load(out), **json.loads(line))

    print(f"\n{n} texts, {args.threads} threads, batch {args.batch}, max_seq_length {args.max_seq}")
    print(f"{'engine':24} {'wall s':>8} {'texts/s':>8} {'encode s':>9} {'peak MB':>8}")
    for name, r in results.items():
        enc = f"{r['encode_s']:9.1f}" if "encode_s" in r else f"{'-':>9}"
        print(f"{name:24} {r['wall']:8.1f} {n / r['wall']:8.1f} {enc} {r['rss']:8.0f}")
    hl = results["habitlens"]["wall"]
    for name in ["sentence-transformers", "onnxruntime"]:
        print(f"habitlens speed-up over {name}: {results[name]['wall'] / hl:.2f}x "
              f"(memory: {results[name]['rss'] / results['habitlens']['rss']:.1f}x less)")

    def cos(a, b):
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            c = cos(results[a]["vectors"], results[b]["vectors"])
            print(f"agreement {a} vs {b}: min cosine {c.min():.6f} ({(c >= 0.999).mean() * 100:.1f}% >= 0.999)")

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(args.max_seq)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    config = json.load(open(os.path.join(args.model_dir, "config.json")))
    flops = model_flops(config, lengths)
    peak, how = theoretical_peak(args.threads)
    sgemm = measured_sgemm_peak(args.threads)
    rate = flops / hl
    print(f"\n{sum(lengths)} tokens, {flops / 1e12:.2f} TFLOP; habitlens {rate / 1e9:.1f} GFLOP/s (whole process) = "
          f"{rate / peak * 100:.0f}% of theoretical peak {peak / 1e9:.0f} GFLOP/s ({how}), "
          f"{rate / sgemm * 100:.0f}% of PyTorch's large-SGEMM rate {sgemm / 1e9:.0f} GFLOP/s")

    if args.memory_rows:
        print("\nmemory: peak resident memory on the corpus repeated (embed to .npy, analyze)")
        models = [m.split("=", 1) for m in args.memory_model] or [["all-MiniLM-L6-v2", args.model_dir]]
        for name, model in models:
            for rows in (int(x) for x in args.memory_rows.split(",")):
                path = os.path.join(args.work, f"repeat-{rows}.txt")
                with open(path, "w", encoding="utf-8") as f:
                    for k in range(rows):
                        f.write(texts[k % n] + "\n")
                out = os.path.join(args.work, f"repeat-{rows}.npy")
                common = ["--quiet", "--threads", str(args.threads), "--model", model]
                wall, rss, _ = run([args.habitlens, "embed", path, "-o", out] + common, env)
                awall, arss, _ = run([args.habitlens, "analyze", path, "--output-dir",
                                      os.path.join(args.work, "analyze")] + common, env)
                print(f"{name:18} {rows:>8} rows: embed peak {rss:.0f} MB ({wall:.0f} s), "
                      f"analyze peak {arss:.0f} MB ({awall:.0f} s)")
                os.remove(out)
                os.remove(path)


if __name__ == "__main__":
    main()
