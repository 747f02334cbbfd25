#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/vector_math.h"

namespace hibari::cpu {

namespace {

constexpr size_t tile = 64;  // queries and keys per tile: a 16 KiB score tile stays in L1/L2

// Per-thread scratch, grown on the first step and reused after: no allocation in steady state.
struct AttentionScratch {
  std::vector<float> scores;  // (tile, tile) S, then P
  std::vector<float> dprobs;  // (tile, tile) dP, then dS
  std::vector<float> acc;     // (tile, HD) forward output accumulator
  std::vector<float> dk, dv;  // (tile, HD) backward key/value tile gradients
  std::vector<float> delta;   // (group heads, T) D = rowsum(dO * O)
  void reserve(size_t HD, size_t delta_size) {
    if (scores.size() < tile * tile) scores.resize(tile * tile);
    if (dprobs.size() < tile * tile) dprobs.resize(tile * tile);
    if (acc.size() < tile * HD) acc.resize(tile * HD);
    if (dk.size() < tile * HD) dk.resize(tile * HD);
    if (dv.size() < tile * HD) dv.resize(tile * HD);
    if (delta.size() < delta_size) delta.resize(delta_size);
  }
};

AttentionScratch& thread_scratch() {
  thread_local AttentionScratch scratch;
  return scratch;
}

// Every thread of the team sizes its scratch up front: with dynamic scheduling, a thread that got
// no task in one call may get one in the next, and must not allocate then.
void reserve_all_threads(size_t HD, size_t delta_size) {
#pragma omp parallel
  thread_scratch().reserve(HD, delta_size);
}

// Key positions beyond the query's are masked: sets them to -inf in a diagonal tile.
void mask_causal(float* s, size_t bq, size_t bk, size_t q0, size_t k0) {
  for (size_t r = 0; r < bq; ++r)
    for (size_t c = 0; c < bk; ++c)
      if (k0 + c > q0 + r) s[r * tile + c] = -std::numeric_limits<float>::infinity();
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, const AttentionShape& sh) {
  const size_t S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD, HD = sh.HD;
  const size_t group = sh.NH / sh.NKV;
  const size_t q_tiles = (sh.T + tile - 1) / tile;
  const float scale = 1.0f / std::sqrt(float(HD));
  const size_t tasks = sh.B * sh.NH * q_tiles;
  reserve_all_threads(HD, 0);
#pragma omp parallel for schedule(dynamic)
  for (size_t task = 0; task < tasks; ++task) {
    // Larger query tiles cost more (more key tiles); start them first for better balance.
    size_t qt = q_tiles - 1 - task % q_tiles;
    size_t h = (task / q_tiles) % sh.NH, b = task / (q_tiles * sh.NH);
    size_t kvh = h / group;
    AttentionScratch& w = thread_scratch();
    size_t q0 = qt * tile, bq = std::min(tile, sh.T - q0);
    const float* q = qkv + (b * sh.T + q0) * S + h * HD;
    float row_max[tile], row_sum[tile];
    std::fill(row_max, row_max + bq, -std::numeric_limits<float>::infinity());
    std::fill(row_sum, row_sum + bq, 0.0f);
    std::fill(w.acc.begin(), w.acc.begin() + long(bq * HD), 0.0f);
    for (size_t k0 = 0; k0 <= q0 + bq - 1; k0 += tile) {
      size_t bk = std::min(tile, sh.T - k0);
      const float* k = qkv + (b * sh.T + k0) * S + (sh.NH + kvh) * HD;
      const float* v = k + sh.NKV * HD;
      float* s = w.scores.data();
      gemm(s, q, k, bq, bk, HD, {.transpose_b = true, .lda = S, .ldb = S, .ldc = tile});
      if (k0 + bk > q0) mask_causal(s, bq, bk, q0, k0);
      for (size_t r = 0; r < bq; ++r) {
        float* sr = s + r * tile;
        float tile_max = -std::numeric_limits<float>::infinity();
        for (size_t c = 0; c < bk; ++c) tile_max = std::max(tile_max, sr[c] * scale);
        float new_max = std::max(row_max[r], tile_max);
        float correction = exp_approx(row_max[r] - new_max);  // exp(-inf) = 0 on the first tile
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t c = 0; c < bk; ++c) {
          float p = exp_approx(sr[c] * scale - new_max);
          sr[c] = p;
          sum += p;
        }
        row_sum[r] = row_sum[r] * correction + sum;
        row_max[r] = new_max;
        float* a = w.acc.data() + r * HD;
#pragma omp simd
        for (size_t d = 0; d < HD; ++d) a[d] *= correction;
      }
      gemm(w.acc.data(), s, v, bq, HD, bk, {.accumulate = true, .lda = tile, .ldb = S, .ldc = HD});
    }
    for (size_t r = 0; r < bq; ++r) {
      float inv = 1.0f / row_sum[r];
      float* o = out + (b * sh.T + q0 + r) * O + h * HD;
      const float* a = w.acc.data() + r * HD;
#pragma omp simd
      for (size_t d = 0; d < HD; ++d) o[d] = a[d] * inv;
      lse[(b * sh.NH + h) * sh.T + q0 + r] = row_max[r] + std::log(row_sum[r]);
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, const AttentionShape& sh) {
  const size_t S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD, HD = sh.HD;
  const size_t group = sh.NH / sh.NKV;
  const float scale = 1.0f / std::sqrt(float(HD));
  reserve_all_threads(HD, group * sh.T);
  // One task per (batch, kv head): it owns dK and dV of that head and dQ of the heads it serves.
#pragma omp parallel for schedule(dynamic)
  for (size_t task = 0; task < sh.B * sh.NKV; ++task) {
    size_t b = task / sh.NKV, kvh = task % sh.NKV;
    AttentionScratch& w = thread_scratch();
    // D[h, t] = dot(dO, O) per query row; zero this task's dQ columns.
    for (size_t hg = 0; hg < group; ++hg) {
      size_t h = kvh * group + hg;
      for (size_t t = 0; t < sh.T; ++t) {
        const float* o = out + (b * sh.T + t) * O + h * HD;
        const float* dy = dout + (b * sh.T + t) * O + h * HD;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (size_t d = 0; d < HD; ++d) dot += o[d] * dy[d];
        w.delta[hg * sh.T + t] = dot;
        std::memset(dqkv + (b * sh.T + t) * S + h * HD, 0, HD * sizeof(float));
      }
    }
    for (size_t k0 = 0; k0 < sh.T; k0 += tile) {
      size_t bk = std::min(tile, sh.T - k0);
      const float* k = qkv + (b * sh.T + k0) * S + (sh.NH + kvh) * HD;
      const float* v = k + sh.NKV * HD;
      std::fill(w.dk.begin(), w.dk.begin() + long(bk * HD), 0.0f);
      std::fill(w.dv.begin(), w.dv.begin() + long(bk * HD), 0.0f);
      for (size_t hg = 0; hg < group; ++hg) {
        size_t h = kvh * group + hg;
        // Query tiles at or after this key tile (earlier ones see none of these keys).
        for (size_t q0 = k0 / tile * tile; q0 < sh.T; q0 += tile) {
          size_t bq = std::min(tile, sh.T - q0);
          const float* q = qkv + (b * sh.T + q0) * S + h * HD;
          const float* dy = dout + (b * sh.T + q0) * O + h * HD;
          float* dq = dqkv + (b * sh.T + q0) * S + h * HD;
          const float* row_lse = lse + (b * sh.NH + h) * sh.T + q0;
          const float* row_delta = w.delta.data() + hg * sh.T + q0;
          float* p = w.scores.data();
          float* ds = w.dprobs.data();
          // P = exp(scale * Q K^T - lse), masked
          gemm(p, q, k, bq, bk, HD, {.transpose_b = true, .lda = S, .ldb = S, .ldc = tile});
          if (k0 + bk > q0) mask_causal(p, bq, bk, q0, k0);
          for (size_t r = 0; r < bq; ++r) {
            float* pr = p + r * tile;
            float m = row_lse[r];
#pragma omp simd
            for (size_t c = 0; c < bk; ++c) pr[c] = exp_approx(pr[c] * scale - m);
          }
          // dV += P^T dO
          gemm(w.dv.data(), p, dy, bk, HD, bq,
               {.transpose_a = true, .accumulate = true, .lda = tile, .ldb = O, .ldc = HD});
          // dP = dO V^T, then dS = P (dP - D) * scale (the score scale folded in once here)
          gemm(ds, dy, v, bq, bk, HD, {.transpose_b = true, .lda = O, .ldb = S, .ldc = tile});
          for (size_t r = 0; r < bq; ++r) {
            float* dsr = ds + r * tile;
            const float* pr = p + r * tile;
            float dr = row_delta[r];
#pragma omp simd
            for (size_t c = 0; c < bk; ++c) dsr[c] = pr[c] * (dsr[c] - dr) * scale;
          }
          // dQ += dS K,  dK += dS^T Q
          gemm(dq, ds, k, bq, HD, bk, {.accumulate = true, .lda = tile, .ldb = S, .ldc = S});
          gemm(w.dk.data(), ds, q, bk, HD, bq,
               {.transpose_a = true, .accumulate = true, .lda = tile, .ldb = S, .ldc = HD});
        }
      }
      for (size_t c = 0; c < bk; ++c) {
        float* dk_row = dqkv + (b * sh.T + k0 + c) * S + (sh.NH + kvh) * HD;
        std::memcpy(dk_row, w.dk.data() + c * HD, HD * sizeof(float));
        std::memcpy(dk_row + sh.NKV * HD, w.dv.data() + c * HD, HD * sizeof(float));
      }
    }
  }
}

}  // namespace hibari::cpu
