// kernels/cpu/cached_attention.cpp — see cached_attention.h.
#include "kernels/cpu/cached_attention.h"

#include <algorithm>
#include <cmath>

namespace hibari::cpu {

namespace {
constexpr size_t kKeyBlock = 64;
}

void cached_attention_forward(float* out, const float* q_rows, size_t q_stride,
                              const float* k_cache, const float* v_cache, const int32_t* seq,
                              const int32_t* pos, size_t N, const CachedAttentionShape& sh) {
  const size_t NH = sh.NH, HD = sh.HD, group = sh.NH / sh.NKV;
  const float scale = 1.0f / std::sqrt(float(HD));
#pragma omp parallel for schedule(static)
  for (size_t item = 0; item < N * NH; ++item) {
    const size_t r = item / NH, h = item % NH, kvh = h / group;
    const float* q = q_rows + r * q_stride + h * HD;
    // (slot, head) block of the cache: P positions of HD
    const size_t head_offset = (size_t(seq[r]) * sh.NKV + kvh) * sh.P * HD;
    const float* k = k_cache + head_offset;
    const float* v = v_cache + head_offset;
    const size_t keys = size_t(pos[r]) + 1;
    float acc[kCachedAttentionMaxHeadDim];
    std::fill(acc, acc + HD, 0.0f);
    float max = -INFINITY, sum = 0.0f;
    float score[kKeyBlock];
    for (size_t s0 = 0; s0 < keys; s0 += kKeyBlock) {
      const size_t n = std::min(kKeyBlock, keys - s0);
      float block_max = -INFINITY;
      for (size_t j = 0; j < n; ++j) {
        const float* kr = k + (s0 + j) * HD;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (size_t d = 0; d < HD; ++d) dot += q[d] * kr[d];
        score[j] = dot * scale;
        block_max = std::max(block_max, score[j]);
      }
      // online softmax: rescale what was summed under the old max
      const float new_max = std::max(max, block_max);
      const float correction = std::exp(max - new_max);  // 0 on the first block
      sum *= correction;
#pragma omp simd
      for (size_t d = 0; d < HD; ++d) acc[d] *= correction;
      for (size_t j = 0; j < n; ++j) {
        const float p = std::exp(score[j] - new_max);
        sum += p;
        const float* vr = v + (s0 + j) * HD;
#pragma omp simd
        for (size_t d = 0; d < HD; ++d) acc[d] += p * vr[d];
      }
      max = new_max;
    }
    float* o = out + r * NH * HD + h * HD;
    const float inv = 1.0f / sum;
#pragma omp simd
    for (size_t d = 0; d < HD; ++d) o[d] = acc[d] * inv;
  }
}

}  // namespace hibari::cpu
