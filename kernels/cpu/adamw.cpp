#include "kernels/cpu/adamw.h"

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
  constexpr size_t block = 1 << 14;
  size_t blocks = (n + block - 1) / block;
  double total = 0.0;
  // Blocks are summed in parallel, then added to the total in block order (the ordered section).
#pragma omp parallel for schedule(static) ordered
  for (size_t b = 0; b < blocks; ++b) {
    size_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
    double partial = 0.0;
#pragma omp simd reduction(+ : partial)
    for (size_t i = i0; i < i1; ++i) partial += double(x[i]) * double(x[i]);
#pragma omp ordered
    total += partial;
  }
  return total;
}

void scale_in_place(float* x, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace hibari::cpu
