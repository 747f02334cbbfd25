#include "kernels/cpu/matmul.h"

#include <cblas.h>

namespace hibari::cpu {

void gemm(float* c, const float* a, const float* b, size_t M, size_t N, size_t K, GemmOptions o) {
  if (M == 0 || N == 0) return;
  // Packed leading dimensions of op(x) as stored: a is (M,K) or (K,M), b is (K,N) or (N,K).
  size_t lda = o.lda ? o.lda : (o.transpose_a ? M : K);
  size_t ldb = o.ldb ? o.ldb : (o.transpose_b ? K : N);
  size_t ldc = o.ldc ? o.ldc : N;
  cblas_sgemm(CblasRowMajor, o.transpose_a ? CblasTrans : CblasNoTrans,
              o.transpose_b ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), 1.0f, a, int(lda),
              b, int(ldb), o.accumulate ? 1.0f : 0.0f, c, int(ldc));
}

}  // namespace hibari::cpu
