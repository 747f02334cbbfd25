#!/usr/bin/env python3
"""Greedy decoding of a Hugging Face Llama directory by a plain PyTorch model (llama_torch.py's
forward, float64, no cache: the whole sequence again for every new token), to check hibari's
KV-cached generation.

  greedy_torch.py --model DIR --prompts "1,2,3;4,5" --new N
prints one JSON list per prompt line: the N token ids generated.  Needs only torch
(/usr/bin/python3).
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_llama  # noqa: E402
import llama_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--new", type=int, required=True)
    args = ap.parse_args()
    cfg = llama_torch.Config(os.path.join(args.model, "config.json"))
    params = {name: t.double() for name, t in hf_llama.read_model(args.model).items()}
    for prompt in args.prompts.split(";"):
        seq = [int(x) for x in prompt.split(",")]
        out = []
        with torch.no_grad():
            for _ in range(args.new):
                logits = llama_torch.forward_logits(cfg, params, torch.tensor([seq]))
                nxt = int(logits[0, -1].argmax())
                out.append(nxt)
                seq.append(nxt)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
