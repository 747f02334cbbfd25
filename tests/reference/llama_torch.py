#!/usr/bin/env python3
"""A plain PyTorch Llama, written from Hugging Face's LlamaForCausalLM, to check hibari against.

Needs only torch (Debian's python3-torch; run it with /usr/bin/python3).  Neither transformers nor
safetensors is used: the model below follows transformers' modeling_llama.py and
modeling_rope_utils.py, and a small safetensors writer sits at the top of the file.

Subcommands (each writes one safetensors fixture):

  grad  --config CONFIG --out FIXTURE --seed S --batch B --seq T [--std STD]
      Random weights (stored as F32 under Hugging Face's names), random inputs and targets
      (I32 (B, T); some targets are -100), then, in float64 computed from the float32-rounded
      weights: "loss" (F64 (1)) and "grad.<name>" (F64) for every parameter.

  train --config CONFIG --out FIXTURE --seed S --batch B --seq T [--steps N --micro M --lr LR
        --min-lr LR --warmup W --decay-steps D --max-norm X --weight-decay WD --std STD]
      N AdamW steps in float32 (torch.optim.AdamW, betas (0.9, 0.95), eps 1e-8, weight decay on
      matrices only), each over M micro-batches whose losses are weighted 1/M, global-norm
      gradient clipping with torch.nn.utils.clip_grad_norm_, and the warmup + cosine learning-rate
      schedule of optim/schedule.h.  Targets are a fixed function of the input token, so the loss
      falls.  Writes "init.<name>" (F32), "inputs" / "targets" (I32 (N, M, B, T)), "losses"
      (F64 (N): mean of the micro-batch losses), "grad_norms" (F64 (N): before clipping), "lrs"
      (F64 (N)), "clipped" (I32 (N): 1 where clipping scaled the gradient) and "final.<name>" (F32).

Targets are aligned with inputs (no shift inside the model): loss = cross_entropy(logits(inputs),
targets, ignore_index=-100), the mean over valid targets.
"""

import argparse
import json
import math
import struct

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


# ---------------------------------------------------------------------------------------------
# safetensors: uint64 LE header length, JSON header {name: {dtype, shape, data_offsets}}, data.
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int32: "I32",
    torch.int64: "I64",
}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (in insertion order) as a safetensors file."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        # numpy's tobytes() is little-endian on every platform torch runs on here.
        blob = t.numpy().tobytes()
        header[name] = {
            "dtype": _ST_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad the header with spaces to a multiple of 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


class Config:
    """The fields of a Hugging Face Llama config.json this model uses (transformers' defaults)."""

    def __init__(self, path):
        with open(path) as f:
            j = json.load(f)
        assert j.get("model_type", "llama") == "llama"
        self.vocab_size = j["vocab_size"]
        self.hidden_size = j["hidden_size"]
        self.intermediate_size = j["intermediate_size"]
        self.num_hidden_layers = j["num_hidden_layers"]
        self.num_attention_heads = j["num_attention_heads"]
        self.num_key_value_heads = j.get("num_key_value_heads") or self.num_attention_heads
        self.head_dim = j.get("head_dim") or self.hidden_size // self.num_attention_heads
        self.rms_norm_eps = j.get("rms_norm_eps", 1e-6)
        self.rope_theta = j.get("rope_theta", 10000.0)
        self.rope_scaling = j.get("rope_scaling")
        self.tie_word_embeddings = j.get("tie_word_embeddings", False)


# ---------------------------------------------------------------------------------------------
# Rotary embedding (transformers' modeling_rope_utils.py and LlamaRotaryEmbedding)
# ---------------------------------------------------------------------------------------------


def default_inv_freq(cfg):
    """_compute_default_rope_parameters: 1 / theta^(2i / HD), in float32."""
    dim = cfg.head_dim
    return 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama3_inv_freq(cfg):
    """_compute_llama3_parameters (Llama 3.1): keep high frequencies, divide low frequencies by
    `factor`, interpolate smoothly in between.  All in float32 tensors, as transformers does."""
    inv_freq = default_inv_freq(cfg)
    s = cfg.rope_scaling
    factor = s["factor"]
    low_freq_factor = s["low_freq_factor"]
    high_freq_factor = s["high_freq_factor"]
    old_context_len = s["original_max_position_embeddings"]

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: do nothing; wavelen > low_freq_wavelen: divide by factor
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # otherwise: interpolate between the two
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed_inv_freq = (
        (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    )
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama


def rope_inv_freq(cfg):
    s = cfg.rope_scaling
    if s is None:
        return default_inv_freq(cfg)
    rope_type = s.get("rope_type", s.get("type"))
    if rope_type == "default":
        return default_inv_freq(cfg)
    assert rope_type == "llama3", "only llama3 rope_scaling is implemented"
    return llama3_inv_freq(cfg)


def rope_cos_sin(cfg, T, dtype):
    """cos, sin (T, HD) for positions 0..T-1.  As LlamaRotaryEmbedding.forward: the angles and their
    cos / sin are computed in float32 whatever the model's dtype, then cast to it."""
    inv_freq = rope_inv_freq(cfg)  # (HD/2) float32
    positions = torch.arange(T, dtype=torch.int64).float()
    freqs = positions[:, None] * inv_freq[None, :]  # (T, HD/2), float32 products
    emb = torch.cat((freqs, freqs), dim=-1)  # channel i and i + HD/2 share an angle
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] over the two halves of the last dimension."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """q (B, NH, T, HD), k (B, NKV, T, HD); cos, sin (T, HD)."""
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    """LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)), computed in (at least) float32.
    transformers upcasts half-precision inputs to float32; a float64 input stays float64."""
    input_dtype = x.dtype
    h = x.to(torch.promote_types(input_dtype, torch.float32))
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def repeat_kv(x, n_rep):
    """(B, NKV, T, HD) -> (B, NKV * n_rep, T, HD): query head h reads kv head h // n_rep."""
    B, NKV, T, HD = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(B, NKV, n_rep, T, HD)
    return x.reshape(B, NKV * n_rep, T, HD)


def attention(cfg, p, prefix, x, cos, sin):
    B, T, _ = x.shape
    NH, NKV, HD = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    q = F.linear(x, p[prefix + "self_attn.q_proj.weight"]).view(B, T, NH, HD).transpose(1, 2)
    k = F.linear(x, p[prefix + "self_attn.k_proj.weight"]).view(B, T, NKV, HD).transpose(1, 2)
    v = F.linear(x, p[prefix + "self_attn.v_proj.weight"]).view(B, T, NKV, HD).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k = repeat_kv(k, NH // NKV)
    v = repeat_kv(v, NH // NKV)
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(HD)  # (B, NH, T, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    # transformers: softmax in float32 (upcast), here in the model's dtype when that is wider
    probs = F.softmax(scores, dim=-1, dtype=torch.promote_types(q.dtype, torch.float32))
    probs = probs.to(q.dtype)
    out = torch.matmul(probs, v)  # (B, NH, T, HD)
    out = out.transpose(1, 2).reshape(B, T, NH * HD)
    return F.linear(out, p[prefix + "self_attn.o_proj.weight"])


def mlp(p, prefix, x):
    gate = F.linear(x, p[prefix + "mlp.gate_proj.weight"])
    up = F.linear(x, p[prefix + "mlp.up_proj.weight"])
    return F.linear(F.silu(gate) * up, p[prefix + "mlp.down_proj.weight"])


def forward_logits(cfg, p, inputs):
    """Logits (B, T, V) of LlamaForCausalLM(inputs), in the parameters' dtype (at least float32).
    p maps Hugging Face names to tensors; inputs are int64 (B, T)."""
    B, T = inputs.shape
    h = F.embedding(inputs, p["model.embed_tokens.weight"])
    cos, sin = rope_cos_sin(cfg, T, h.dtype)
    eps = cfg.rms_norm_eps
    for l in range(cfg.num_hidden_layers):
        prefix = "model.layers.%d." % l
        # pre-norm residual blocks
        x = rms_norm(h, p[prefix + "input_layernorm.weight"], eps)
        h = h + attention(cfg, p, prefix, x, cos, sin)
        x = rms_norm(h, p[prefix + "post_attention_layernorm.weight"], eps)
        h = h + mlp(p, prefix, x)
    h = rms_norm(h, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg.tie_word_embeddings else p["lm_head.weight"]
    logits = F.linear(h, head)  # (B, T, V)
    # transformers takes the loss of float32 logits; float64 ones stay float64 here
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def forward_loss(cfg, p, inputs, targets):
    """Mean cross-entropy of LlamaForCausalLM(inputs) against targets (ignore_index -100).
    p maps Hugging Face names to tensors; inputs, targets are int64 (B, T)."""
    B, T = inputs.shape
    logits = forward_logits(cfg, p, inputs)
    return F.cross_entropy(
        logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=IGNORE_INDEX
    )


# ---------------------------------------------------------------------------------------------
# Parameters, data
# ---------------------------------------------------------------------------------------------


def parameter_shapes(cfg):
    """[(Hugging Face name, shape, is_matrix)] in hibari's layout order."""
    V, C, F_ = cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size
    Q = cfg.num_attention_heads * cfg.head_dim
    KV = cfg.num_key_value_heads * cfg.head_dim
    shapes = [("model.embed_tokens.weight", (V, C))]
    for l in range(cfg.num_hidden_layers):
        prefix = "model.layers.%d." % l
        shapes += [
            (prefix + "input_layernorm.weight", (C,)),
            (prefix + "self_attn.q_proj.weight", (Q, C)),
            (prefix + "self_attn.k_proj.weight", (KV, C)),
            (prefix + "self_attn.v_proj.weight", (KV, C)),
            (prefix + "self_attn.o_proj.weight", (C, Q)),
            (prefix + "post_attention_layernorm.weight", (C,)),
            (prefix + "mlp.gate_proj.weight", (F_, C)),
            (prefix + "mlp.up_proj.weight", (F_, C)),
            (prefix + "mlp.down_proj.weight", (C, F_)),
        ]
    shapes.append(("model.norm.weight", (C,)))
    if not cfg.tie_word_embeddings:
        shapes.append(("lm_head.weight", (V, C)))
    return [(name, shape, len(shape) == 2) for name, shape in shapes]


def random_parameters(cfg, gen, std):
    """float32 parameters: matrices normal(0, std); norm weights 1 + 0.1 normal, so that a norm
    weight's gradient is not the special case of a weight of one."""
    p = {}
    for name, shape, is_matrix in parameter_shapes(cfg):
        if is_matrix:
            p[name] = torch.randn(shape, generator=gen, dtype=torch.float32) * std
        else:
            p[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float32)
    return p


def random_batch(cfg, gen, shape, learnable=False, ignore_fraction=0.15):
    """Random token ids and targets of `shape` (int64); about ignore_fraction of the targets are
    -100, but every sequence keeps its first target.  Targets are random, or with `learnable` a
    fixed function of the input token (a bigram table a few steps of training can pick up)."""
    inputs = torch.randint(0, cfg.vocab_size, shape, generator=gen, dtype=torch.int64)
    if learnable:
        targets = (7 * inputs + 3) % cfg.vocab_size
    else:
        targets = torch.randint(0, cfg.vocab_size, shape, generator=gen, dtype=torch.int64)
    ignored = torch.rand(shape, generator=gen) < ignore_fraction
    ignored[..., 0] = False
    targets = targets.masked_fill(ignored, IGNORE_INDEX)
    return inputs, targets


# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------


def cmd_grad(args):
    cfg = Config(args.config)
    gen = torch.Generator().manual_seed(args.seed)
    p32 = random_parameters(cfg, gen, args.std)
    inputs, targets = random_batch(cfg, gen, (args.batch, args.seq))

    # The reference is float64 arithmetic on exactly the float32 weights hibari will load.
    p64 = {name: t.double().requires_grad_(True) for name, t in p32.items()}
    loss = forward_loss(cfg, p64, inputs, targets)
    loss.backward()

    out = {}
    for name, _, _ in parameter_shapes(cfg):
        out[name] = p32[name]
    out["inputs"] = inputs.to(torch.int32)
    out["targets"] = targets.to(torch.int32)
    out["loss"] = loss.detach().reshape(1)
    for name, _, _ in parameter_shapes(cfg):
        out["grad." + name] = p64[name].grad
    save_safetensors(args.out, out, {"mode": "grad", "seed": args.seed})
    print("loss %.17g" % loss.item())


def learning_rate(args, n):
    """optim/schedule.h, cosine decay: the learning rate of the n-th (1-based) optimizer step."""
    if args.warmup > 0 and n <= args.warmup:
        return args.lr * n / args.warmup
    if n > args.decay_steps:
        return args.min_lr
    span = args.decay_steps - args.warmup
    r = (n - args.warmup) / span if span > 0 else 1.0
    return args.min_lr + (args.lr - args.min_lr) * 0.5 * (1.0 + math.cos(math.pi * r))


def cmd_train(args):
    cfg = Config(args.config)
    gen = torch.Generator().manual_seed(args.seed)
    init = random_parameters(cfg, gen, args.std)
    shape = (args.steps, args.micro, args.batch, args.seq)
    inputs, targets = random_batch(cfg, gen, shape, learnable=True)

    names = [name for name, _, _ in parameter_shapes(cfg)]
    params = {name: init[name].clone().requires_grad_(True) for name in names}
    decay = [params[name] for name, _, is_matrix in parameter_shapes(cfg) if is_matrix]
    no_decay = [params[name] for name, _, is_matrix in parameter_shapes(cfg) if not is_matrix]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    all_params = [params[name] for name in names]

    losses, norms, lrs, clipped = [], [], [], []
    for step in range(args.steps):
        opt.zero_grad(set_to_none=False)
        for t in all_params:  # zero_grad leaves None before the first backward
            if t.grad is None:
                t.grad = torch.zeros_like(t)
        total = 0.0
        for micro in range(args.micro):
            loss = forward_loss(cfg, params, inputs[step, micro], targets[step, micro])
            # hibari's convention: grads = sum over micro-batches of d(loss_mb / n_micro)
            (loss / args.micro).backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(all_params, max_norm=args.max_norm).item()
        lr = learning_rate(args, step + 1)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(total / args.micro)
        norms.append(norm)
        lrs.append(lr)
        clipped.append(1 if args.max_norm / (norm + 1e-6) < 1.0 else 0)
        print("step %2d loss %.9g grad_norm %.6g lr %.6g%s"
              % (step + 1, losses[-1], norm, lr, " clipped" if clipped[-1] else ""))

    out = {}
    for name in names:
        out["init." + name] = init[name]
    out["inputs"] = inputs.to(torch.int32)
    out["targets"] = targets.to(torch.int32)
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    out["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    out["lrs"] = torch.tensor(lrs, dtype=torch.float64)
    out["clipped"] = torch.tensor(clipped, dtype=torch.int32)
    for name in names:
        out["final." + name] = params[name].detach()
    save_safetensors(args.out, out, {"mode": "train", "seed": args.seed})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--config", required=True, help="Hugging Face config.json")
        p.add_argument("--out", required=True, help="fixture to write (.safetensors)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch", type=int, default=2)
        p.add_argument("--seq", type=int, default=16)
        p.add_argument("--std", type=float, default=0.02, help="std of the matrix weights")

    g = sub.add_parser("grad", help="float64 loss and gradients of random weights")
    common(g)
    t = sub.add_parser("train", help="float32 AdamW steps with clipping and accumulation")
    common(t)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--micro", type=int, default=2, help="micro-batches per step")
    t.add_argument("--lr", type=float, default=1e-2, help="peak learning rate")
    t.add_argument("--min-lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=4)
    t.add_argument("--decay-steps", type=int, default=16)
    t.add_argument("--max-norm", type=float, default=1.0)
    t.add_argument("--weight-decay", type=float, default=0.1)

    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors; one thread keeps the fixture reproducible
    if args.command == "grad":
        cmd_grad(args)
    else:
        cmd_train(args)


if __name__ == "__main__":
    main()
