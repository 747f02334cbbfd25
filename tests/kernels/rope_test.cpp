// cpu::rope_* against the reference rotation (out of place) and against inv_freq computed here from
// the formulas of transformers' default and "llama3" rope initializations.
#include "kernels/cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/rope.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;

TEST(RopeInvFreq, UnscaledIsThetaPower) {
  for (double theta : {10000.0, 500000.0}) {
    for (size_t HD : {2, 16, 64, 128}) {
      std::vector<float> inv_freq(HD / 2);
      cpu::rope_inv_freq(inv_freq.data(), HD, theta, {});
      for (size_t i = 0; i < HD / 2; ++i) {
        double want = std::pow(theta, -double(2 * i) / double(HD));
        EXPECT_NEAR(inv_freq[i], want, 1e-6 * want)
            << "theta=" << theta << " HD=" << HD << " i=" << i;
      }
    }
  }
  // Known values: 10000^(-1/32), 10000^(-2/32), 10000^(-31/32).
  std::vector<float> inv_freq(32);
  cpu::rope_inv_freq(inv_freq.data(), 64, 10000.0, {});
  EXPECT_EQ(inv_freq[0], 1.0f);
  EXPECT_NEAR(inv_freq[1], 0.7498942093324559, 1e-7);
  EXPECT_NEAR(inv_freq[2], 0.5623413251903491, 1e-7);
  EXPECT_NEAR(inv_freq[31], 1.333521432163324e-4, 1e-7 * 1.34e-4);
}

// Llama 3.1's scaling, written from its definition: with wavelen = 2 pi / f, keep f where
// wavelen < original / high_freq_factor, divide it by `factor` where wavelen > original /
// low_freq_factor, and in between blend the two with smooth = (original / wavelen - low) / (high -
// low).
double llama3_inv_freq(size_t i, size_t HD, double theta, double factor, double low, double high,
                       double original) {
  double f = std::pow(theta, -double(2 * i) / double(HD));
  double wavelen = 2 * std::numbers::pi / f;
  if (wavelen < original / high) return f;
  if (wavelen > original / low) return f / factor;
  double smooth = (original / wavelen - low) / (high - low);
  return (1 - smooth) * f / factor + smooth * f;
}

TEST(RopeInvFreq, Llama3Scaling) {
  const size_t HD = 64;
  const double theta = 500000;
  cpu::RopeScaling scaling{.factor = 8,
                           .low_freq_factor = 1,
                           .high_freq_factor = 4,
                           .original_max_position_embeddings = 8192};
  std::vector<float> inv_freq(HD / 2);
  cpu::rope_inv_freq(inv_freq.data(), HD, theta, scaling);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < HD / 2; ++i) {
    double want = llama3_inv_freq(i, HD, theta, 8, 1, 4, 8192);
    double unscaled = std::pow(theta, -double(2 * i) / double(HD));
    if (want == unscaled) {
      ++kept;
    } else if (want == unscaled / 8) {
      ++divided;
    } else {
      ++blended;
    }
    EXPECT_NEAR(inv_freq[i], want, 1e-6 * want) << "i=" << i;
  }
  // The case must exercise all three regimes (i < 15 kept, 15..17 blended, >= 18 divided).
  EXPECT_EQ(kept, 15);
  EXPECT_EQ(blended, 3);
  EXPECT_EQ(divided, 14);
  // Known values, from transformers' _compute_llama3_parameters (fp32) for Llama 3.1's config.
  EXPECT_NEAR(inv_freq[1], 0.663601279258728, 1e-6 * 0.66);
  EXPECT_NEAR(inv_freq[15], 0.0013718936825171113, 1e-6 * 1.37e-3);
  EXPECT_NEAR(inv_freq[16], 0.0005248460220173001, 1e-6 * 5.2e-4);
  EXPECT_NEAR(inv_freq[17], 0.0001785077911335975, 1e-6 * 1.8e-4);
  EXPECT_NEAR(inv_freq[18], 7.784655463183299e-05, 1e-6 * 7.8e-5);
  EXPECT_NEAR(inv_freq[31], 3.76732259610435e-07, 1e-6 * 3.8e-7);
}

TEST(RopeTable, CosSinOfPositionTimesFrequency) {
  const size_t T = 70, HD = 16;
  std::vector<float> inv_freq(HD / 2), cos(T * HD / 2), sin(T * HD / 2);
  cpu::rope_inv_freq(inv_freq.data(), HD, 10000.0, {});
  cpu::rope_table(cos.data(), sin.data(), inv_freq.data(), T, HD);
  for (size_t t = 0; t < T; ++t)
    for (size_t i = 0; i < HD / 2; ++i) {
      float angle = float(t) * inv_freq[i];  // fp32, as transformers multiplies
      EXPECT_NEAR(cos[t * HD / 2 + i], std::cos(double(angle)), 1e-7) << t << " " << i;
      EXPECT_NEAR(sin[t * HD / 2 + i], std::sin(double(angle)), 1e-7) << t << " " << i;
    }
  EXPECT_EQ(cos[0], 1.0f);
  EXPECT_EQ(sin[0], 0.0f);
}

struct RopeCase {
  size_t B, T, H, HD, row_stride;
};

void PrintTo(const RopeCase& c, std::ostream* os) {
  *os << "B=" << c.B << " T=" << c.T << " H=" << c.H << " HD=" << c.HD
      << " row_stride=" << c.row_stride;
}

class RopeVsReference : public testing::TestWithParam<RopeCase> {
 protected:
  void SetUp() override {
    const RopeCase& c = GetParam();
    std::vector<float> inv_freq(c.HD / 2);
    cpu::rope_inv_freq(inv_freq.data(), c.HD, 10000.0, {.factor = 8});
    cos_.resize(c.T * c.HD / 2);
    sin_.resize(c.T * c.HD / 2);
    cpu::rope_table(cos_.data(), sin_.data(), inv_freq.data(), c.T, c.HD);
  }
  std::vector<float> cos_, sin_;
};

TEST_P(RopeVsReference, ForwardInPlace) {
  const RopeCase& c = GetParam();
  std::mt19937 rng(uint32_t(c.T * 100 + c.HD));
  auto x = test::uniform(c.B * c.T * c.row_stride, rng, -2.0f, 2.0f);
  auto expected = test::to_double(x);  // channels past H heads stay as they are
  ref::rope_forward(expected.data(), test::to_double(x).data(), test::to_double(cos_).data(),
                    test::to_double(sin_).data(), c.B, c.T, c.H, c.HD, c.row_stride);
  cpu::rope_forward(x.data(), cos_.data(), sin_.data(), c.B, c.T, c.H, c.HD, c.row_stride);
  EXPECT_LT(scaled_max_error(x, expected), tolerance);
}

TEST_P(RopeVsReference, BackwardInPlace) {
  const RopeCase& c = GetParam();
  std::mt19937 rng(uint32_t(c.T * 100 + c.HD + 1));
  auto dx = test::uniform(c.B * c.T * c.row_stride, rng, -2.0f, 2.0f);
  auto expected = test::to_double(dx);
  ref::rope_backward(expected.data(), test::to_double(dx).data(), test::to_double(cos_).data(),
                     test::to_double(sin_).data(), c.B, c.T, c.H, c.HD, c.row_stride);
  cpu::rope_backward(dx.data(), cos_.data(), sin_.data(), c.B, c.T, c.H, c.HD, c.row_stride);
  EXPECT_LT(scaled_max_error(dx, expected), tolerance);
}

TEST_P(RopeVsReference, BackwardUndoesForward) {
  const RopeCase& c = GetParam();
  std::mt19937 rng(uint32_t(c.T * 100 + c.HD + 2));
  auto x = test::uniform(c.B * c.T * c.row_stride, rng, -2.0f, 2.0f);
  auto original = x;
  cpu::rope_forward(x.data(), cos_.data(), sin_.data(), c.B, c.T, c.H, c.HD, c.row_stride);
  if (c.T > 1) {
    EXPECT_GT(scaled_max_error(x, original), 1e-2);  // it did rotate
  }
  cpu::rope_backward(x.data(), cos_.data(), sin_.data(), c.B, c.T, c.H, c.HD, c.row_stride);
  EXPECT_LT(scaled_max_error(x, original), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeVsReference,
                         testing::Values(RopeCase{1, 1, 1, 2, 2},  // one position: the identity
                                         RopeCase{2, 70, 3, 16,
                                                  64},  // q and k heads inside a packed qkv row
                                         RopeCase{2, 37, 2, 64, 133},       // odd row stride
                                         RopeCase{3, 5, 4, 6, 24},          // HD/2 odd
                                         RopeCase{1, 130, 6, 64, 6 * 64}),  // contiguous
                         [](const testing::TestParamInfo<RopeCase>& info) {
                           const RopeCase& c = info.param;
                           return test::concat("B", c.B, "T", c.T, "H", c.H, "HD", c.HD, "S",
                                               c.row_stride);
                         });

TEST(Rope, RotatesPairsByPositionAngle) {
  // HD = 4, position 1: channel pairs (0, 2) and (1, 3) turn by inv_freq[0] and inv_freq[1].
  const size_t T = 2, HD = 4;
  std::vector<float> inv_freq = {0.5f, 0.25f}, cos(T * 2), sin(T * 2);
  cpu::rope_table(cos.data(), sin.data(), inv_freq.data(), T, HD);
  std::vector<float> x = {1, 2, 3, 4, 1, 2, 3, 4};
  cpu::rope_forward(x.data(), cos.data(), sin.data(), 1, T, 1, HD, HD);
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_EQ(x[3], 4.0f);
  double c0 = std::cos(0.5), s0 = std::sin(0.5), c1 = std::cos(0.25), s1 = std::sin(0.25);
  EXPECT_NEAR(x[4], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(x[5], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(x[6], 3 * c0 + 1 * s0, 1e-6);
  EXPECT_NEAR(x[7], 4 * c1 + 2 * s1, 1e-6);
}

}  // namespace
}  // namespace hibari
