// Reference causal GQA attention: the full softmax of each query row, straight from the definition.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/attention.h"

namespace hibari::ref {

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, const cpu::AttentionShape& sh) {
  size_t S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD, HD = sh.HD;
  T scale = T(1) / std::sqrt(T(HD));
  std::vector<T> p(sh.T);
  for (size_t b = 0; b < sh.B; ++b)
    for (size_t h = 0; h < sh.NH; ++h) {
      size_t kvh = h / (sh.NH / sh.NKV);
      for (size_t t = 0; t < sh.T; ++t) {
        const T* q = qkv + (b * sh.T + t) * S + h * HD;
        T max = -INFINITY;
        for (size_t s = 0; s <= t; ++s) {
          const T* k = qkv + (b * sh.T + s) * S + (sh.NH + kvh) * HD;
          T dot = 0;
          for (size_t d = 0; d < HD; ++d) dot += q[d] * k[d];
          p[s] = dot * scale;
          max = p[s] > max ? p[s] : max;
        }
        T sum = 0;
        for (size_t s = 0; s <= t; ++s) sum += std::exp(p[s] - max);
        T l = max + std::log(sum);
        lse[(b * sh.NH + h) * sh.T + t] = l;
        T* o = out + (b * sh.T + t) * O + h * HD;
        for (size_t d = 0; d < HD; ++d) o[d] = 0;
        for (size_t s = 0; s <= t; ++s) {
          const T* v = qkv + (b * sh.T + s) * S + (sh.NH + sh.NKV + kvh) * HD;
          T w = std::exp(p[s] - l);
          for (size_t d = 0; d < HD; ++d) o[d] += w * v[d];
        }
      }
    }
}

// dqkv overwritten (=).
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* lse,
                        const cpu::AttentionShape& sh) {
  size_t S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD, HD = sh.HD;
  T scale = T(1) / std::sqrt(T(HD));
  for (size_t i = 0; i < sh.B * sh.T * S; ++i) dqkv[i] = 0;
  std::vector<T> p(sh.T), dp(sh.T);
  for (size_t b = 0; b < sh.B; ++b)
    for (size_t h = 0; h < sh.NH; ++h) {
      size_t kvh = h / (sh.NH / sh.NKV);
      for (size_t t = 0; t < sh.T; ++t) {
        const T* q = qkv + (b * sh.T + t) * S + h * HD;
        const T* dy = dout + (b * sh.T + t) * O + h * HD;
        T* dq = dqkv + (b * sh.T + t) * S + h * HD;
        T delta = 0;  // sum_s P dP
        for (size_t s = 0; s <= t; ++s) {
          const T* k = qkv + (b * sh.T + s) * S + (sh.NH + kvh) * HD;
          const T* v = k + sh.NKV * HD;
          T dot = 0, dpv = 0;
          for (size_t d = 0; d < HD; ++d) {
            dot += q[d] * k[d];
            dpv += dy[d] * v[d];
          }
          p[s] = std::exp(dot * scale - lse[(b * sh.NH + h) * sh.T + t]);
          dp[s] = dpv;
          delta += p[s] * dpv;
        }
        for (size_t s = 0; s <= t; ++s) {
          const T* k = qkv + (b * sh.T + s) * S + (sh.NH + kvh) * HD;
          T* dk = dqkv + (b * sh.T + s) * S + (sh.NH + kvh) * HD;
          T* dv = dk + sh.NKV * HD;
          T ds = p[s] * (dp[s] - delta) * scale;
          for (size_t d = 0; d < HD; ++d) {
            dq[d] += ds * k[d];
            dk[d] += ds * q[d];
            dv[d] += p[s] * dy[d];
          }
        }
      }
    }
}

}  // namespace hibari::ref
