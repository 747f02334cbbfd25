#!/usr/bin/python3
"""bench/generate_torch.py -- the PyTorch side of bench/generate_run.sh (generate_bench.cpp is
hibari's).

The same random fp32 Llama written the way a PyTorch user would (Hugging Face-style RMSNorm,
rotate_half rotary embeddings, GQA via repeat_kv, attention as matmul + mask + softmax), with a KV
cache: a plain greedy loop that feeds past keys/values (past_key_values style) back each step.
Timed: prefill of BATCH x PROMPT tokens, decode of NEW - 1 further tokens per sequence, and
scoring (log-softmax of every position of BATCH x (PROMPT + NEW) tokens).  Best of 3 runs after a
warm-up.  Prints one JSON line with generate_bench's keys.  Run with /usr/bin/python3 (torch 1.13).
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

PRESETS = {  # vocab hidden layers heads kv inter
    "A": (32000, 512, 8, 8, 4, 1536),
    "B": (32000, 256, 4, 4, 2, 768),
}


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model:
    def __init__(self, preset, max_pos):
        V, C, L, NH, NKV, F_ = PRESETS[preset]
        g = torch.Generator().manual_seed(1)
        w = lambda *s: torch.randn(*s, generator=g) * 0.02
        self.V, self.C, self.L, self.NH, self.NKV, self.HD = V, C, L, NH, NKV, C // NH
        self.embed = w(V, C)
        self.layers = [dict(q=w(NH * self.HD, C), k=w(NKV * self.HD, C), v=w(NKV * self.HD, C),
                            o=w(C, NH * self.HD), gate=w(F_, C), up=w(F_, C), down=w(C, F_),
                            n1=torch.ones(C), n2=torch.ones(C)) for _ in range(L)]
        self.norm = torch.ones(C)
        self.head = w(V, C)
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.HD, 2).float() / self.HD))
        freqs = torch.outer(torch.arange(max_pos).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    @staticmethod
    def rms(x, wt):
        return wt * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

    def forward(self, ids, past, start, last_only):
        """ids (B, T) at positions start..start+T-1; past: list of (k, v) per layer or None."""
        B, T = ids.shape
        x = self.embed[ids]
        cos = self.cos[start:start + T][None, None]
        sin = self.sin[start:start + T][None, None]
        new_past = []
        for l, p in enumerate(self.layers):
            h = self.rms(x, p["n1"])
            q = (h @ p["q"].T).view(B, T, self.NH, self.HD).transpose(1, 2)
            k = (h @ p["k"].T).view(B, T, self.NKV, self.HD).transpose(1, 2)
            v = (h @ p["v"].T).view(B, T, self.NKV, self.HD).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if past is not None:
                k = torch.cat((past[l][0], k), dim=2)
                v = torch.cat((past[l][1], v), dim=2)
            new_past.append((k, v))
            rep = self.NH // self.NKV
            kr = k.repeat_interleave(rep, dim=1)
            vr = v.repeat_interleave(rep, dim=1)
            att = (q @ kr.transpose(-1, -2)) / (self.HD ** 0.5)
            S = kr.shape[2]
            if T > 1:
                mask = torch.full((T, S), float("-inf")).triu(S - T + 1)
                att = att + mask
            att = att.softmax(-1) @ vr
            x = x + att.transpose(1, 2).reshape(B, T, -1) @ p["o"].T
            h = self.rms(x, p["n2"])
            x = x + (F.silu(h @ p["gate"].T) * (h @ p["up"].T)) @ p["down"].T
        x = self.rms(x, self.norm)
        if last_only:
            x = x[:, -1]
        return x @ self.head.T, new_past


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("batch", type=int)
    ap.add_argument("prompt", type=int)
    ap.add_argument("new", type=int)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = Model(a.preset, a.prompt + a.new)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, m.V, (a.batch, a.prompt + a.new), generator=g)
    prompts = ids[:, :a.prompt]
    best = {"prefill": 1e30, "decode": 1e30, "score": 1e30}
    with torch.no_grad():
        for rep in range(4):
            t0 = time.perf_counter()
            logits, past = m.forward(prompts, None, 0, True)
            t1 = time.perf_counter()
            tok = logits.argmax(-1, keepdim=True)
            for i in range(a.new - 1):
                logits, past = m.forward(tok, past, a.prompt + i, True)
                tok = logits.argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            logits, _ = m.forward(ids, None, 0, False)
            lp = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, ids[:, 1:, None])
            t3 = time.perf_counter()
            if rep > 0:  # the first is the warm-up
                best["prefill"] = min(best["prefill"], t1 - t0)
                best["decode"] = min(best["decode"], t2 - t1)
                best["score"] = min(best["score"], t3 - t2)
    print(json.dumps({
        "side": "torch " + torch.__version__, "batch": a.batch, "prompt": a.prompt, "new": a.new,
        "threads": torch.get_num_threads(),
        "decode_tokens_per_s": round(a.batch * (a.new - 1) / best["decode"], 1),
        "prefill_tokens_per_s": round(a.batch * a.prompt / best["prefill"], 1),
        "score_tokens_per_s": round(a.batch * (a.prompt + a.new) / best["score"], 1)}))


if __name__ == "__main__":
    main()
