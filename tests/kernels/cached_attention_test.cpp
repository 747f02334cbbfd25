// cpu::cached_attention_forward (new query rows over a KV cache) against the reference causal
// attention in double (kernels/reference/attention.h) over the same tokens, for GQA, MHA and MQA
// and lengths around the 64-key block.
#include "kernels/cpu/cached_attention.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/reference/attention.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

struct Case {
  size_t B, T, NH, NKV, HD;
};

class CachedAttention : public ::testing::TestWithParam<Case> {};

TEST_P(CachedAttention, MatchesTheReferenceForEveryPosition) {
  const Case c = GetParam();
  const size_t S = (c.NH + 2 * c.NKV) * c.HD, Q = c.NH * c.HD, KV = c.NKV * c.HD, P = c.T + 3;
  std::mt19937 rng(7);
  const std::vector<float> qkv = test::uniform(c.B * c.T * S, rng, -2.0f, 2.0f);
  // reference over the whole sequences, in double
  std::vector<double> ref_out(c.B * c.T * Q), lse(c.B * c.NH * c.T);
  const std::vector<double> qkv_d = test::to_double(qkv);
  ref::attention_forward(ref_out.data(), lse.data(), qkv_d.data(),
                         cpu::AttentionShape{c.B, c.T, c.NH, c.NKV, c.HD});
  // the cache (B, NKV, P, HD) filled from the k and v rows; every token as a query row, in an order
  // that mixes sequences
  std::vector<float> k(c.B * c.NKV * P * c.HD, 1e30f), v(k.size(), 1e30f);
  for (size_t b = 0; b < c.B; ++b)
    for (size_t t = 0; t < c.T; ++t)
      for (size_t h = 0; h < c.NKV; ++h) {
        const float* row = qkv.data() + (b * c.T + t) * S;
        std::memcpy(&k[((b * c.NKV + h) * P + t) * c.HD], row + Q + h * c.HD, c.HD * 4);
        std::memcpy(&v[((b * c.NKV + h) * P + t) * c.HD], row + Q + KV + h * c.HD, c.HD * 4);
      }
  std::vector<int32_t> seq, pos;
  for (size_t t = c.T; t-- > 0;)
    for (size_t b = 0; b < c.B; ++b) {
      seq.push_back(int32_t(b));
      pos.push_back(int32_t(t));
    }
  const size_t N = seq.size();
  std::vector<float> out(N * Q, std::nanf("")), expected(N * Q);
  std::vector<float> q(N * S);
  for (size_t r = 0; r < N; ++r) {
    std::memcpy(&q[r * S], qkv.data() + (size_t(seq[r]) * c.T + size_t(pos[r])) * S, S * 4);
    for (size_t i = 0; i < Q; ++i)
      expected[r * Q + i] = float(ref_out[(size_t(seq[r]) * c.T + size_t(pos[r])) * Q + i]);
  }
  cpu::cached_attention_forward(out.data(), q.data(), S, k.data(), v.data(), seq.data(), pos.data(),
                                N, {.NH = c.NH, .NKV = c.NKV, .HD = c.HD, .P = P});
  EXPECT_LT(test::scaled_max_error(out, expected), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CachedAttention,
                         ::testing::Values(Case{2, 5, 4, 2, 8}, Case{3, 64, 4, 4, 16},
                                           Case{2, 65, 8, 1, 8}, Case{1, 150, 6, 2, 32},
                                           Case{2, 1, 2, 1, 4}));

}  // namespace
}  // namespace hibari
