#include "kernels/cpu/embedding.h"

#include <cstring>

namespace hibari::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    std::memcpy(out + n * C, wte + size_t(tokens[n]) * C, C * sizeof(float));
  }
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, size_t N, size_t C) {
  constexpr size_t stripe = 64;  // channels per task: one cache line of 16 floats x 4
  size_t stripes = (C + stripe - 1) / stripe;
#pragma omp parallel for schedule(static)
  for (size_t s = 0; s < stripes; ++s) {
    size_t c0 = s * stripe, c1 = c0 + stripe < C ? c0 + stripe : C;
    for (size_t n = 0; n < N; ++n) {
      float* row = dwte + size_t(tokens[n]) * C;
      const float* g = dout + n * C;
#pragma omp simd
      for (size_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

}  // namespace hibari::cpu
