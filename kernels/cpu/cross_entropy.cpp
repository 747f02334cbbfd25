#include "kernels/cpu/cross_entropy.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/vector_math.h"

namespace hibari::cpu {

namespace {

// max and sum(exp(x - max)) of one row: lse = max + log(sum), softmax = exp(x - max) / sum.
// (exp(x - lse) would skip the division but carries lse's fp32 rounding into every probability:
// ~1e-5 relative when logits reach a few hundred.)
struct RowStats {
  float max, sum;
};

RowStats row_stats(const float* x, size_t V) {
  float max = x[0];
#pragma omp simd reduction(max : max)
  for (size_t v = 0; v < V; ++v) max = x[v] > max ? x[v] : max;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t v = 0; v < V; ++v) sum += exp_approx(x[v] - max);
  return {max, sum};
}

}  // namespace

void softmax_cross_entropy(float* logits, float* losses, const int32_t* targets, size_t n, size_t V,
                           float grad_scale) {
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < n; ++r) {
    float* x = logits + r * V;
    int32_t y = targets[r];
    if (y == ignore_index) {
      losses[r] = 0.0f;
      std::memset(x, 0, V * sizeof(float));
      continue;
    }
    // Three passes over a row that stays in L2: max; exp(x - max) stored in place and summed (one
    // exp per logit); scale by grad_scale / sum.
    const float target_logit = x[y];
    float max = x[0];
#pragma omp simd reduction(max : max)
    for (size_t v = 0; v < V; ++v) max = x[v] > max ? x[v] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t v = 0; v < V; ++v) {
      float e = exp_approx(x[v] - max);
      x[v] = e;
      sum += e;
    }
    losses[r] = max + std::log(sum) - target_logit;
    const float scale = grad_scale / sum;
#pragma omp simd
    for (size_t v = 0; v < V; ++v) x[v] *= scale;
    x[y] -= grad_scale;
  }
}

void cross_entropy_loss(float* losses, const float* logits, const int32_t* targets, size_t n,
                        size_t V) {
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < n; ++r) {
    int32_t y = targets[r];
    if (y == ignore_index) {
      losses[r] = 0.0f;
      continue;
    }
    RowStats s = row_stats(logits + r * V, V);
    losses[r] = s.max + std::log(s.sum) - logits[r * V + y];
  }
}

}  // namespace hibari::cpu
