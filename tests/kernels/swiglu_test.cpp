// cpu::swiglu_forward / swiglu_backward against the reference computed in double.
#include "kernels/cpu/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/swiglu.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;

struct Shape {
  size_t N, F;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << "N=" << s.N << " F=" << s.F; }

class SwigluVsReference : public testing::TestWithParam<Shape> {};

TEST_P(SwigluVsReference, ForwardAndBackward) {
  const auto [N, F] = GetParam();
  std::mt19937 rng(uint32_t(N * 1000 + F));
  auto gate_up = test::uniform(N * 2 * F, rng, -6.0f, 6.0f);
  auto dout = test::uniform(N * F, rng);
  std::vector<float> out(N * F);
  std::vector<float> dgate_up(N * 2 * F, std::numeric_limits<float>::quiet_NaN());  // overwritten
  cpu::swiglu_forward(out.data(), gate_up.data(), N, F);
  cpu::swiglu_backward(dgate_up.data(), dout.data(), gate_up.data(), N, F);
  std::vector<double> out_ref(N * F), dgate_up_ref(N * 2 * F);
  auto gate_up_d = test::to_double(gate_up);
  ref::swiglu_forward(out_ref.data(), gate_up_d.data(), N, F);
  ref::swiglu_backward(dgate_up_ref.data(), test::to_double(dout).data(), gate_up_d.data(), N, F);
  EXPECT_LT(scaled_max_error(out, out_ref), tolerance);
  EXPECT_LT(scaled_max_error(dgate_up, dgate_up_ref), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SwigluVsReference,
                         testing::Values(Shape{1, 1}, Shape{70, 37}, Shape{4, 64}, Shape{13, 130}),
                         [](const testing::TestParamInfo<Shape>& info) {
                           return test::concat("N", info.param.N, "F", info.param.F);
                         });

TEST(Swiglu, ExtremeGates) {
  // Saturated sigmoid at both ends: silu(g) -> g for large g, -> 0 for very negative g.
  const std::vector<float> gates = {-200, -100, -88, -30, -1, 0, 1, 30, 88, 100, 200};
  const size_t F = gates.size();
  std::vector<float> gate_up(2 * F), dout(F, 1.0f);
  for (size_t i = 0; i < F; ++i) {
    gate_up[i] = gates[i];
    gate_up[F + i] = 0.5f;
  }
  std::vector<float> out(F), dgate_up(2 * F);
  cpu::swiglu_forward(out.data(), gate_up.data(), 1, F);
  cpu::swiglu_backward(dgate_up.data(), dout.data(), gate_up.data(), 1, F);
  std::vector<double> out_ref(F), dgate_up_ref(2 * F);
  ref::swiglu_forward(out_ref.data(), test::to_double(gate_up).data(), 1, F);
  ref::swiglu_backward(dgate_up_ref.data(), test::to_double(dout).data(),
                       test::to_double(gate_up).data(), 1, F);
  for (size_t i = 0; i < F; ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << gates[i];
    ASSERT_TRUE(std::isfinite(dgate_up[i])) << gates[i];
    ASSERT_TRUE(std::isfinite(dgate_up[F + i])) << gates[i];
  }
  EXPECT_LT(scaled_max_error(out, out_ref), tolerance);
  EXPECT_LT(scaled_max_error(dgate_up, dgate_up_ref), tolerance);
  EXPECT_EQ(out[5], 0.0f);              // silu(0) = 0
  EXPECT_FLOAT_EQ(dgate_up[5], 0.25f);  // dgate at 0: dh * up * 1/2
}

}  // namespace
}  // namespace hibari
