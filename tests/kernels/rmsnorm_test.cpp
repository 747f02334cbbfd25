// cpu::rmsnorm_forward / rmsnorm_backward against the reference (computed in double).
#include "kernels/cpu/rmsnorm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/rmsnorm.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;
constexpr float eps = 1e-5f;

struct Shape {
  size_t N, C;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << "N=" << s.N << " C=" << s.C; }

class RmsnormVsReference : public testing::TestWithParam<Shape> {};

TEST_P(RmsnormVsReference, Forward) {
  const auto [N, C] = GetParam();
  std::mt19937 rng(uint32_t(N * 1000 + C));
  auto inp = test::uniform(N * C, rng, -3.0f, 3.0f), weight = test::uniform(C, rng, 0.5f, 1.5f);
  std::vector<float> out(N * C), rstd(N);
  std::vector<double> out_ref(N * C), rstd_ref(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C, eps);
  ref::rmsnorm_forward(out_ref.data(), rstd_ref.data(), test::to_double(inp).data(),
                       test::to_double(weight).data(), N, C, double(eps));
  EXPECT_LT(scaled_max_error(out, out_ref), tolerance);
  // rstd can exceed one; compare it relatively.
  for (size_t n = 0; n < N; ++n) EXPECT_NEAR(rstd[n], rstd_ref[n], tolerance * rstd_ref[n]);
}

TEST_P(RmsnormVsReference, BackwardAccumulates) {
  const auto [N, C] = GetParam();
  std::mt19937 rng(uint32_t(N * 1000 + C + 1));
  auto inp = test::uniform(N * C, rng, -3.0f, 3.0f), weight = test::uniform(C, rng, 0.5f, 1.5f);
  auto dout = test::uniform(N * C, rng);
  // Both gradients start non-zero: dinp holds the residual stream's gradient, dweight an earlier
  // micro-batch's.
  auto dinp = test::uniform(N * C, rng), dweight = test::uniform(C, rng);
  auto dinp_ref = test::to_double(dinp), dweight_ref = test::to_double(dweight);
  std::vector<float> out(N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C, eps);
  cpu::rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), weight.data(),
                        rstd.data(), N, C);
  std::vector<double> out_ref(N * C), rstd_ref(N);
  auto inp_d = test::to_double(inp), weight_d = test::to_double(weight);
  ref::rmsnorm_forward(out_ref.data(), rstd_ref.data(), inp_d.data(), weight_d.data(), N, C,
                       double(eps));
  ref::rmsnorm_backward(dinp_ref.data(), dweight_ref.data(), test::to_double(dout).data(),
                        inp_d.data(), weight_d.data(), rstd_ref.data(), N, C);
  EXPECT_LT(scaled_max_error(dinp, dinp_ref), tolerance);
  EXPECT_LT(scaled_max_error(dweight, dweight_ref), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsnormVsReference,
                         testing::Values(Shape{1, 1}, Shape{70, 37}, Shape{3, 64}, Shape{17, 130},
                                         Shape{2, 1000}),
                         [](const testing::TestParamInfo<Shape>& info) {
                           return test::concat("N", info.param.N, "C", info.param.C);
                         });

TEST(Rmsnorm, KnownValues) {
  // x = [3, 4]: mean(x^2) = 12.5, rstd = 1/sqrt(12.5 + eps).
  std::vector<float> inp = {3, 4}, weight = {1, 2}, out(2), rstd(1);
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), 1, 2, 0.0f);
  EXPECT_FLOAT_EQ(rstd[0], float(1 / std::sqrt(12.5)));
  EXPECT_FLOAT_EQ(out[0], float(3 / std::sqrt(12.5)));
  EXPECT_FLOAT_EQ(out[1], float(8 / std::sqrt(12.5)));
}

TEST(Rmsnorm, DweightIsIndependentOfThreadCount) {
  const size_t N = 300, C = 70;
  std::mt19937 rng(3);
  auto inp = test::uniform(N * C, rng, -3.0f, 3.0f), weight = test::uniform(C, rng);
  auto dout = test::uniform(N * C, rng);
  std::vector<float> out(N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C, eps);
  test::SavedThreadCount saved_threads;
  std::vector<float> dinp1(N * C), dw1(C), dinp2(N * C), dw2(C);
  omp_set_num_threads(1);
  cpu::rmsnorm_backward(dinp1.data(), dw1.data(), dout.data(), inp.data(), weight.data(),
                        rstd.data(), N, C);
  omp_set_num_threads(2);
  cpu::rmsnorm_backward(dinp2.data(), dw2.data(), dout.data(), inp.data(), weight.data(),
                        rstd.data(), N, C);
  EXPECT_EQ(dw1, dw2);  // bit for bit
  EXPECT_EQ(dinp1, dinp2);
}

}  // namespace
}  // namespace hibari
