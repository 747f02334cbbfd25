// cpu::attention_forward / attention_backward (tiled, online softmax) against the reference full
// softmax computed in double, across head layouts (GQA, MHA, MQA) and lengths around the 64 tile.
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/reference/attention.h"
#include "tests/kernels/test_util.h"

namespace hibari {
namespace {

using test::scaled_max_error;

constexpr double tolerance = 1e-4;

// Forward and backward of qkv (upstream gradient dout) by the kernel, in float, and by the
// reference, in double.  The kernel's outputs start as NaN: every entry must be written.
struct Results {
  std::vector<float> out, lse, dqkv;
  std::vector<double> out_ref, lse_ref, dqkv_ref;
};

Results run_both(const std::vector<float>& qkv, const std::vector<float>& dout,
                 const cpu::AttentionShape& sh) {
  const size_t BT = sh.B * sh.T, S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Results r{.out = std::vector<float>(BT * O, nan),
            .lse = std::vector<float>(sh.B * sh.NH * sh.T, nan),
            .dqkv = std::vector<float>(BT * S, nan),
            .out_ref = std::vector<double>(BT * O),
            .lse_ref = std::vector<double>(sh.B * sh.NH * sh.T),
            .dqkv_ref = std::vector<double>(BT * S)};
  cpu::attention_forward(r.out.data(), r.lse.data(), qkv.data(), sh);
  cpu::attention_backward(r.dqkv.data(), dout.data(), qkv.data(), r.out.data(), r.lse.data(), sh);
  const auto qkv_d = test::to_double(qkv);
  ref::attention_forward(r.out_ref.data(), r.lse_ref.data(), qkv_d.data(), sh);
  ref::attention_backward(r.dqkv_ref.data(), test::to_double(dout).data(), qkv_d.data(),
                          r.lse_ref.data(), sh);
  return r;
}

struct Heads {
  size_t NH, NKV;
};

void PrintTo(const Heads& h, std::ostream* os) { *os << "NH=" << h.NH << " NKV=" << h.NKV; }

using AttentionCase = std::tuple<Heads, size_t /*T*/, size_t /*HD*/>;

class AttentionVsReference : public testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionVsReference, ForwardAndBackward) {
  const auto [heads, T, HD] = GetParam();
  const cpu::AttentionShape sh{.B = 2, .T = T, .NH = heads.NH, .NKV = heads.NKV, .HD = HD};
  const size_t S = (sh.NH + 2 * sh.NKV) * HD, O = sh.NH * HD;
  std::mt19937 rng(uint32_t(T * 1000 + HD * 10 + heads.NH + heads.NKV));
  auto qkv = test::uniform(sh.B * T * S, rng, -2.0f, 2.0f);
  auto dout = test::uniform(sh.B * T * O, rng);

  const auto [out, lse, dqkv, out_ref, lse_ref, dqkv_ref] = run_both(qkv, dout, sh);

  EXPECT_LT(scaled_max_error(out, out_ref), tolerance);
  EXPECT_LT(scaled_max_error(lse, lse_ref), tolerance);
  EXPECT_LT(scaled_max_error(dqkv, dqkv_ref), tolerance);
  // Relative on each part separately too, so a wrong dq cannot hide behind a large dv.
  for (size_t part = 0; part < 3; ++part) {
    size_t begin = part == 0 ? 0 : part == 1 ? sh.NH * HD : (sh.NH + sh.NKV) * HD;
    size_t end = part == 0 ? sh.NH * HD : part == 1 ? (sh.NH + sh.NKV) * HD : S;
    std::vector<float> got;
    std::vector<double> want;
    for (size_t r = 0; r < sh.B * T; ++r)
      for (size_t i = begin; i < end; ++i) {
        got.push_back(dqkv[r * S + i]);
        want.push_back(dqkv_ref[r * S + i]);
      }
    const char* name[] = {"dq", "dk", "dv"};
    EXPECT_LT(test::norm_relative_error(got, want), tolerance) << name[part];
  }
}

std::string case_name(const testing::TestParamInfo<AttentionCase>& info) {
  const auto [heads, T, HD] = info.param;
  return test::concat("NH", heads.NH, "NKV", heads.NKV, "T", T, "HD", HD);
}

INSTANTIATE_TEST_SUITE_P(Layouts, AttentionVsReference,
                         testing::Combine(testing::Values(Heads{4, 2}, Heads{2, 2}, Heads{4, 1}),
                                          testing::Values(size_t(1), size_t(63), size_t(64),
                                                          size_t(65), size_t(130)),
                                          testing::Values(size_t(16), size_t(64))),
                         case_name);

TEST(Attention, FirstTokenAttendsOnlyToItself) {
  // T = 1 per sequence: softmax over one key is 1, so out = v and lse = q.k / sqrt(HD).
  const cpu::AttentionShape sh{.B = 3, .T = 1, .NH = 2, .NKV = 1, .HD = 16};
  const size_t S = 4 * 16;
  std::mt19937 rng(11);
  auto qkv = test::uniform(sh.B * S, rng);
  std::vector<float> out(sh.B * 2 * 16), lse(sh.B * 2);
  cpu::attention_forward(out.data(), lse.data(), qkv.data(), sh);
  for (size_t b = 0; b < sh.B; ++b)
    for (size_t h = 0; h < 2; ++h) {
      double dot = 0;
      for (size_t d = 0; d < 16; ++d) {
        dot += double(qkv[b * S + h * 16 + d]) * qkv[b * S + 32 + d];
        EXPECT_FLOAT_EQ(out[(b * 2 + h) * 16 + d], qkv[b * S + 48 + d]);
      }
      EXPECT_NEAR(lse[b * 2 + h], dot / 4, 1e-6);
    }
}

TEST(Attention, LargeScoresStayFinite) {
  // Scores beyond 88, where exp overflows in fp32 without the running max.
  const cpu::AttentionShape sh{.B = 1, .T = 70, .NH = 2, .NKV = 1, .HD = 16};
  const size_t S = 4 * 16, O = 2 * 16;
  std::mt19937 rng(12);
  auto qkv = test::uniform(sh.T * S, rng, -12.0f, 12.0f);
  auto dout = test::uniform(sh.T * O, rng);
  const auto [out, lse, dqkv, out_ref, lse_ref, dqkv_ref] = run_both(qkv, dout, sh);
  // lse reaches the hundreds (the case must reach past fp32 exp's range): compare it relatively.
  EXPECT_GT(*std::max_element(lse_ref.begin(), lse_ref.end()), 88.0);
  double lse_err = 0;
  for (size_t i = 0; i < lse.size(); ++i)
    lse_err =
        std::max(lse_err, std::abs(lse[i] - lse_ref[i]) / std::max(1.0, std::abs(lse_ref[i])));
  EXPECT_LT(lse_err, tolerance);
  EXPECT_LT(scaled_max_error(out, out_ref), tolerance);
  // Peaked softmax: the gradients are large and sensitive; use a norm-relative measure.
  EXPECT_LT(test::norm_relative_error(dqkv, dqkv_ref), tolerance);
}

}  // namespace
}  // namespace hibari
