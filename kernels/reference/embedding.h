#pragma once

#include <cstddef>
#include <cstdint>

namespace hibari::ref {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
  for (size_t n = 0; n < N; ++n)
    for (size_t c = 0; c < C; ++c) out[n * C + c] = wte[size_t(tokens[n]) * C + c];
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
  for (size_t n = 0; n < N; ++n)
    for (size_t c = 0; c < C; ++c) dwte[size_t(tokens[n]) * C + c] += dout[n * C + c];
}

}  // namespace hibari::ref
