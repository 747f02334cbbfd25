#!/usr/bin/env python3
"""Hugging Face Llama model directories written and read without transformers or safetensors, to
check hibari's import/export against an independent implementation.

Needs only torch (run with /usr/bin/python3).  The model is tests/reference/llama_torch.py's.

Subcommands:

  make --config CONFIG --out DIR [--seed S --dtype f32|bf16|f16 --max-shard-bytes N --std STD]
      Random weights (llama_torch.random_parameters) saved as transformers' save_pretrained lays
      them out: DIR/config.json, and DIR/model.safetensors, or, when the tensors exceed
      max-shard-bytes, DIR/model-0000i-of-0000n.safetensors + model.safetensors.index.json
      (huggingface_hub's split_state_dict_into_shards: in parameter order, a new shard when the
      next tensor would overflow).  Each file's metadata is {"format": "pt"}.

  logits --model DIR --out FIXTURE [--seed S --batch B --seq T]
      Loads DIR (single file or index + shards; F32, BF16 or F16), draws random token ids and
      writes "inputs" (I32 (B, T)) and "logits" (F64 (B, T, V)), computed in float64 from the
      stored values.
"""

import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_torch  # noqa: E402

_TO_ST = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
_FROM_ST = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
            "F64": torch.float64}
_ITEM = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: move the bits as int16
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, t in tensors.items():
        blob = tensor_bytes(t)
        header[name] = {"dtype": _TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dtype = _FROM_ST[info["dtype"]]
        chunk = bytearray(data[b:e])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(chunk, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.zeros(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def read_model(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(model_dir, "model.safetensors"))
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    out = {}
    for shard in sorted(set(weight_map.values())):
        tensors = read_safetensors(os.path.join(model_dir, shard))
        for name, t in tensors.items():
            assert weight_map[name] == shard, name
            out[name] = t
    assert set(out) == set(weight_map)
    return out


def cmd_make(args):
    cfg = llama_torch.Config(args.config)
    gen = torch.Generator().manual_seed(args.seed)
    params = llama_torch.random_parameters(cfg, gen, args.std)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    params = {name: t.to(dtype) for name, t in params.items()}

    shards, current = [{}], 0
    for name, t in params.items():
        size = t.numel() * t.element_size()
        if shards[-1] and current + size > args.max_shard_bytes:
            shards.append({})
            current = 0
        shards[-1][name] = t
        current += size
    os.makedirs(args.out, exist_ok=True)
    with open(args.config) as f:
        config = json.load(f)
    config["torch_dtype"] = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[args.dtype]
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if len(shards) == 1:
        write_safetensors(os.path.join(args.out, "model.safetensors"), shards[0])
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        write_safetensors(os.path.join(args.out, name), shard)
        for tensor, t in shard.items():
            weight_map[tensor] = name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def cmd_logits(args):
    cfg = llama_torch.Config(os.path.join(args.model, "config.json"))
    params = {name: t.double() for name, t in read_model(args.model).items()}
    gen = torch.Generator().manual_seed(args.seed)
    inputs = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=gen,
                           dtype=torch.int64)
    with torch.no_grad():
        logits = llama_torch.forward_logits(cfg, params, inputs)
    llama_torch.save_safetensors(args.out, {"inputs": inputs.to(torch.int32), "logits": logits})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="random weights as a Hugging Face model directory")
    m.add_argument("--config", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    m.add_argument("--max-shard-bytes", type=int, default=5_000_000_000)
    m.add_argument("--std", type=float, default=0.02)
    lg = sub.add_parser("logits", help="float64 logits of a model directory on random tokens")
    lg.add_argument("--model", required=True)
    lg.add_argument("--out", required=True)
    lg.add_argument("--seed", type=int, default=0)
    lg.add_argument("--batch", type=int, default=2)
    lg.add_argument("--seq", type=int, default=8)
    args = parser.parse_args()
    {"make": cmd_make, "logits": cmd_logits}[args.command](args)


if __name__ == "__main__":
    main()
