// kernels/cpu/rmsnorm.h — RMSNorm as Llama computes it (in fp32):
//   y = x * rstd * w,   rstd = 1 / sqrt(mean(x^2) + eps).   N rows (tokens), C channels.
// Backward, with xhat = x * rstd and g = dy * w:
//   dx = rstd * (g - xhat * mean(g * xhat)),   dw += sum over rows of dy * xhat.
#pragma once

#include <cstddef>

namespace hibari::cpu {

// out (N,C), rstd (N) saved for backward, inp (N,C), weight (C).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, size_t N,
                     size_t C, float eps);
// dinp (N,C) ACCUMULATES (+=): a norm's input is always the residual stream, whose gradient already
// holds the skip connection's part.  dweight (C) accumulates as every parameter gradient does,
// summed in row order by channel stripes, so the result does not depend on the thread count.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, size_t N, size_t C);

}  // namespace hibari::cpu
