// kernels/cpu/vector_math.h — scalar math written so that `#pragma omp simd` loops vectorize it
// (AVX-512 when built with -march=native on a machine that has it, SSE/AVX2 otherwise).
// glibc's expf does not vectorize without -ffast-math, which we do not use (it would break the
// bit-reproducibility we promise), so exp is the Cephes polynomial: max relative error ~2e-7.
#pragma once

#include <cstdint>
#include <cstring>

namespace hibari::cpu {

#pragma omp declare simd notinbranch
inline float exp_approx(float x) {
  const float input = x;
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447505531f ? -87.3365447505531f : x;
  // exp(x) = 2^n * exp(r),  n = round(x / ln 2),  r = x - n ln 2 (ln 2 split hi + lo for accuracy).
  // Rounding by adding and subtracting 1.5 * 2^23 keeps the loop free of floor(), which GCC will
  // not vectorize under its default -ftrapping-math.
  const float round_magic = 12582912.0f;
  float n = (x * 1.44269504088896341f + round_magic) - round_magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  float result = p * scale;
  return input < -87.3365447505531f ? 0.0f : result;  // underflow to zero, as expf does
}

#pragma omp declare simd notinbranch
inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

}  // namespace hibari::cpu
