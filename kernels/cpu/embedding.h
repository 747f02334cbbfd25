// kernels/cpu/embedding.h — token embedding lookup.  N tokens, C channels, V vocabulary rows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hibari::cpu {

// out (N,C) = wte[tokens[n]] (V,C).  Token ids must be < V (checked by the caller's data layer).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C);
// dwte (V,C) += scatter of dout (N,C) by token.  Parallel over channels, so each thread owns a
// column stripe and the sum order is the token order: deterministic for any thread count.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, size_t N, size_t C);

}  // namespace hibari::cpu
