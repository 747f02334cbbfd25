// kernels/reference/adamw.h — torch.optim.AdamW's update (the single-tensor, non-capturable path),
// one plain loop per step of the formula, in the precision T:
//   p *= 1 - lr * wd
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - beta1^step, bc2 = 1 - beta2^step
#pragma once

#include <cmath>
#include <cstddef>

#include "kernels/cpu/adamw.h"

namespace hibari::ref {

template <typename T>
void adamw_update(T* param, T* m, T* v, const T* grad, size_t n, const cpu::AdamWStep& s) {
  const T lr = T(s.lr), beta1 = T(s.beta1), beta2 = T(s.beta2), eps = T(s.eps);
  const T weight_decay = T(s.weight_decay);
  const T bias_correction1 = T(s.bias_correction1), bias_correction2 = T(s.bias_correction2);
  for (size_t i = 0; i < n; ++i) param[i] *= T(1) - lr * weight_decay;  // decoupled decay
  for (size_t i = 0; i < n; ++i) m[i] = beta1 * m[i] + (T(1) - beta1) * grad[i];
  for (size_t i = 0; i < n; ++i) v[i] = beta2 * v[i] + (T(1) - beta2) * (grad[i] * grad[i]);
  const T step_size = lr / bias_correction1;
  const T bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < n; ++i) {
    T denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;
    param[i] -= step_size * (m[i] / denom);  // addcdiv_(m, denom, -step_size)
  }
}

// The AdamWStep of optimizer step `step` (counted from 1), bias corrections in double.
inline cpu::AdamWStep adamw_step(float lr, float beta1, float beta2, float eps, float weight_decay,
                                 int step) {
  return {.lr = lr,
          .beta1 = beta1,
          .beta2 = beta2,
          .eps = eps,
          .weight_decay = weight_decay,
          .bias_correction1 = float(1 - std::pow(double(beta1), step)),
          .bias_correction2 = float(1 - std::pow(double(beta2), step))};
}

// sum of x^2, one element after another.
template <typename T>
double sum_of_squares(const T* x, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  return sum;
}

}  // namespace hibari::ref
