// kernels/reference/matmul.h — the plain triple loop that cpu::gemm is checked against.
#pragma once

#include <cstddef>

#include "kernels/cpu/matmul.h"

namespace hibari::ref {

template <typename T>
void gemm(T* c, const T* a, const T* b, size_t M, size_t N, size_t K, cpu::GemmOptions o = {}) {
  size_t lda = o.lda ? o.lda : (o.transpose_a ? M : K);
  size_t ldb = o.ldb ? o.ldb : (o.transpose_b ? K : N);
  size_t ldc = o.ldc ? o.ldc : N;
  for (size_t i = 0; i < M; ++i) {
    for (size_t j = 0; j < N; ++j) {
      double sum = 0;
      for (size_t k = 0; k < K; ++k) {
        double av = o.transpose_a ? a[k * lda + i] : a[i * lda + k];
        double bv = o.transpose_b ? b[j * ldb + k] : b[k * ldb + j];
        sum += av * bv;
      }
      c[i * ldc + j] = T(o.accumulate ? double(c[i * ldc + j]) + sum : sum);
    }
  }
}

}  // namespace hibari::ref
