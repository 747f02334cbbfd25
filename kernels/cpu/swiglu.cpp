#include "kernels/cpu/swiglu.h"

#include "kernels/cpu/vector_math.h"

namespace hibari::cpu {

void swiglu_forward(float* out, const float* gate_up, size_t N, size_t F) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* g = gate_up + n * 2 * F;
    const float* u = g + F;
    float* h = out + n * F;
#pragma omp simd
    for (size_t i = 0; i < F; ++i) h[i] = g[i] * sigmoid_approx(g[i]) * u[i];
  }
}

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, size_t N, size_t F) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* g = gate_up + n * 2 * F;
    const float* u = g + F;
    const float* dh = dout + n * F;
    float* dg = dgate_up + n * 2 * F;
    float* du = dg + F;
#pragma omp simd
    for (size_t i = 0; i < F; ++i) {
      float s = sigmoid_approx(g[i]);
      du[i] = dh[i] * g[i] * s;
      dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  }
}

}  // namespace hibari::cpu
