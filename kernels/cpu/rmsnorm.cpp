#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace hibari::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, size_t N,
                     size_t C, float eps) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
    for (size_t c = 0; c < C; ++c) sum_sq += x[c] * x[c];
    float r = 1.0f / std::sqrt(sum_sq / float(C) + eps);
    rstd[n] = r;
#pragma omp simd
    for (size_t c = 0; c < C; ++c) y[c] = x[c] * r * weight[c];
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, size_t N, size_t C) {
#pragma omp parallel
  {
    // term 1: dx = rstd * (g - xhat * mean(g * xhat)), row by row
#pragma omp for schedule(static)
    for (size_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* dy = dout + n * C;
      float* dx = dinp + n * C;
      float r = rstd[n];
      float dot = 0.0f;  // sum of g * xhat
#pragma omp simd reduction(+ : dot)
      for (size_t c = 0; c < C; ++c) dot += dy[c] * weight[c] * x[c] * r;
      float mean_dot = dot / float(C);
#pragma omp simd
      for (size_t c = 0; c < C; ++c) dx[c] += r * (dy[c] * weight[c] - x[c] * r * mean_dot);
    }
    // term 2: dw += sum_n dy * xhat, by channel stripes
    constexpr size_t stripe = 64;
    size_t stripes = (C + stripe - 1) / stripe;
#pragma omp for schedule(static)
    for (size_t s = 0; s < stripes; ++s) {
      size_t c0 = s * stripe, c1 = c0 + stripe < C ? c0 + stripe : C;
      float acc[stripe] = {};
      for (size_t n = 0; n < N; ++n) {
        const float* x = inp + n * C;
        const float* dy = dout + n * C;
        float r = rstd[n];
#pragma omp simd
        for (size_t c = c0; c < c1; ++c) acc[c - c0] += dy[c] * x[c] * r;
      }
      for (size_t c = c0; c < c1; ++c) dweight[c] += acc[c - c0];
    }
  }
}

}  // namespace hibari::cpu
