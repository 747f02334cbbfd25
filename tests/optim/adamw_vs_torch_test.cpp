// tests/optim/adamw_vs_torch_test.cpp — 20 training steps of hibari against the same 20 steps of
// PyTorch (tests/reference/llama_torch.py train): torch.optim.AdamW with weight decay on matrices
// only, torch.nn.utils.clip_grad_norm_, the warmup + cosine schedule of optim/schedule.h, and
// gradient accumulation over 2 micro-batches weighted 1/2 each.  Both sides run in float32, so the
// comparison is of two float32 trainings from the same initial weights and data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "tests/reference/torch_fixture.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

// Tied embeddings, GQA, llama3 rope scaling: every parameter kind and the tied head's two
// gradient paths go through the optimizer.
constexpr const char* kConfig = R"({
  "model_type": "llama", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 40,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
  "tie_word_embeddings": true, "hidden_act": "silu"
})";

TEST(AdamWVsTorch, TwentyStepsMatchTorchAdamW) {
  constexpr int steps = 20, micro = 2, seed = 5;
  constexpr size_t B = 2, T = 40;
  // The schedule and clipping threshold, given to both sides.  With max_norm 1 the gradient is
  // clipped in the first steps (norms about 1.2 to 1.4) and not later (about 0.8), so both branches
  // of the clipping run.
  LrSchedule schedule{
      .lr = 1e-2, .min_lr = 1e-3, .warmup_steps = 4, .decay_steps = 16, .decay = LrDecay::cosine};
  const double max_norm = 1.0;
  const AdamWConfig adamw{.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};

  test::ScratchDir dir("adamw_vs_torch");
  const fs::path config_path = dir.path / "config.json";
  const fs::path fixture_path = dir.path / "fixture.safetensors";
  std::ofstream(config_path) << kConfig;
  char args[512];
  std::snprintf(args, sizeof args,
                " --seed %d --batch %zu --seq %zu --steps %d --micro %d --lr %.17g --min-lr %.17g"
                " --warmup %lld --decay-steps %lld --max-norm %.17g --weight-decay %.9g",
                seed, B, T, steps, micro, schedule.lr, schedule.min_lr,
                static_cast<long long>(schedule.warmup_steps),
                static_cast<long long>(schedule.decay_steps), max_norm, double(adamw.weight_decay));
  if (!test::run_llama_torch("train", config_path, fixture_path, args)) return;
  SafeTensorsFile fixture = safetensors_read(fixture_path.string());

  ModelConfig config = load_model_config(config_path.string());
  Llama model;
  llama_create(model, config, B, T);
  test::load_params(model, fixture, "init.");
  std::vector<ParamRange> ranges;
  for (const ParamInfo& p : model.layout.params)
    ranges.push_back({p.offset, p.numel, p.weight_decay});
  AdamW opt;
  adamw_create(opt, adamw, ranges, model.layout.total);

  std::vector<int64_t> inputs = fixture.read_i64("inputs");    // (steps, micro, B, T)
  std::vector<int64_t> targets = fixture.read_i64("targets");  // (steps, micro, B, T)
  ASSERT_EQ(inputs.size(), size_t(steps * micro) * B * T);
  ASSERT_EQ(targets.size(), inputs.size());
  std::vector<double> ref_losses = test::read_f64(fixture, "losses");
  std::vector<double> ref_norms = test::read_f64(fixture, "grad_norms");
  std::vector<double> ref_lrs = test::read_f64(fixture, "lrs");
  std::vector<int64_t> ref_clipped = fixture.read_i64("clipped");
  ASSERT_EQ(ref_losses.size(), size_t(steps));
  ASSERT_EQ(ref_norms.size(), size_t(steps));
  ASSERT_EQ(ref_lrs.size(), size_t(steps));
  ASSERT_EQ(ref_clipped.size(), size_t(steps));

  double worst_loss = 0, worst_norm = 0;
  int clipped_steps = 0;
  std::vector<int32_t> in(B * T), tg(B * T);
  for (int step = 0; step < steps; ++step) {
    llama_zero_grads(model);
    double loss = 0;
    for (int m = 0; m < micro; ++m) {
      size_t base = size_t(step * micro + m) * B * T;
      for (size_t i = 0; i < B * T; ++i) {
        in[i] = int32_t(inputs[base + i]);
        tg[i] = int32_t(targets[base + i]);
      }
      loss += llama_forward(model, in.data(), tg.data(), B, T, 1.0f / micro);
      llama_backward(model);
    }
    loss /= micro;
    double norm = clip_grad_norm(model.grads, model.layout.total, max_norm);
    double lr = learning_rate(schedule, step + 1);
    adamw_step(opt, model.params, model.grads, float(lr));

    // relative errors: the loss is about 2 to 4, the norm about 1
    double loss_error = std::abs(loss - ref_losses[step]) / std::abs(ref_losses[step]);
    double norm_error = std::abs(norm - ref_norms[step]) / ref_norms[step];
    EXPECT_LT(loss_error, 1e-4) << "step " << step + 1 << ": loss " << loss << ", torch "
                                << ref_losses[step];
    EXPECT_LT(norm_error, 1e-4) << "step " << step + 1 << ": gradient norm " << norm << ", torch "
                                << ref_norms[step];
    EXPECT_NEAR(lr, ref_lrs[step], 1e-12 * schedule.lr) << "step " << step + 1;
    EXPECT_EQ(max_norm / (norm + 1e-6) < 1.0, ref_clipped[step] != 0) << "step " << step + 1;
    worst_loss = std::max(worst_loss, loss_error);
    worst_norm = std::max(worst_norm, norm_error);
    clipped_steps += int(ref_clipped[step]);
  }
  // The fixture must exercise both sides of the clipping, and training must have learned something
  // (the targets are a function of the inputs).
  EXPECT_GT(clipped_steps, 0);
  EXPECT_LT(clipped_steps, steps);
  EXPECT_LT(ref_losses.back(), ref_losses.front() - 0.5);

  const test::WorstParam worst_param =
      test::expect_params_near(model, model.params, fixture, "final.", 1e-4);
  std::printf(
      "%d steps (%d clipped): worst loss error %.3g, worst grad-norm error %.3g, worst final "
      "parameter error %.3g (%s); loss %.6g -> %.6g\n",
      steps, clipped_steps, worst_loss, worst_norm, worst_param.error, worst_param.name.c_str(),
      ref_losses.front(), ref_losses.back());
}

}  // namespace
}  // namespace hibari
