// kernels/cpu/swiglu.h — the Llama MLP's gate:  h = silu(gate) * up,  silu(g) = g * sigmoid(g).
// gate and up come packed in one (N, 2F) buffer — gate_proj and up_proj are adjacent in the flat
// parameter buffer, so one GEMM makes both: gate = gate_up[:, :F], up = gate_up[:, F:].
// Backward, with s = sigmoid(g):  dup = dh * silu(g),  dgate = dh * up * s * (1 + g * (1 - s)).
#pragma once

#include <cstddef>

namespace hibari::cpu {

// out (N,F) from gate_up (N,2F).
void swiglu_forward(float* out, const float* gate_up, size_t N, size_t F);
// dgate_up (N,2F) overwritten (=) from dout (N,F).
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, size_t N, size_t F);

}  // namespace hibari::cpu
