// cpu::matmul_rowwise (packed weights, one fused multiply-add per k, k ascending) against the
// reference GEMM, and bit for bit against that sum written as a plain loop; a row's bits do not
// depend on the rows around it, on the batch size (tile and row-block edges) or on the threads.
#include "kernels/cpu/rowwise_matmul.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/reference/matmul.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

// The documented order: one fused multiply-add per k, k ascending (the kernel is built with the
// same flags: where the target has no FMA instruction it rounds the product, and so does this).
float k_ordered_dot(const float* x, const float* w, size_t K) {
  float acc = 0.0f;
  for (size_t k = 0; k < K; ++k) {
#ifdef __FMA__
    acc = std::fma(x[k], w[k], acc);
#else
    const float product = x[k] * w[k];
    acc = acc + product;
#endif
  }
  return acc;
}

std::vector<float> packed(const std::vector<float>& w, size_t N, size_t K) {
  std::vector<float> p(cpu::rowwise_packed_floats(N, K), -1.0f);
  cpu::rowwise_pack(p.data(), w.data(), N, K);
  return p;
}

TEST(MatmulRowwise, PackingPadsTheLastPanelWithZeros) {
  const size_t N = 35, K = 3;
  std::vector<float> w(N * K);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i + 1);
  const std::vector<float> p = packed(w, N, K);
  ASSERT_EQ(p.size(), 64 * K);
  // panel 0, k 2, column 5 holds w[5][2]; panel 1, k 1, column 2 holds w[34][1]; then padding
  EXPECT_EQ(p[2 * 32 + 5], w[5 * K + 2]);
  EXPECT_EQ(p[32 * K + 1 * 32 + 2], w[34 * K + 1]);
  EXPECT_EQ(p[32 * K + 1 * 32 + 3], 0.0f);
}

TEST(MatmulRowwise, MatchesTheReferenceAndTheKOrderedSumBitForBit) {
  std::mt19937 rng(3);
  for (size_t K : {1, 15, 16, 17, 100}) {
    for (size_t N : {1, 5, 32, 64, 70, 131}) {
      const size_t M = 13;  // a full 12-row tile and a 1-row one
      const std::vector<float> x = test::uniform(M * K, rng), w = test::uniform(N * K, rng);
      const std::vector<float> p = packed(w, N, K);
      std::vector<float> y(M * N), ref(M * N);
      cpu::matmul_rowwise(y.data(), x.data(), p.data(), M, N, K);
      ref::gemm(ref.data(), x.data(), w.data(), M, N, K, {.transpose_b = true});
      EXPECT_LT(test::scaled_max_error(y, ref), 1e-5) << "K " << K << " N " << N;
      size_t differing = 0;
      for (size_t m = 0; m < M; ++m)
        for (size_t n = 0; n < N; ++n) {
          const float expected = k_ordered_dot(x.data() + m * K, w.data() + n * K, K);
          differing += std::memcmp(&expected, &y[m * N + n], sizeof(float)) != 0;
        }
      EXPECT_EQ(differing, 0u) << "K " << K << " N " << N;
    }
  }
}

TEST(MatmulRowwise, ARowIgnoresTheBatchAroundItAndTheThreads) {
  std::mt19937 rng(5);
  const size_t M = 203, N = 99, K = 40;  // several 96-row blocks and 12-row tiles, partial ends
  const std::vector<float> x = test::uniform(M * K, rng), w = test::uniform(N * K, rng);
  const std::vector<float> p = packed(w, N, K);
  std::vector<float> y(M * N);
  cpu::matmul_rowwise(y.data(), x.data(), p.data(), M, N, K);
  for (size_t m = 0; m < M; m += 7) {
    std::vector<float> one(N);
    cpu::matmul_rowwise(one.data(), x.data() + m * K, p.data(), 1, N, K);
    EXPECT_EQ(std::memcmp(one.data(), y.data() + m * N, N * 4), 0) << "row " << m;
  }
  for (size_t first : {3, 50, 101}) {
    std::vector<float> tail((M - first) * N);
    cpu::matmul_rowwise(tail.data(), x.data() + first * K, p.data(), M - first, N, K);
    EXPECT_EQ(std::memcmp(tail.data(), y.data() + first * N, tail.size() * 4), 0)
        << "rows from " << first;
  }
  // rows written ldo apart (into a wider buffer) and on one thread: the same bits
  const size_t ldo = N + 7;
  std::vector<float> wide(M * ldo, 0.0f);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  cpu::matmul_rowwise(wide.data(), x.data(), p.data(), M, N, K, ldo);
  omp_set_num_threads(threads);
  for (size_t m = 0; m < M; ++m)
    ASSERT_EQ(std::memcmp(wide.data() + m * ldo, y.data() + m * N, N * 4), 0) << "row " << m;
}

}  // namespace
}  // namespace hibari
