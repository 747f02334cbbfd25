// cpu::gemm (OpenBLAS) against the reference triple loop, in every transpose combination.
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/matmul.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-5;
constexpr float nan = std::numeric_limits<float>::quiet_NaN();

TEST(Gemm, KnownValues) {
  // [[1 2 3] [4 5 6]] @ [[7 8] [9 10] [11 12]] = [[58 64] [139 154]]
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8, 9, 10, 11, 12}, c(4, nan);
  cpu::gemm(c.data(), a.data(), b.data(), 2, 2, 3);
  EXPECT_EQ(c, (std::vector<float>{58, 64, 139, 154}));
  // a^T @ a, with a stored (2, 3): (3, 3).
  std::vector<float> ata(9);
  cpu::gemm(ata.data(), a.data(), a.data(), 3, 3, 2, {.transpose_a = true});
  EXPECT_EQ(ata, (std::vector<float>{17, 22, 27, 22, 29, 36, 27, 36, 45}));
  // a @ a^T: (2, 2), then accumulated once more.
  std::vector<float> aat(4);
  cpu::gemm(aat.data(), a.data(), a.data(), 2, 2, 3, {.transpose_b = true});
  EXPECT_EQ(aat, (std::vector<float>{14, 32, 32, 77}));
  cpu::gemm(aat.data(), a.data(), a.data(), 2, 2, 3, {.transpose_b = true, .accumulate = true});
  EXPECT_EQ(aat, (std::vector<float>{28, 64, 64, 154}));
}

struct GemmCase {
  size_t M, N, K;
  bool transpose_a, transpose_b, accumulate;
  size_t pad;  // extra elements per row of a, b and c beyond the packed leading dimension
};

void PrintTo(const GemmCase& g, std::ostream* os) {
  *os << "M=" << g.M << " N=" << g.N << " K=" << g.K << " transpose_a=" << g.transpose_a
      << " transpose_b=" << g.transpose_b << " accumulate=" << g.accumulate << " pad=" << g.pad;
}

std::string case_name(const testing::TestParamInfo<GemmCase>& info) {
  const GemmCase& g = info.param;
  return test::concat("M", g.M, "N", g.N, "K", g.K, g.transpose_a ? "_At" : "_A",
                      g.transpose_b ? "Bt" : "B", g.accumulate ? "_acc" : "", g.pad ? "_ld" : "",
                      g.pad ? test::concat(g.pad) : std::string());
}

class GemmVsReference : public testing::TestWithParam<GemmCase> {};

TEST_P(GemmVsReference, Matches) {
  const GemmCase& g = GetParam();
  std::mt19937 rng(1234);
  // Stored shapes: a is (M,K) or (K,M); b is (K,N) or (N,K).
  size_t a_rows = g.transpose_a ? g.K : g.M, a_cols = g.transpose_a ? g.M : g.K;
  size_t b_rows = g.transpose_b ? g.N : g.K, b_cols = g.transpose_b ? g.K : g.N;
  cpu::GemmOptions o{.transpose_a = g.transpose_a,
                     .transpose_b = g.transpose_b,
                     .accumulate = g.accumulate,
                     .lda = g.pad ? a_cols + g.pad : 0,
                     .ldb = g.pad ? b_cols + g.pad : 0,
                     .ldc = g.pad ? g.N + g.pad : 0};
  size_t lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.N + g.pad;
  // Padding of a and b is NaN: reading it would poison the result.
  std::vector<float> a(a_rows * lda, nan), b(b_rows * ldb, nan);
  auto a_values = test::uniform(a_rows * a_cols, rng),
       b_values = test::uniform(b_rows * b_cols, rng);
  for (size_t r = 0; r < a_rows; ++r)
    for (size_t k = 0; k < a_cols; ++k) a[r * lda + k] = a_values[r * a_cols + k];
  for (size_t r = 0; r < b_rows; ++r)
    for (size_t k = 0; k < b_cols; ++k) b[r * ldb + k] = b_values[r * b_cols + k];
  // c's padding holds a sentinel that must survive; without accumulate, c's old values are NaN
  // (overwrite must not read them).
  std::vector<float> c(g.M * ldc, 12345.0f);
  auto c_init = test::uniform(g.M * g.N, rng);
  for (size_t i = 0; i < g.M; ++i)
    for (size_t j = 0; j < g.N; ++j) c[i * ldc + j] = g.accumulate ? c_init[i * g.N + j] : nan;
  std::vector<double> expected(c.begin(), c.end());

  cpu::gemm(c.data(), a.data(), b.data(), g.M, g.N, g.K, o);
  ref::gemm(expected.data(), test::to_double(a).data(), test::to_double(b).data(), g.M, g.N, g.K,
            o);

  std::vector<float> got;
  std::vector<double> want;
  for (size_t i = 0; i < g.M; ++i) {
    for (size_t j = 0; j < g.N; ++j) {
      got.push_back(c[i * ldc + j]);
      want.push_back(expected[i * ldc + j]);
    }
    for (size_t j = g.N; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 12345.0f) << "row " << i;
  }
  EXPECT_LT(scaled_max_error(got, want), tolerance);
}

std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> cases;
  const size_t shapes[][3] = {{1, 1, 1}, {37, 70, 53}, {64, 64, 64}, {130, 17, 65}, {5, 129, 3}};
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc)
          cases.push_back({s[0], s[1], s[2], bool(ta), bool(tb), bool(acc), 0});
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc)
        cases.push_back({37, 70, 53, bool(ta), bool(tb), bool(acc), 7});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmVsReference, testing::ValuesIn(gemm_cases()), case_name);

// Training's three uses of a linear layer y = x W^T, W (out, in), checked as a whole.
TEST(Gemm, LinearLayerForwardAndBackward) {
  const size_t N = 70, in = 37, out = 45;
  std::mt19937 rng(7);
  auto x = test::uniform(N * in, rng), W = test::uniform(out * in, rng);
  auto dy = test::uniform(N * out, rng), dW = test::uniform(out * in, rng);
  std::vector<float> y(N * out), dx(N * in);
  std::vector<double> y_ref(N * out, 0), dx_ref(N * in, 0), dW_ref = test::to_double(dW);
  for (size_t n = 0; n < N; ++n)
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) {
        y_ref[n * out + o] += double(x[n * in + i]) * W[o * in + i];
        dx_ref[n * in + i] += double(dy[n * out + o]) * W[o * in + i];
        dW_ref[o * in + i] += double(dy[n * out + o]) * x[n * in + i];
      }
  cpu::gemm(y.data(), x.data(), W.data(), N, out, in, {.transpose_b = true});
  cpu::gemm(dx.data(), dy.data(), W.data(), N, in, out);
  cpu::gemm(dW.data(), dy.data(), x.data(), out, in, N, {.transpose_a = true, .accumulate = true});
  EXPECT_LT(scaled_max_error(y, y_ref), tolerance);
  EXPECT_LT(scaled_max_error(dx, dx_ref), tolerance);
  EXPECT_LT(scaled_max_error(dW, dW_ref), tolerance);
}

}  // namespace
}  // namespace hibari
