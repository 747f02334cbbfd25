// tests/model/llama_determinism_test.cpp — training is a function of its seed: the same seed gives
// bit-identical losses and parameters, the thread count changes results by rounding at most, and a
// different seed gives a different run.
//
// model_tests links hibari_model (and through it hibari_kernels) but not hibari_optim, so the
// optimizer step here is AdamW from its kernel (cpu::adamw_update, the kernel optim/adamw.cpp runs)
// and clipping from cpu::sum_of_squares / cpu::scale_in_place, as optim/clip.cpp does.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/threads.h"
#include "kernels/cpu/adamw.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "tests/model/tiny_config.h"

namespace hibari {
namespace {

constexpr size_t kB = 2, kT = 70;  // 70 tokens: past the 64-token attention tile
constexpr int kSteps = 3;

ModelConfig tiny_config() { return test::tiny_llama({64, 32, 48, 2, 4, 2, 8, 128, false, 1e-5}); }

// AdamW (betas 0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices) over the layout's parameters, and
// global-norm clipping: optim/adamw.cpp and optim/clip.cpp in a few lines.
struct TinyAdamW {
  std::vector<float> m, v;
  int64_t step = 0;
  explicit TinyAdamW(size_t total) : m(total, 0.0f), v(total, 0.0f) {}

  void update(Llama& model, float lr, double max_norm) {
    const size_t total = model.layout.total;
    double norm = std::sqrt(cpu::sum_of_squares(model.grads, total));
    if (norm + 1e-6 > max_norm)
      cpu::scale_in_place(model.grads, total, float(max_norm / (norm + 1e-6)));
    step += 1;
    const float bc1 = float(1.0 - std::pow(0.9, double(step)));
    const float bc2 = float(1.0 - std::pow(0.95, double(step)));
    for (const ParamInfo& p : model.layout.params) {
      cpu::AdamWStep s{.lr = lr,
                       .beta1 = 0.9f,
                       .beta2 = 0.95f,
                       .eps = 1e-8f,
                       .weight_decay = p.weight_decay ? 0.1f : 0.0f,
                       .bias_correction1 = bc1,
                       .bias_correction2 = bc2};
      cpu::adamw_update(model.params + p.offset, m.data() + p.offset, v.data() + p.offset,
                        model.grads + p.offset, p.numel, s);
    }
  }
};

struct TrainingRun {
  std::vector<float> losses;  // one per step
  std::vector<float> params;  // after the last step
};

// kSteps AdamW steps from llama_init_parameters(seed) on data that does not depend on the seed.
TrainingRun train(uint64_t seed) {
  const ModelConfig config = tiny_config();
  Llama model;
  llama_create(model, config, kB, kT);
  llama_init_parameters(model.params, model.layout, config.initializer_range, seed);
  TinyAdamW opt(model.layout.total);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, int32_t(config.vocab_size) - 1);
  std::vector<int32_t> inputs(kB * kT), targets(kB * kT);
  TrainingRun run;
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < kB * kT; ++i) {
      inputs[i] = token(rng);
      targets[i] = i % 11 == 5 ? -100 : token(rng);
    }
    llama_zero_grads(model);
    run.losses.push_back(llama_forward(model, inputs.data(), targets.data(), kB, kT, 1.0f));
    llama_backward(model);
    opt.update(model, 1e-2f, 1.0);
  }
  run.params.assign(model.params, model.params + model.layout.total);
  return run;
}

// Restores the thread count a test changed.
struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

TEST(LlamaDeterminism, SameSeedGivesBitIdenticalTraining) {
  TrainingRun a = train(42), b = train(42);
  ASSERT_EQ(a.losses.size(), size_t(kSteps));
  ASSERT_EQ(b.losses.size(), size_t(kSteps));
  for (int i = 0; i < kSteps; ++i) {
    EXPECT_TRUE(std::isfinite(a.losses[i]));
    EXPECT_EQ(std::bit_cast<uint32_t>(a.losses[i]), std::bit_cast<uint32_t>(b.losses[i]))
        << "step " << i + 1 << ": " << a.losses[i] << " vs " << b.losses[i];
  }
  ASSERT_EQ(a.params.size(), b.params.size());
  EXPECT_EQ(std::memcmp(a.params.data(), b.params.data(), a.params.size() * sizeof(float)), 0);
}

TEST(LlamaDeterminism, ThreadCountChangesOnlyRounding) {
  ThreadsGuard guard;
  set_num_threads(1);
  TrainingRun one = train(7);
  set_num_threads(2);
  TrainingRun two = train(7);
  double worst = 0;
  for (int i = 0; i < kSteps; ++i) {
    double error = std::abs(double(one.losses[i]) - double(two.losses[i])) / double(one.losses[i]);
    EXPECT_LT(error, 1e-6) << "step " << i + 1 << ": " << one.losses[i] << " (1 thread) vs "
                           << two.losses[i] << " (2 threads)";
    worst = std::max(worst, error);
  }
  std::printf("1 vs 2 threads: worst relative loss difference %.3g\n", worst);
}

TEST(LlamaDeterminism, DifferentSeedsGiveDifferentTraining) {
  TrainingRun a = train(1), b = train(2);
  for (int i = 0; i < kSteps; ++i)
    EXPECT_NE(std::bit_cast<uint32_t>(a.losses[i]), std::bit_cast<uint32_t>(b.losses[i]))
        << "step " << i + 1;
}

}  // namespace
}  // namespace hibari
