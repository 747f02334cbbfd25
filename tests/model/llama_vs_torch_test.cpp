// tests/model/llama_vs_torch_test.cpp — hibari's Llama forward and backward against an independent
// PyTorch Llama (tests/reference/llama_torch.py, written from Hugging Face's LlamaForCausalLM).
// The script draws random weights and a batch, computes the loss and every gradient in float64
// from the float32-rounded weights, and writes them to a safetensors fixture; this test loads the
// same weights into hibari (float32) and compares.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "tests/reference/torch_fixture.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

struct Case {
  const char* name;
  const char* config;  // config.json text
  size_t B, T;
  int seed;
  double std;  // of the random matrix weights
};

// (i) GQA (4 query heads on 2 kv heads), untied head, plain rope.
constexpr const char* kGqaConfig = R"({
  "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "rope_scaling": null, "tie_word_embeddings": false, "hidden_act": "silu"
})";

// (ii) tied embeddings, one kv head for four query heads, Llama-3 rope scaling over 40 tokens
// (original context 16): with head_dim 8, frequency 0 lies in the smoothed band (wavelength 2 pi
// between 16/4 and 16/1) and frequencies 1..3 are divided by the factor.
constexpr const char* kTiedLlama3Config = R"({
  "model_type": "llama", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 40,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
  "tie_word_embeddings": true, "hidden_act": "silu"
})";

// (iii) MHA over 70 tokens (past hibari's 64-token attention tile) and 4 x 70 = 280 tokens (past
// its 256-token vocabulary-head chunk), 3 layers, head_dim 8 from an explicit "head_dim" with
// 24 = 3 x 8 hidden; llama3 scaling whose three bands are all populated (theta 10000: wavelengths
// 6.3, 63, 628, 6283 against 64/8 = 8 and 64/1 = 64).
constexpr const char* kLongConfig = R"({
  "model_type": "llama", "vocab_size": 40, "hidden_size": 24, "intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 8,
  "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 8.0, "original_max_position_embeddings": 64},
  "tie_word_embeddings": false, "hidden_act": "silu"
})";

// gtest names a failing case by this rather than by its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class LlamaVsTorchTest : public ::testing::TestWithParam<Case> {};

TEST_P(LlamaVsTorchTest, LossAndGradientsMatchFloat64Reference) {
  const Case& c = GetParam();
  test::ScratchDir dir(std::string("llama_vs_torch_") + c.name);
  const fs::path config_path = dir.path / "config.json";
  const fs::path fixture_path = dir.path / "fixture.safetensors";
  std::ofstream(config_path) << c.config;

  if (!test::run_llama_torch("grad", config_path, fixture_path,
                             " --seed " + std::to_string(c.seed) + " --batch " +
                                 std::to_string(c.B) + " --seq " + std::to_string(c.T) + " --std " +
                                 std::to_string(c.std)))
    return;
  SafeTensorsFile fixture = safetensors_read(fixture_path.string());

  ModelConfig config = load_model_config(config_path.string());
  Llama model;
  llama_create(model, config, c.B, c.T);
  test::load_params(model, fixture, "");
  std::vector<int32_t> inputs = test::read_i32(fixture, "inputs");
  std::vector<int32_t> targets = test::read_i32(fixture, "targets");
  ASSERT_EQ(inputs.size(), c.B * c.T);
  ASSERT_EQ(targets.size(), c.B * c.T);

  llama_zero_grads(model);
  float loss = llama_forward(model, inputs.data(), targets.data(), c.B, c.T, 1.0f);
  llama_backward(model);

  const double ref_loss = test::read_f64_scalar(fixture, "loss");
  const double loss_error = std::abs(double(loss) - ref_loss) / std::abs(ref_loss);
  EXPECT_LT(loss_error, 1e-5) << "loss " << loss << ", reference " << ref_loss;

  const test::WorstParam worst =
      test::expect_params_near(model, model.grads, fixture, "grad.", 1e-4);
  std::printf(
      "[%s] loss %.9g (reference %.12g, relative error %.3g); worst gradient error %.3g (%s)\n",
      c.name, double(loss), ref_loss, loss_error, worst.error, worst.name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Configs, LlamaVsTorchTest,
                         ::testing::Values(Case{"gqa", kGqaConfig, 2, 24, 1, 0.02},
                                           Case{"tied_llama3", kTiedLlama3Config, 2, 40, 2, 0.02},
                                           // larger weights: sharper attention, bigger gradients
                                           Case{"long", kLongConfig, 4, 70, 3, 0.1}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace hibari
