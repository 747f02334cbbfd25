// kernels/cpu/matmul.h — GEMM through OpenBLAS, in the three shapes training needs.
//   c (M,N) = [c +] op(a) (M,K) @ op(b) (K,N),   op(x) = x or x^T, all row-major.
// A linear layer y = x W^T (W stored (out, in) as Hugging Face stores it) uses
//   forward   y  = x  @ W^T    {.transpose_b = true}
//   backward  dx = dy @ W      {}                       (dx overwritten or accumulated)
//             dW += dy^T @ x   {.transpose_a = true, .accumulate = true}
#pragma once

#include <cstddef>

namespace hibari::cpu {

struct GemmOptions {
  bool transpose_a = false;
  bool transpose_b = false;
  bool accumulate = false;  // c += ... instead of c = ...
  size_t lda = 0;           // leading dimensions (row strides); 0 means packed
  size_t ldb = 0;
  size_t ldc = 0;
};

void gemm(float* c, const float* a, const float* b, size_t M, size_t N, size_t K,
          GemmOptions options = {});

}  // namespace hibari::cpu
