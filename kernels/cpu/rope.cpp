#include "kernels/cpu/rope.h"

#include <cmath>

namespace hibari::cpu {

void rope_inv_freq(float* inv_freq, size_t HD, double theta, const RopeScaling& scaling) {
  const double pi = 3.14159265358979323846;
  for (size_t i = 0; i < HD / 2; ++i) {
    float exponent = float(2 * i) / float(HD);  // fp32, as torch.arange(0, dim, 2).float() / dim
    double f = double(float(1.0 / std::pow(theta, double(exponent))));
    if (scaling.factor > 0) {
      // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
      double old_len = scaling.original_max_position_embeddings;
      double low_freq_wavelen = old_len / scaling.low_freq_factor;
      double high_freq_wavelen = old_len / scaling.high_freq_factor;
      double wavelen = 2 * pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / scaling.factor;
      } else if (wavelen >= high_freq_wavelen) {
        double smooth = (old_len / wavelen - scaling.low_freq_factor) /
                        (scaling.high_freq_factor - scaling.low_freq_factor);
        f = (1 - smooth) * f / scaling.factor + smooth * f;
      }
    }
    inv_freq[i] = float(f);
  }
}

void rope_table(float* cos, float* sin, const float* inv_freq, size_t T, size_t HD) {
  size_t half = HD / 2;
  for (size_t t = 0; t < T; ++t) {
    for (size_t i = 0; i < half; ++i) {
      float angle = float(t) * inv_freq[i];  // fp32 product, as transformers does
      cos[t * half + i] = float(std::cos(double(angle)));
      sin[t * half + i] = float(std::sin(double(angle)));
    }
  }
}

namespace {

// sign = +1 rotates forward, -1 rotates back.
void rope_rotate(float* x, const float* cos, const float* sin, size_t B, size_t T, size_t H,
                 size_t HD, size_t row_stride, float sign) {
  size_t half = HD / 2;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < B * T; ++r) {
    const float* c = cos + (r % T) * half;
    const float* s = sin + (r % T) * half;
    for (size_t h = 0; h < H; ++h) {
      float* x1 = x + r * row_stride + h * HD;
      float* x2 = x1 + half;
#pragma omp simd
      for (size_t i = 0; i < half; ++i) {
        float a = x1[i], b = x2[i], si = sign * s[i];
        x1[i] = a * c[i] - b * si;
        x2[i] = b * c[i] + a * si;
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, size_t B, size_t T, size_t H,
                  size_t HD, size_t row_stride) {
  rope_rotate(x, cos, sin, B, T, H, HD, row_stride, 1.0f);
}

void rope_backward(float* dx, const float* cos, const float* sin, size_t B, size_t T, size_t H,
                   size_t HD, size_t row_stride) {
  rope_rotate(dx, cos, sin, B, T, H, HD, row_stride, -1.0f);
}

}  // namespace hibari::cpu
