#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace hibari::ref {

// Out of place: dlogits (n,V) = (softmax - onehot) * grad_scale; ignored rows get zeros.
template <typename T>
void softmax_cross_entropy(T* dlogits, T* losses, const T* logits, const int32_t* targets, size_t n,
                           size_t V, T grad_scale, int32_t ignore_index = -100) {
  for (size_t r = 0; r < n; ++r) {
    const T* x = logits + r * V;
    if (targets[r] == ignore_index) {
      losses[r] = 0;
      for (size_t v = 0; v < V; ++v) dlogits[r * V + v] = 0;
      continue;
    }
    T max = x[0];
    for (size_t v = 0; v < V; ++v) max = x[v] > max ? x[v] : max;
    T sum = 0;
    for (size_t v = 0; v < V; ++v) sum += std::exp(x[v] - max);
    T lse = max + std::log(sum);
    losses[r] = lse - x[targets[r]];
    for (size_t v = 0; v < V; ++v) {
      T p = std::exp(x[v] - lse);
      dlogits[r * V + v] = (p - (int32_t(v) == targets[r] ? T(1) : T(0))) * grad_scale;
    }
  }
}

}  // namespace hibari::ref
