// core/rng.h: Philox4x32-10 known answers and the statistics of the derived distributions.
#include "core/rng.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace hibari {
namespace {

using Block = std::array<uint32_t, 4>;

// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds).
TEST(Philox, KnownAnswers) {
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
            (Block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(
      philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
      (Block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(
      philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
      (Block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(RandomNormal, MeanAndStandardDeviation) {
  const int n = 100000;
  double sum = 0, sum_sq = 0, sum_4 = 0;
  int within_one = 0;
  for (int i = 0; i < n; ++i) {
    double x = random_normal(42, 0, uint64_t(i));
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum_sq += x * x;
    sum_4 += x * x * x * x;
    within_one += std::abs(x) < 1;
  }
  double mean = sum / n, var = sum_sq / n - mean * mean;
  // Standard errors at n = 1e5: mean 0.0032, std 0.0022, fourth moment 0.031, P(|x|<1) 0.0015.
  EXPECT_NEAR(mean, 0.0, 0.015);
  EXPECT_NEAR(std::sqrt(var), 1.0, 0.01);
  EXPECT_NEAR(sum_4 / n, 3.0, 0.15);
  EXPECT_NEAR(double(within_one) / n, 0.682689, 0.0075);
}

TEST(RandomNormal, IsAPureFunctionOfSeedStreamAndIndex) {
  for (uint64_t i : {0ull, 1ull, 12345ull, (1ull << 32) + 5}) {
    EXPECT_EQ(random_normal(7, 3, i), random_normal(7, 3, i));
    EXPECT_EQ(random_uniform(7, 3, i), random_uniform(7, 3, i));
    EXPECT_EQ(random_below(7, 3, i, 1000), random_below(7, 3, i, 1000));
  }
  // Every part of the input matters, the high halves of seed and index included.
  EXPECT_NE(random_normal(7, 3, 5), random_normal(7, 3, 5 + (1ull << 32)));
  EXPECT_NE(random_normal(7, 3, 5), random_normal(7 + (1ull << 32), 3, 5));
  EXPECT_NE(random_normal(7, 3, 5), random_normal(8, 3, 5));
  EXPECT_NE(random_normal(7, 3, 5), random_normal(7, 4, 5));
}

TEST(RandomNormal, DifferentStreamsDiffer) {
  const int n = 10000;
  int equal = 0;
  double cross = 0;
  for (int i = 0; i < n; ++i) {
    double a = random_normal(42, 0, uint64_t(i)), b = random_normal(42, 1, uint64_t(i));
    equal += a == b;
    cross += a * b;
  }
  EXPECT_EQ(equal, 0);
  EXPECT_NEAR(cross / n, 0.0, 0.05);  // uncorrelated: standard error 0.01
  // Different seeds, same stream.
  int same = 0;
  for (int i = 0; i < 1000; ++i)
    same += random_normal(1, 0, uint64_t(i)) == random_normal(2, 0, uint64_t(i));
  EXPECT_EQ(same, 0);
}

TEST(RandomUniform, InUnitIntervalWithMeanOneHalf) {
  const int n = 100000;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    double u = random_uniform(9, 2, uint64_t(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);  // standard error 0.0009
}

TEST(RandomBelow, CoversTheRangeUniformly) {
  const uint32_t bound = 37;
  const int n = 37000;
  std::vector<int> counts(bound, 0);
  for (int i = 0; i < n; ++i) {
    uint32_t r = random_below(5, 1, uint64_t(i), bound);
    ASSERT_LT(r, bound);
    ++counts[r];
  }
  // Each bucket expects 1000 with standard deviation ~31.
  for (uint32_t k = 0; k < bound; ++k) EXPECT_NEAR(counts[k], 1000, 160) << "bucket " << k;
  EXPECT_EQ(random_below(5, 1, 0, 1), 0u);
}

TEST(UniformOpen0, NeverZero) {
  EXPECT_EQ(uniform_open0(0), 1.0 / 4294967296.0);
  EXPECT_EQ(uniform_open0(0xffffffffu), 1.0);
}

}  // namespace
}  // namespace hibari
