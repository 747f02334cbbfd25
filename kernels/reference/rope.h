// Reference RoPE: written from the definition x * cos + rotate_half(x) * sin, out of place.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace hibari::ref {

// angle (T, HD/2) given as cos/sin tables; out and inp (B*T, row_stride), H heads rotated.
template <typename T>
void rope_forward(T* out, const T* inp, const T* cos, const T* sin, size_t B, size_t Tn, size_t H,
                  size_t HD, size_t row_stride) {
  size_t half = HD / 2;
  for (size_t r = 0; r < B * Tn; ++r) {
    size_t t = r % Tn;
    for (size_t h = 0; h < H; ++h) {
      const T* x = inp + r * row_stride + h * HD;
      T* y = out + r * row_stride + h * HD;
      for (size_t d = 0; d < HD; ++d) {
        size_t i = d % half;
        T rotated = d < half ? -x[d + half] : x[d - half];  // rotate_half
        y[d] = x[d] * cos[t * half + i] + rotated * sin[t * half + i];
      }
    }
  }
}

// The transpose of the rotation applied to dout.
template <typename T>
void rope_backward(T* dinp, const T* dout, const T* cos, const T* sin, size_t B, size_t Tn,
                   size_t H, size_t HD, size_t row_stride) {
  size_t half = HD / 2;
  for (size_t r = 0; r < B * Tn; ++r) {
    size_t t = r % Tn;
    for (size_t h = 0; h < H; ++h) {
      const T* g = dout + r * row_stride + h * HD;
      T* dx = dinp + r * row_stride + h * HD;
      for (size_t d = 0; d < HD; ++d) {
        size_t i = d % half;
        // y[j] depends on x[d] through cos (j = d) and through rotate_half (j = d -+ half).
        T via_rotation = d < half ? g[d + half] : -g[d - half];
        dx[d] = g[d] * cos[t * half + i] + via_rotation * sin[t * half + i];
      }
    }
  }
}

}  // namespace hibari::ref
