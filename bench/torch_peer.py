#!/usr/bin/python3
"""bench/torch_peer.py -- the PyTorch side of bench/run.sh (bench/train_step_bench.cpp is hibari's).

The same Llama training step written the way a PyTorch user would write it: an nn.Module with
Hugging Face-style RMSNorm, rotary embeddings (rotate_half), GQA through repeat_kv, causal
attention as matmul + additive mask + softmax (torch 1.13 has no scaled_dot_product_attention),
F.cross_entropy over the full logits, clip_grad_norm_ and torch.optim.AdamW with its defaults.

A step: optimizer.zero_grad(), forward + backward over B x T random tokens (targets = inputs
shifted by one), clip_grad_norm_(1.0), optimizer.step().  After --warmup steps, --steps steps are
timed one by one and the median gives tokens/s.  Prints one line of JSON with the same keys as
train_step_bench.  Run it with Debian's interpreter (/usr/bin/python3), where torch 1.13 lives.
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    #     vocab  hidden layers heads kv  inter  seq  batch
    "A": (32000, 512, 8, 8, 4, 1536, 512, 8),
    "B": (32000, 256, 4, 4, 2, 768, 256, 8),
}
DEFAULT_STEPS = {"A": 5, "B": 10}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


class RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states


class RotaryEmbedding(nn.Module):
    def __init__(self, dim, max_position_embeddings, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        t = torch.arange(max_position_embeddings).float()
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, seq_len):
        return self.cos_cached[:seq_len], self.sin_cached[:seq_len]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    # cos, sin: (T, HD) broadcast over (B, heads, T, HD)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(
        batch, num_key_value_heads, n_rep, slen, head_dim
    )
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_heads = c["heads"]
        self.num_key_value_heads = c["kv_heads"]
        self.head_dim = c["hidden"] // c["heads"]
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.q_proj = nn.Linear(c["hidden"], self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c["hidden"], self.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c["hidden"], self.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, c["hidden"], bias=False)

    def forward(self, x, cos, sin, mask):
        bsz, q_len, _ = x.shape
        q = self.q_proj(x).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = repeat_kv(k, self.num_key_value_groups)
        v = repeat_kv(v, self.num_key_value_groups)
        attn_weights = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        attn_weights = attn_weights + mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
        attn_output = torch.matmul(attn_weights, v)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(bsz, q_len, self.num_heads * self.head_dim)
        return self.o_proj(attn_output)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.up_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.down_proj = nn.Linear(c["intermediate"], c["hidden"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"], c["rms_norm_eps"])
        self.lm_head = nn.Linear(c["hidden"], c["vocab"], bias=False)  # untied
        self.rotary_emb = RotaryEmbedding(c["hidden"] // c["heads"], c["seq"], c["rope_theta"])
        T = c["seq"]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("causal_mask", mask[None, None], persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # Hugging Face's LlamaPreTrainedModel._init_weights
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        cos, sin = self.rotary_emb(T)
        mask = self.causal_mask[:, :, :T, :T]
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


def train_flops_per_token(c):
    # hibari::llama_train_flops_per_token: 6 * matmul params (head included) + 6 L T Q
    C, F_, V, L, T = c["hidden"], c["intermediate"], c["vocab"], c["layers"], c["seq"]
    HD = C // c["heads"]
    Q, KV = c["heads"] * HD, c["kv_heads"] * HD
    per_layer = (Q + 2 * KV) * C + C * Q + 3 * F_ * C
    return 6.0 * (L * per_layer + V * C) + 6.0 * L * T * Q


def measure_mm_flops(n=2048, repeats=3):
    a = torch.full((n, n), 0.5)
    b = torch.full((n, n), 0.25)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(PRESETS), default="B")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--sgemm-n", type=int, default=2048)
    for flag in ("vocab", "hidden", "layers", "heads", "kv-heads", "intermediate", "seq", "batch"):
        p.add_argument("--" + flag, type=int, default=None)
    args = p.parse_args()

    keys = ("vocab", "hidden", "layers", "heads", "kv_heads", "intermediate", "seq", "batch")
    c = dict(zip(keys, PRESETS[args.config]))
    name = args.config
    for k in keys:
        v = getattr(args, k)
        if v is not None:
            c[k], name = v, "custom"
    c["rope_theta"] = 10000.0
    c["rms_norm_eps"] = 1e-5
    steps = args.steps if args.steps is not None else DEFAULT_STEPS.get(name, 10)
    if steps < 1:
        p.error("--steps must be at least 1")

    torch.set_num_threads(args.threads)
    baseline_rss = peak_rss_mb()  # the interpreter and torch itself, before the model exists
    torch.manual_seed(args.seed)
    model = Llama(c)
    model.train()
    decay = [p_ for p_ in model.parameters() if p_.dim() >= 2]
    no_decay = [p_ for p_ in model.parameters() if p_.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4,
        betas=(0.9, 0.95),
        eps=1e-8,
    )

    B, T, V = c["batch"], c["seq"], c["vocab"]
    total_steps = args.warmup + steps
    tokens = torch.randint(0, V, (total_steps, B, T + 1))
    times, losses, norm = [], [], 0.0
    for s in range(total_steps):
        inputs, targets = tokens[s, :, :-1], tokens[s, :, 1:]
        t0 = time.perf_counter()
        optimizer.zero_grad()
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        sec = time.perf_counter() - t0
        losses.append(loss.item())
        del logits, loss
        if s >= args.warmup:
            times.append(sec)
    rss = peak_rss_mb()  # before the sgemm measurement allocates its matrices

    step_s = statistics.median(times)
    tokens_per_s = B * T / step_s
    flops_per_token = train_flops_per_token(c)
    mm = measure_mm_flops(args.sgemm_n)
    result = {
        "impl": "torch",
        "config": name,
        **{k: c[k] for k in keys[:6]},
        "seq": T,
        "batch": B,
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "steps": steps,
        "parameters": sum(p_.numel() for p_ in model.parameters()),
        "tokens_per_s": tokens_per_s,
        "step_s_median": step_s,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "peak_rss_mb": rss,
        "baseline_rss_mb": baseline_rss,
        "sgemm_gflops": mm / 1e9,
        "flops_per_token": flops_per_token,
        "mfu": tokens_per_s * flops_per_token / mm,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "grad_norm_last": float(norm),
        "torch_version": torch.__version__,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
