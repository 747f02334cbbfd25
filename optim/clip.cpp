#include "optim/clip.h"

#include <cmath>

#include "kernels/cpu/adamw.h"

namespace hibari {

double clip_grad_norm(float* grads, size_t n, double max_norm) {
  double norm = std::sqrt(cpu::sum_of_squares(grads, n));
  clip_grads_to_norm(grads, n, norm, max_norm);
  return norm;
}

void clip_grads_to_norm(float* grads, size_t n, double norm, double max_norm) {
  if (max_norm <= 0) return;
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) cpu::scale_in_place(grads, n, float(coef));
}

}  // namespace hibari
