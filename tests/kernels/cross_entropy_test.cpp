// cpu::softmax_cross_entropy and cpu::cross_entropy_loss against the reference computed in double.
#include "kernels/cpu/cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/cross_entropy.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;

struct Case {
  size_t n, V;
  float spread;  // logits uniform in [-spread, spread)
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "n=" << c.n << " V=" << c.V << " spread=" << c.spread;
}

// Every fifth target is ignore_index; the others are uniform over the vocabulary.
std::vector<int32_t> targets_with_ignored(size_t n, size_t V, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> dist(0, int32_t(V) - 1);
  std::vector<int32_t> targets(n);
  for (size_t r = 0; r < n; ++r) targets[r] = r % 5 == 2 ? cpu::ignore_index : dist(rng);
  if (n > 1) targets[n - 1] = int32_t(V) - 1;  // the last vocabulary entry
  if (n > 3) targets[0] = 0;
  return targets;
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return test::concat("n", info.param.n, "V", info.param.V, "spread", int(info.param.spread));
}

class CrossEntropyVsReference : public testing::TestWithParam<Case> {};

TEST_P(CrossEntropyVsReference, FusedForwardBackward) {
  const auto [n, V, spread] = GetParam();
  std::mt19937 rng(uint32_t(n * 10000 + V));
  auto logits = test::uniform(n * V, rng, -spread, spread);
  auto targets = targets_with_ignored(n, V, rng);
  size_t valid = 0;
  for (int32_t t : targets) valid += t != cpu::ignore_index;
  const float grad_scale = 1.0f / float(valid > 0 ? valid : 1);

  std::vector<double> dlogits_ref(n * V), losses_ref(n);
  ref::softmax_cross_entropy(dlogits_ref.data(), losses_ref.data(), test::to_double(logits).data(),
                             targets.data(), n, V, double(grad_scale));
  std::vector<float> row_max(n, 0.0f);
  for (size_t r = 0; r < n; ++r)
    for (size_t v = 0; v < V; ++v) row_max[r] = std::max(row_max[r], std::abs(logits[r * V + v]));
  std::vector<float> losses(n, -1.0f);
  cpu::softmax_cross_entropy(logits.data(), losses.data(), targets.data(), n, V, grad_scale);

  EXPECT_LT(scaled_max_error(losses, losses_ref), tolerance);
  // Gradient entries are ~grad_scale / V: measure them relative to their own norm.
  EXPECT_LT(test::norm_relative_error(logits, dlogits_ref), tolerance);
  for (size_t r = 0; r < n; ++r) {
    double row_sum = 0;
    for (size_t v = 0; v < V; ++v) row_sum += logits[r * V + v];
    // Softmax sums to one, minus the one-hot.  exp(x - lse) carries lse's fp32 rounding, relative
    // ~6e-8 |lse|, into every probability.
    double row_tolerance = grad_scale * (1e-6 + 2e-7 * row_max[r]);
    EXPECT_NEAR(row_sum, 0.0, row_tolerance) << "row " << r;
    if (targets[r] != cpu::ignore_index) continue;
    EXPECT_EQ(losses[r], 0.0f) << "ignored row " << r;
    for (size_t v = 0; v < V; ++v) ASSERT_EQ(logits[r * V + v], 0.0f) << "ignored row " << r;
  }
}

TEST_P(CrossEntropyVsReference, LossOnly) {
  const auto [n, V, spread] = GetParam();
  std::mt19937 rng(uint32_t(n * 10000 + V + 1));
  const auto logits = test::uniform(n * V, rng, -spread, spread);
  auto targets = targets_with_ignored(n, V, rng);
  std::vector<double> dlogits_ref(n * V), losses_ref(n);
  ref::softmax_cross_entropy(dlogits_ref.data(), losses_ref.data(), test::to_double(logits).data(),
                             targets.data(), n, V, 1.0);
  auto untouched = logits;
  std::vector<float> losses(n, -1.0f);
  cpu::cross_entropy_loss(losses.data(), untouched.data(), targets.data(), n, V);
  EXPECT_LT(scaled_max_error(losses, losses_ref), tolerance);
  EXPECT_EQ(untouched, logits);
  for (size_t r = 0; r < n; ++r) {
    if (targets[r] == cpu::ignore_index) {
      EXPECT_EQ(losses[r], 0.0f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CrossEntropyVsReference,
                         testing::Values(Case{70, 1000, 4.0f}, Case{70, 37, 4.0f},
                                         Case{1, 37, 1.0f}, Case{13, 1000, 60.0f},
                                         Case{9, 37, 200.0f}),
                         case_name);

TEST(CrossEntropy, UniformLogitsGiveLogV) {
  const size_t n = 3, V = 37;
  std::vector<float> logits(n * V, 0.25f), losses(n);
  std::vector<int32_t> targets = {0, 36, 5};
  cpu::softmax_cross_entropy(logits.data(), losses.data(), targets.data(), n, V, 0.5f);
  for (size_t r = 0; r < n; ++r) {
    EXPECT_NEAR(losses[r], std::log(37.0), 1e-6);
    for (size_t v = 0; v < V; ++v) {
      double want = (1.0 / 37 - (int32_t(v) == targets[r] ? 1.0 : 0.0)) * 0.5;
      EXPECT_NEAR(logits[r * V + v], want, 1e-7) << r << " " << v;
    }
  }
}

TEST(CrossEntropy, AllRowsIgnored) {
  const size_t n = 4, V = 37;
  std::mt19937 rng(4);
  auto logits = test::uniform(n * V, rng);
  std::vector<int32_t> targets(n, cpu::ignore_index);
  std::vector<float> losses(n, 7.0f);
  cpu::softmax_cross_entropy(logits.data(), losses.data(), targets.data(), n, V, 1.0f);
  EXPECT_EQ(losses, std::vector<float>(n, 0.0f));
  EXPECT_EQ(logits, std::vector<float>(n * V, 0.0f));
}

}  // namespace
}  // namespace hibari
