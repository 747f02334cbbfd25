// cpu::adamw_update against the reference torch.optim.AdamW formula; sum_of_squares and
// scale_in_place against plain loops.
#include "kernels/cpu/adamw.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/reference/adamw.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;

// max|a - b| / max|b|: the moments are far below one, so the floor of scaled_max_error would make
// the check absolute and loose.
double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double d = std::abs(double(a[i]) - b[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

TEST(AdamW, TrajectoryMatchesReference) {
  for (float weight_decay : {0.0f, 0.1f}) {
    const size_t n = 1037;
    std::mt19937 rng(21);
    auto param = test::uniform(n, rng);
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    auto param_ref = test::to_double(param);
    std::vector<double> m_ref(n, 0.0), v_ref(n, 0.0);
    for (int step = 1; step <= 20; ++step) {
      auto grad = test::uniform(n, rng, -0.1f, 0.1f);
      grad[0] = 0.0f;  // a parameter without gradient still decays
      auto s = ref::adamw_step(1e-3f, 0.9f, 0.95f, 1e-8f, weight_decay, step);
      cpu::adamw_update(param.data(), m.data(), v.data(), grad.data(), n, s);
      ref::adamw_update(param_ref.data(), m_ref.data(), v_ref.data(), test::to_double(grad).data(),
                        n, s);
    }
    EXPECT_LT(scaled_max_error(param, param_ref), tolerance) << "wd=" << weight_decay;
    EXPECT_LT(relative_error(m, m_ref), tolerance) << "wd=" << weight_decay;
    EXPECT_LT(relative_error(v, v_ref), tolerance) << "wd=" << weight_decay;
  }
}

TEST(AdamW, FirstStepMovesByLrTimesSign) {
  // Step 1 from zero moments: m_hat = g and v_hat = g^2, so p -= lr g / (|g| + eps).
  const float lr = 0.01f, wd = 0.1f, eps = 1e-8f;
  std::vector<float> param = {1.0f, -2.0f, 0.5f, 3.0f}, grad = {0.3f, -0.02f, 0.0f, 1e-3f};
  std::vector<float> m(4, 0.0f), v(4, 0.0f);
  const auto original = param;
  cpu::adamw_update(param.data(), m.data(), v.data(), grad.data(), 4,
                    ref::adamw_step(lr, 0.9f, 0.999f, eps, wd, 1));
  for (size_t i = 0; i < 4; ++i) {
    double g = grad[i];
    double want = original[i] * (1 - double(lr) * wd) - lr * g / (std::abs(g) + eps);
    EXPECT_NEAR(param[i], want, 1e-6) << i;
    EXPECT_NEAR(m[i], 0.1 * g, 1e-7 * std::abs(g)) << i;
    EXPECT_NEAR(v[i], 0.001 * g * g, 1e-6 * g * g) << i;
  }
}

TEST(SumOfSquares, MatchesDoubleLoop) {
  // Sizes around the 16384-element block, and several blocks.
  for (size_t n : {0, 1, 37, 16383, 16384, 16385, 5 * 16384 + 7}) {
    std::mt19937 rng{uint32_t(n)};
    auto x = test::uniform(n, rng, -3.0f, 3.0f);
    double want = ref::sum_of_squares(x.data(), n);
    double got = cpu::sum_of_squares(x.data(), n);
    EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, want)) << "n=" << n;
  }
  std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f};
  EXPECT_EQ(cpu::sum_of_squares(x.data(), 4), 14.25);
  // Squares accumulate in double: values whose squares overflow float still sum correctly.
  std::vector<float> big(100003, 3.0e19f);  // squares overflow float, not double
  EXPECT_NEAR(cpu::sum_of_squares(big.data(), big.size()),
              100003 * double(3.0e19f) * double(3.0e19f), 1e-12 * 100003 * 9e38);
}

TEST(SumOfSquares, IndependentOfThreadCount) {
  // Eight blocks whose partial sums span twelve orders of magnitude, so adding them in another
  // order changes the rounding; repeated, since the order of an unordered reduction varies by run.
  const size_t block = 16384, n = 8 * block + 123;
  std::mt19937 rng(23);
  auto x = test::uniform(n, rng, -5.0f, 5.0f);
  for (size_t i = 0; i < n; ++i) x[i] *= std::pow(10.0f, float(i / block % 4) * 1.5f);
  test::SavedThreadCount saved_threads;
  omp_set_num_threads(1);
  const double one = cpu::sum_of_squares(x.data(), n);
  for (int repeat = 0; repeat < 20; ++repeat) {
    for (int threads : {2, 3, 4}) {
      omp_set_num_threads(threads);
      ASSERT_EQ(cpu::sum_of_squares(x.data(), n), one) << threads << " threads";  // bit for bit
    }
  }
  EXPECT_NEAR(one, ref::sum_of_squares(x.data(), n), 1e-12 * one);
}

TEST(ScaleInPlace, MultipliesEveryElement) {
  for (size_t n : {0, 1, 37, 1000}) {
    std::mt19937 rng(uint32_t(n) + 24);
    auto x = test::uniform(n, rng, -10.0f, 10.0f);
    auto want = x;
    for (float& w : want) w *= 0.37f;
    cpu::scale_in_place(x.data(), n, 0.37f);
    EXPECT_EQ(x, want) << "n=" << n;  // one multiply: exact
  }
}

}  // namespace
}  // namespace hibari
