// kernels/cpu/rowwise_matmul.h — the inference linear layer y = x W^T whose every output row is
// computed from that input row alone, in an order fixed by K only:
//   y[m][n] = (((x[m][0] w[n][0]) + x[m][1] w[n][1]) + ...) + x[m][K-1] w[n][K-1]
// one fused multiply-add per k (where the target has FMA), k ascending.  So row m's bits do not
// depend on M, on the other rows, on the thread count or on where the row sits in the batch.  BLAS
// gives no such promise (OpenBLAS picks kernels and tiles by M), and inference needs it: a
// sequence's logits must not change with the batch it is scored in, and a token decoded alone must
// see the same K/V as when it was prefilled with its prompt.
//
// The weight (N, K), stored as Hugging Face stores it, is packed once into panels of
// kRowwisePanel output columns, each panel (K, kRowwisePanel) with k outermost (the last panel
// padded with zeros): the GEMM then streams a panel per k-step and broadcasts x, like a BLAS
// micro-kernel, but never splits the k sum.
#pragma once

#include <cstddef>

namespace hibari::cpu {

constexpr size_t kRowwisePanel = 32;

// Floats a packed (N, K) weight takes: ceil(N / kRowwisePanel) * kRowwisePanel * K.
size_t rowwise_packed_floats(size_t N, size_t K);

// packed (rowwise_packed_floats(N, K)) = weight (N, K) in panels.
void rowwise_pack(float* packed, const float* weight, size_t N, size_t K);

// out (M, N) = inp (M, K) @ weight^T, weight given packed; out rows start ldo floats apart
// (0: N).
void matmul_rowwise(float* out, const float* inp, const float* packed, size_t M, size_t N, size_t K,
                    size_t ldo = 0);

}  // namespace hibari::cpu
