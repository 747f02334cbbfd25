#pragma once

#include <cmath>
#include <cstddef>

namespace hibari::ref {

template <typename T>
void swiglu_forward(T* out, const T* gate_up, size_t N, size_t F) {
  for (size_t n = 0; n < N; ++n)
    for (size_t i = 0; i < F; ++i) {
      T g = gate_up[n * 2 * F + i], u = gate_up[n * 2 * F + F + i];
      out[n * F + i] = g / (T(1) + std::exp(-g)) * u;
    }
}

template <typename T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, size_t N, size_t F) {
  for (size_t n = 0; n < N; ++n)
    for (size_t i = 0; i < F; ++i) {
      T g = gate_up[n * 2 * F + i], u = gate_up[n * 2 * F + F + i];
      T s = T(1) / (T(1) + std::exp(-g));
      dgate_up[n * 2 * F + F + i] = dout[n * F + i] * g * s;
      dgate_up[n * 2 * F + i] = dout[n * F + i] * u * (s + g * s * (T(1) - s));
    }
}

}  // namespace hibari::ref
