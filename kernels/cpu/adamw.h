// kernels/cpu/adamw.h — one fused AdamW update over a contiguous slice, in exactly the order of
// torch.optim.AdamW (decoupled weight decay first), so the two agree to rounding:
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc = 1 - beta^step.
#pragma once

#include <cstddef>

namespace hibari::cpu {

struct AdamWStep {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
  float bias_correction1;  // 1 - beta1^step
  float bias_correction2;  // 1 - beta2^step
};

// param, m, v (n) updated in place from grad (n).
void adamw_update(float* param, float* m, float* v, const float* grad, size_t n,
                  const AdamWStep& s);

// sum of x^2 in double, summed in fixed blocks so the result is independent of the thread count.
double sum_of_squares(const float* x, size_t n);
// x *= s
void scale_in_place(float* x, size_t n, float s);

}  // namespace hibari::cpu
