#include "kernels/cpu/cross_entropy.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/vector_math.h"

namespace hibari::cpu {

namespace {

// log(sum(exp(x))) of one row, stable: max first.
float log_sum_exp(const float* x, size_t V) {
  float max = x[0];
#pragma omp simd reduction(max : max)
  for (size_t v = 0; v < V; ++v) max = x[v] > max ? x[v] : max;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t v = 0; v < V; ++v) sum += exp_approx(x[v] - max);
  return max + std::log(sum);
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
    float lse = log_sum_exp(x, V);
    losses[r] = lse - x[y];
#pragma omp simd
    for (size_t v = 0; v < V; ++v) x[v] = exp_approx(x[v] - lse) * grad_scale;
    x[y] -= grad_scale;
  }
}

void cross_entropy_loss(float* losses, const float* logits, const int32_t* targets, size_t n,
                        size_t V) {
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < n; ++r) {
    int32_t y = targets[r];
    losses[r] = y == ignore_index ? 0.0f : log_sum_exp(logits + r * V, V) - logits[r * V + y];
  }
}

}  // namespace hibari::cpu
