#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>

namespace hibari::cpu {

void adamw_update(float* param, float* m, float* v, const float* grad, size_t n,
                  const AdamWStep& s) {
  const float decay = 1.0f - s.lr * s.weight_decay;
  const float step_size = s.lr / s.bias_correction1;
  const float bc2_sqrt = std::sqrt(s.bias_correction2);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    float g = grad[i];
    float p = param[i] * decay;
    float mi = m[i] * s.beta1 + g * (1.0f - s.beta1);
    float vi = v[i] * s.beta2 + g * g * (1.0f - s.beta2);
    m[i] = mi;
    v[i] = vi;
    param[i] = p - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + s.eps));
  }
}

double sum_of_squares(const float* x, size_t n) {
  // At most 256 blocks whose size depends only on n; partial sums are added in block order, so the
  // result is the same for any thread count.
  constexpr size_t max_blocks = 256, min_block = 1 << 14;
  size_t block = std::max(min_block, (n + max_blocks - 1) / max_blocks);
  size_t blocks = (n + block - 1) / block;
  double partial[max_blocks];
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < blocks; ++b) {
    size_t i0 = b * block, i1 = std::min(i0 + block, n);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = i0; i < i1; ++i) sum += double(x[i]) * double(x[i]);
    partial[b] = sum;
  }
  double total = 0.0;
  for (size_t b = 0; b < blocks; ++b) total += partial[b];
  return total;
}

void scale_in_place(float* x, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace hibari::cpu
