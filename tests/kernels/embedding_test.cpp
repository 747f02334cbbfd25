// cpu::embedding_forward / embedding_backward against the reference lookup and scatter.
#include "kernels/cpu/embedding.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/reference/embedding.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

constexpr double tolerance = 1e-5;

std::vector<int32_t> random_tokens(size_t N, int32_t V, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> dist(0, V - 1);
  std::vector<int32_t> tokens(N);
  for (int32_t& t : tokens) t = dist(rng);
  return tokens;
}

TEST(Embedding, ForwardCopiesRows) {
  for (size_t C : {1, 37, 64, 130}) {
    const size_t N = 70, V = 11;
    std::mt19937 rng{uint32_t(C)};
    auto wte = test::uniform(V * C, rng);
    auto tokens = random_tokens(N, V, rng);
    std::vector<float> out(N * C, -1.0f), expected(N * C);
    cpu::embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
    ref::embedding_forward(expected.data(), tokens.data(), wte.data(), N, C);
    EXPECT_EQ(out, expected) << "C=" << C;  // a copy: exact
  }
}

TEST(Embedding, BackwardAccumulatesRepeatedTokens) {
  for (size_t C : {1, 37, 64, 130}) {
    const size_t N = 70, V = 11;  // 70 tokens over 11 ids: every id repeats
    std::mt19937 rng(100 + uint32_t(C));
    auto tokens = random_tokens(N, V, rng);
    tokens[0] = tokens[1] = tokens[N - 1] = 3;
    auto dout = test::uniform(N * C, rng);
    auto dwte = test::uniform(V * C, rng);  // accumulates into the existing gradient
    auto expected = test::to_double(dwte);
    cpu::embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
    ref::embedding_backward(expected.data(), test::to_double(dout).data(), tokens.data(), N, C);
    EXPECT_LT(test::scaled_max_error(dwte, expected), tolerance) << "C=" << C;
  }
}

TEST(Embedding, BackwardLeavesUnusedRowsAlone) {
  const size_t N = 5, C = 37, V = 9;
  std::mt19937 rng(5);
  std::vector<int32_t> tokens = {2, 2, 7, 2, 0};
  auto dout = test::uniform(N * C, rng);
  auto dwte = test::uniform(V * C, rng);
  auto before = dwte;
  cpu::embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
  for (size_t v : {1, 3, 4, 5, 6, 8})
    for (size_t c = 0; c < C; ++c) EXPECT_EQ(dwte[v * C + c], before[v * C + c]);
  for (size_t c = 0; c < C; ++c) {
    // Row 2 gets three contributions, summed in token order.
    float want = before[2 * C + c];
    want += dout[0 * C + c];
    want += dout[1 * C + c];
    want += dout[3 * C + c];
    EXPECT_FLOAT_EQ(dwte[2 * C + c], want);
    EXPECT_FLOAT_EQ(dwte[7 * C + c], before[7 * C + c] + dout[2 * C + c]);
  }
}

TEST(Embedding, BackwardIsIndependentOfThreadCount) {
  const size_t N = 300, C = 70, V = 7;
  std::mt19937 rng(9);
  auto tokens = random_tokens(N, V, rng);
  auto dout = test::uniform(N * C, rng, -100.0f, 100.0f);
  auto init = test::uniform(V * C, rng);
  test::SavedThreadCount saved_threads;
  std::vector<float> one = init, two = init;
  omp_set_num_threads(1);
  cpu::embedding_backward(one.data(), dout.data(), tokens.data(), N, C);
  omp_set_num_threads(2);
  cpu::embedding_backward(two.data(), dout.data(), tokens.data(), N, C);
  EXPECT_EQ(one, two);  // bit for bit
}

}  // namespace
}  // namespace hibari
