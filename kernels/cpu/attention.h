// kernels/cpu/attention.h — causal grouped-query attention, FlashAttention-style on the CPU.
// Dimension letters: B batch, T sequence, NH query heads, NKV key/value heads, HD head size,
// S = (NH + 2 NKV) HD the packed qkv row.  Query head h reads key/value head h / (NH / NKV), as
// Hugging Face's repeat_kv does.  Scores are scaled by 1/sqrt(HD).
//
// Layouts (token-major, as the projections produce them):
//   qkv  (B*T, S):      q = [0, NH HD), k = [NH HD, (NH+NKV) HD), v = the rest; rope already
//   applied out  (B*T, NH*HD) lse  (B, NH, T):    log-sum-exp of each query row's scores, saved for
//   backward
//
// Forward walks 64-query tiles over 64-key tiles with an online softmax (running max and sum),
// so no T x T score matrix exists, only a 64 x 64 tile per thread.  Backward recomputes each tile's
// probabilities from lse (FlashAttention-2): dV += P^T dO, dS = P (dP - D), dQ += dS K, dK += dS^T
// Q, with D = rowsum(dO * O).
#pragma once

#include <cstddef>

namespace hibari::cpu {

struct AttentionShape {
  size_t B, T, NH, NKV, HD;
};

void attention_forward(float* out, float* lse, const float* qkv, const AttentionShape& shape);
// dqkv (B*T, S) overwritten (=).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, const AttentionShape& shape);

}  // namespace hibari::cpu
