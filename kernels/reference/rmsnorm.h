#pragma once

#include <cmath>
#include <cstddef>

namespace hibari::ref {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, size_t N, size_t C, T eps) {
  for (size_t n = 0; n < N; ++n) {
    T sum_sq = 0;
    for (size_t c = 0; c < C; ++c) sum_sq += inp[n * C + c] * inp[n * C + c];
    T r = T(1) / std::sqrt(sum_sq / T(C) + eps);
    rstd[n] = r;
    for (size_t c = 0; c < C; ++c) out[n * C + c] = inp[n * C + c] * r * weight[c];
  }
}

// dinp accumulates (+=), dweight accumulates (+=).
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, size_t N, size_t C) {
  for (size_t n = 0; n < N; ++n) {
    T r = rstd[n];
    T dot = 0;
    for (size_t c = 0; c < C; ++c) dot += dout[n * C + c] * weight[c] * inp[n * C + c] * r;
    for (size_t c = 0; c < C; ++c) {
      T xhat = inp[n * C + c] * r;
      dinp[n * C + c] += r * (dout[n * C + c] * weight[c] - xhat * dot / T(C));
      dweight[c] += dout[n * C + c] * xhat;
    }
  }
}

}  // namespace hibari::ref
