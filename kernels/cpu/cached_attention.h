// kernels/cpu/cached_attention.h — causal grouped-query attention of new query rows over a KV cache
// (inference: prefill and decode).  Letters as kernels/cpu/attention.h (NH, NKV, HD), and
//   P   positions per cache slot,  N  query rows, each with its slot seq[r] and position pos[r].
// Row r attends the keys of its slot at positions 0..pos[r] (its own key included: the caller has
// written the new rows' K and V, after RoPE, before the call).  Query head h reads key/value head
// h / (NH / NKV).  Scores are scaled by 1/sqrt(HD).
//
// Layouts:
//   q        row r at q + r * q_stride, NH heads of HD   (the q part of a packed qkv row)
//   k_cache  (slots, NKV, P, HD)   v_cache the same
//   out      (N, NH HD)
// Keys are visited in blocks of 64 with an online softmax (running max and sum), so no scratch
// and no allocation; each (row, head) is computed by one thread in key order: the result of a row
// depends only on its query and its slot's cache.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hibari::cpu {

struct CachedAttentionShape {
  size_t NH, NKV, HD, P;
};

// HD must be <= kCachedAttentionMaxHeadDim.
constexpr size_t kCachedAttentionMaxHeadDim = 512;

void cached_attention_forward(float* out, const float* q, size_t q_stride, const float* k_cache,
                              const float* v_cache, const int32_t* seq, const int32_t* pos,
                              size_t N, const CachedAttentionShape& shape);

}  // namespace hibari::cpu
