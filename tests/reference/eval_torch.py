#!/usr/bin/env python3
"""Reference log-likelihoods for hibari eval, from the plain PyTorch Llama in llama_torch.py.

  eval_torch.py loglikelihood --model DIR --requests REQUESTS.json --out RESULTS.json
      DIR holds config.json and model.safetensors (F32, Hugging Face names, as hibari's
      save_hf_weights writes them).  REQUESTS.json is [{"context": [ids], "continuation": [ids]}].
      For each request, in float64 arithmetic on the float32 weights: the sum over continuation
      tokens of log softmax(logits)[token] given everything before it, and whether every
      continuation token is the argmax of its position.  Writes [{"logprob": x, "greedy": b}].

  eval_torch.py bench --model DIR --requests REQUESTS.json --threads N [--batch B] [--repeat R]
      Times the same scoring in float32 (no autograd), as lm-evaluation-harness's Hugging Face
      path does it: requests longest first, B per forward, right-padded to the batch's longest,
      log_softmax over every position, the continuation's entries gathered.  Best of R runs after
      a warm-up.  Prints "torch_tokens_per_s X": tokens of context + continuation - 1 (the
      positions a forward computes, padding not counted) per second.

Needs only torch (run with /usr/bin/python3).
"""

import argparse
import json
import os
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_torch  # noqa: E402

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path):
    """{name: tensor} of a safetensors file (float dtypes only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out


def load_model(model_dir, dtype):
    cfg = llama_torch.Config(os.path.join(model_dir, "config.json"))
    params = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    p = {name: t.to(dtype) for name, t in params.items()}
    return cfg, p


def score(cfg, p, context, continuation):
    tokens = context + continuation
    inputs = torch.tensor([tokens[:-1]], dtype=torch.int64)
    logits = llama_torch.forward_logits(cfg, p, inputs)[0]  # (T, V)
    logp = torch.log_softmax(logits, dim=-1)
    n = len(continuation)
    positions = torch.arange(len(tokens) - 1 - n, len(tokens) - 1)
    targets = torch.tensor(continuation, dtype=torch.int64)
    total = logp[positions, targets].sum().item()
    greedy = bool((logits[positions].argmax(dim=-1) == targets).all().item())
    return total, greedy


def cmd_loglikelihood(args):
    cfg, p = load_model(args.model, torch.float64)
    with open(args.requests) as f:
        requests = json.load(f)
    results = []
    with torch.no_grad():
        for r in requests:
            logprob, greedy = score(cfg, p, r["context"], r["continuation"])
            results.append({"logprob": logprob, "greedy": greedy})
    with open(args.out, "w") as f:
        json.dump(results, f)


def score_batch(cfg, p, requests):
    """Log-likelihoods of a batch of requests in one right-padded forward."""
    seqs = [r["context"] + r["continuation"] for r in requests]
    T = max(len(s) for s in seqs) - 1
    inputs = torch.zeros((len(seqs), T), dtype=torch.int64)
    for b, s in enumerate(seqs):
        inputs[b, : len(s) - 1] = torch.tensor(s[:-1], dtype=torch.int64)
    logp = torch.log_softmax(llama_torch.forward_logits(cfg, p, inputs), dim=-1)
    out = []
    for b, (s, r) in enumerate(zip(seqs, requests)):
        n = len(r["continuation"])
        positions = torch.arange(len(s) - 1 - n, len(s) - 1)
        targets = torch.tensor(r["continuation"], dtype=torch.int64)
        out.append(logp[b, positions, targets].sum().item())
    return out


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    cfg, p = load_model(args.model, torch.float32)
    with open(args.requests) as f:
        requests = json.load(f)
    requests.sort(key=lambda r: -(len(r["context"]) + len(r["continuation"])))
    tokens = sum(len(r["context"]) + len(r["continuation"]) - 1 for r in requests)
    best = None
    with torch.no_grad():
        for rep in range(args.repeat + 1):
            start = time.perf_counter()
            for i in range(0, len(requests), args.batch):
                score_batch(cfg, p, requests[i : i + args.batch])
            elapsed = time.perf_counter() - start
            if rep > 0:  # the first is the warm-up
                best = elapsed if best is None else min(best, elapsed)
    print("torch_tokens_per_s %.1f" % (tokens / best))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ll = sub.add_parser("loglikelihood", help="float64 log-likelihoods of requests")
    ll.add_argument("--model", required=True)
    ll.add_argument("--requests", required=True)
    ll.add_argument("--out", required=True)
    b = sub.add_parser("bench", help="float32 scoring throughput")
    b.add_argument("--model", required=True)
    b.add_argument("--requests", required=True)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.command == "loglikelihood":
        torch.set_num_threads(1)
        cmd_loglikelihood(args)
    else:
        cmd_bench(args)


if __name__ == "__main__":
    main()
