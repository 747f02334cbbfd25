// kernels/cpu/rowwise_matmul.h — a linear layer y = x W^T whose every output row is computed from
// that input row alone, in an order fixed by K only:
//   y[m][n] = sum over 16 lanes (in lane order) of lane_j,  lane_j = sum_{k = j mod 16} x[m][k]
//   w[n][k]
//             (k ascending), plus the K % 16 tail, ascending.
// So row m's bits do not depend on M, on the other rows, on the thread count or on where the row
// sits in the batch.  BLAS gives no such promise (OpenBLAS picks kernels and tiles by M), and
// inference needs it: a sequence's logits must not change with the batch it is scored in, and a
// token decoded alone must see the same K/V as when it was prefilled with its prompt.
// M rows, N outputs, K inputs; W stored (N, K) as Hugging Face stores it.
#pragma once

#include <cstddef>

namespace hibari::cpu {

// out (M, N) = inp (M, K) @ weight (N, K)^T; out rows start ldo floats apart (0: N).
void matmul_rowwise(float* out, const float* inp, const float* weight, size_t M, size_t N, size_t K,
                    size_t ldo = 0);

}  // namespace hibari::cpu
