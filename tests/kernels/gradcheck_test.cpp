// Finite-difference checks, in double, of every reference backward pass: the references are what
// the fast kernels are tested against, so they are themselves tested against the forward passes.
// Each objective is L = sum(out * w) with fixed random w, so dout = w.
#include "tests/kernels/gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/cross_entropy.h"
#include "kernels/reference/embedding.h"
#include "kernels/reference/rmsnorm.h"
#include "kernels/reference/rope.h"
#include "kernels/reference/swiglu.h"

namespace hibari {
namespace {

using test::gradcheck_tolerance;
using test::gradient_error;
using test::numeric_gradient;
using test::uniform_double;
using test::weighted_sum;

double norm(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return std::sqrt(s);
}

TEST(Gradcheck, DetectsAWrongGradient) {
  // L = sum(w * x^3): a gradient off by 0.1% must fail the check.
  std::mt19937 rng(1);
  auto x = uniform_double(20, rng), w = uniform_double(20, rng);
  auto loss = [&] {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += w[i] * x[i] * x[i] * x[i];
    return s;
  };
  std::vector<double> right(20), wrong(20);
  for (size_t i = 0; i < 20; ++i) {
    right[i] = 3 * w[i] * x[i] * x[i];
    wrong[i] = right[i] * (i == 7 ? 1.01 : 1.0);
  }
  auto numeric = numeric_gradient(x, loss);
  EXPECT_LT(gradient_error(right, numeric), gradcheck_tolerance);
  EXPECT_GT(gradient_error(wrong, numeric), 1e-4);
}

TEST(Gradcheck, Rmsnorm) {
  const size_t N = 3, C = 7;
  const double eps = 1e-5;
  std::mt19937 rng(2);
  auto inp = uniform_double(N * C, rng, -2, 2), weight = uniform_double(C, rng, 0.5, 1.5);
  auto w = uniform_double(N * C, rng);
  std::vector<double> out(N * C), rstd(N);
  auto loss = [&] {
    ref::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C, eps);
    return weighted_sum(out, w);
  };
  loss();
  std::vector<double> dinp(N * C, 0.0), dweight(C, 0.0);
  ref::rmsnorm_backward(dinp.data(), dweight.data(), w.data(), inp.data(), weight.data(),
                        rstd.data(), N, C);
  auto numeric_dinp = numeric_gradient(inp, loss);
  auto numeric_dweight = numeric_gradient(weight, loss);
  ASSERT_GT(norm(numeric_dinp), 0.1);
  EXPECT_LT(gradient_error(dinp, numeric_dinp), gradcheck_tolerance);
  EXPECT_LT(gradient_error(dweight, numeric_dweight), gradcheck_tolerance);
}

TEST(Gradcheck, Rope) {
  const size_t B = 2, T = 3, H = 2, HD = 6, stride = H * HD, half = HD / 2;
  std::mt19937 rng(3);
  std::vector<double> cos(T * half), sin(T * half);
  for (size_t t = 0; t < T; ++t)
    for (size_t i = 0; i < half; ++i) {
      double angle = double(t) * std::pow(10.0, -double(i)) + 0.3;
      cos[t * half + i] = std::cos(angle);
      sin[t * half + i] = std::sin(angle);
    }
  auto inp = uniform_double(B * T * stride, rng), w = uniform_double(B * T * stride, rng);
  std::vector<double> out(B * T * stride);
  auto loss = [&] {
    ref::rope_forward(out.data(), inp.data(), cos.data(), sin.data(), B, T, H, HD, stride);
    return weighted_sum(out, w);
  };
  std::vector<double> dinp(B * T * stride);
  ref::rope_backward(dinp.data(), w.data(), cos.data(), sin.data(), B, T, H, HD, stride);
  auto numeric = numeric_gradient(inp, loss);
  ASSERT_GT(norm(numeric), 0.1);
  EXPECT_LT(gradient_error(dinp, numeric), gradcheck_tolerance);
}

TEST(Gradcheck, AttentionGroupedQuery) {
  const cpu::AttentionShape sh{.B = 2, .T = 5, .NH = 4, .NKV = 2, .HD = 3};
  const size_t S = (sh.NH + 2 * sh.NKV) * sh.HD, O = sh.NH * sh.HD;
  std::mt19937 rng(4);
  auto qkv = uniform_double(sh.B * sh.T * S, rng, -1.5, 1.5);
  auto w = uniform_double(sh.B * sh.T * O, rng);
  std::vector<double> out(sh.B * sh.T * O), lse(sh.B * sh.NH * sh.T);
  auto loss = [&] {
    ref::attention_forward(out.data(), lse.data(), qkv.data(), sh);
    return weighted_sum(out, w);
  };
  loss();
  std::vector<double> dqkv(qkv.size());
  ref::attention_backward(dqkv.data(), w.data(), qkv.data(), lse.data(), sh);
  auto numeric = numeric_gradient(qkv, loss);
  EXPECT_LT(gradient_error(dqkv, numeric), gradcheck_tolerance);
  // And each of dq, dk, dv on its own, each non-trivial.
  const char* name[] = {"dq", "dk", "dv"};
  for (size_t part = 0; part < 3; ++part) {
    size_t begin = part == 0 ? 0 : part == 1 ? sh.NH * sh.HD : (sh.NH + sh.NKV) * sh.HD;
    size_t end = part == 0 ? sh.NH * sh.HD : part == 1 ? (sh.NH + sh.NKV) * sh.HD : S;
    std::vector<double> a, n;
    for (size_t r = 0; r < sh.B * sh.T; ++r)
      for (size_t i = begin; i < end; ++i) {
        a.push_back(dqkv[r * S + i]);
        n.push_back(numeric[r * S + i]);
      }
    ASSERT_GT(norm(n), 0.01) << name[part];
    EXPECT_LT(gradient_error(a, n), gradcheck_tolerance) << name[part];
  }
}

TEST(Gradcheck, Swiglu) {
  const size_t N = 3, F = 5;
  std::mt19937 rng(5);
  auto gate_up = uniform_double(N * 2 * F, rng, -4, 4), w = uniform_double(N * F, rng);
  std::vector<double> out(N * F);
  auto loss = [&] {
    ref::swiglu_forward(out.data(), gate_up.data(), N, F);
    return weighted_sum(out, w);
  };
  std::vector<double> dgate_up(N * 2 * F);
  ref::swiglu_backward(dgate_up.data(), w.data(), gate_up.data(), N, F);
  auto numeric = numeric_gradient(gate_up, loss);
  ASSERT_GT(norm(numeric), 0.1);
  EXPECT_LT(gradient_error(dgate_up, numeric), gradcheck_tolerance);
}

TEST(Gradcheck, SoftmaxCrossEntropy) {
  // L = sum_r w_r loss_r: row r's gradient is its softmax - onehot scaled by w_r (grad_scale).
  const size_t n = 4, V = 7;
  std::mt19937 rng(6);
  auto logits = uniform_double(n * V, rng, -3, 3), w = uniform_double(n, rng);
  const std::vector<int32_t> targets = {2, -100, 6, 0};
  std::vector<double> losses(n), scratch(n * V);
  auto loss = [&] {
    ref::softmax_cross_entropy(scratch.data(), losses.data(), logits.data(), targets.data(), n, V,
                               1.0);
    return weighted_sum(losses, w);
  };
  std::vector<double> dlogits(n * V);
  for (size_t r = 0; r < n; ++r) {
    double row_loss;
    ref::softmax_cross_entropy(dlogits.data() + r * V, &row_loss, logits.data() + r * V,
                               targets.data() + r, 1, V, w[r]);
  }
  auto numeric = numeric_gradient(logits, loss);
  ASSERT_GT(norm(numeric), 0.1);
  EXPECT_LT(gradient_error(dlogits, numeric), gradcheck_tolerance);
  for (size_t v = 0; v < V; ++v) EXPECT_EQ(dlogits[1 * V + v], 0.0);  // the ignored row
}

TEST(Gradcheck, Embedding) {
  const size_t N = 6, C = 3, V = 4;
  std::mt19937 rng(7);
  const std::vector<int32_t> tokens = {1, 3, 1, 0, 1, 3};  // 2 unused, 1 three times
  auto wte = uniform_double(V * C, rng), w = uniform_double(N * C, rng);
  std::vector<double> out(N * C);
  auto loss = [&] {
    ref::embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
    return weighted_sum(out, w);
  };
  std::vector<double> dwte(V * C, 0.0);
  ref::embedding_backward(dwte.data(), w.data(), tokens.data(), N, C);
  auto numeric = numeric_gradient(wte, loss);
  ASSERT_GT(norm(numeric), 0.1);
  EXPECT_LT(gradient_error(dwte, numeric), gradcheck_tolerance);
}

}  // namespace
}  // namespace hibari
