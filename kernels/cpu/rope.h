// kernels/cpu/rope.h — rotary position embedding in Hugging Face's rotate_half convention:
//   x_rot = x * cos + rotate_half(x) * sin,   rotate_half([x1, x2]) = [-x2, x1],
// where x1 / x2 are the first / second half of a head (HD channels) and channel i and i + HD/2
// share the angle pos * inv_freq[i].  Tables hold cos / sin of those angles: (T, HD/2).
// The rotation is orthogonal, so backward is the same rotation by the negated angle.
#pragma once

#include <cstddef>

namespace hibari::cpu {

// Llama-3 "rope_scaling": {"rope_type": "llama3", factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings}.  factor == 0 means no scaling.
struct RopeScaling {
  double factor = 0;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};

// inv_freq (HD/2) as transformers computes it (fp32), with llama3 scaling applied when requested.
void rope_inv_freq(float* inv_freq, size_t HD, double theta, const RopeScaling& scaling);
// cos, sin (T, HD/2) for positions 0..T-1.
void rope_table(float* cos, float* sin, const float* inv_freq, size_t T, size_t HD);

// Rotates in place H heads of HD channels in each of B*T rows; row r has position r % T and starts
// at x + r * row_stride (so q and k can be rotated inside a packed qkv buffer).
void rope_forward(float* x, const float* cos, const float* sin, size_t B, size_t T, size_t H,
                  size_t HD, size_t row_stride);
// dx in place: rotation by the negated angle.
void rope_backward(float* dx, const float* cos, const float* sin, size_t B, size_t T, size_t H,
                   size_t HD, size_t row_stride);

}  // namespace hibari::cpu
