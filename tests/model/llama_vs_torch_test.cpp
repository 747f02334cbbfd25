// tests/model/llama_vs_torch_test.cpp — hibari's Llama forward and backward against an independent
// PyTorch Llama (tests/reference/llama_torch.py, written from Hugging Face's LlamaForCausalLM).
// The script draws random weights and a batch, computes the loss and every gradient in float64
// from the float32-rounded weights, and writes them to a safetensors fixture; this test loads the
// same weights into hibari (float32) and compares.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

bool torch_available() {
  return std::system(HIBARI_PYTHON " -c 'import torch' >/dev/null 2>&1") == 0;
}

// A fresh directory for one test's files, removed when the test ends.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() / ("hibari_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<int64_t> shape_of(const ParamInfo& p) {
  if (p.ndim == 2) return {int64_t(p.shape[0]), int64_t(p.shape[1])};
  return {int64_t(p.shape[0])};
}

// The single F64 value of a tensor (read_f32 would round it to float).
double read_f64_scalar(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensorInfo* t = f.find(name);
  if (t == nullptr || t->dtype != StDtype::F64 || t->numel() != 1) {
    ADD_FAILURE() << f.path << ": no F64 scalar " << name;
    return NAN;
  }
  double v;
  std::memcpy(&v, f.data.data() + t->begin, sizeof v);
  return v;
}

std::vector<int32_t> read_i32(const SafeTensorsFile& f, const std::string& name) {
  std::vector<int64_t> wide = f.read_i64(name);
  return std::vector<int32_t>(wide.begin(), wide.end());
}

// ||a - b|| / ||b||
double norm_relative_error(const float* a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double d = double(a[i]) - double(b[i]);
    diff += d * d;
    norm += double(b[i]) * double(b[i]);
  }
  if (std::isnan(diff)) return INFINITY;
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

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
  ScratchDir dir(std::string("llama_vs_torch_") + c.name);
  const fs::path config_path = dir.path / "config.json";
  const fs::path fixture_path = dir.path / "fixture.safetensors";
  std::ofstream(config_path) << c.config;

  std::string cmd = std::string(HIBARI_PYTHON) +
                    " " HIBARI_SOURCE_DIR "/tests/reference/llama_torch.py grad --config " +
                    config_path.string() + " --out " + fixture_path.string() + " --seed " +
                    std::to_string(c.seed) + " --batch " + std::to_string(c.B) + " --seq " +
                    std::to_string(c.T) + " --std " + std::to_string(c.std);
  // Skipped only where there is no torch to run the reference (asked after a failure, as
  // importing torch costs a second or two).
  if (std::system(cmd.c_str()) != 0) {
    if (!torch_available()) GTEST_SKIP() << HIBARI_PYTHON " cannot import torch";
    FAIL() << "the reference failed: " << cmd;
  }
  SafeTensorsFile fixture = safetensors_read(fixture_path.string());

  ModelConfig config = load_model_config(config_path.string());
  Llama model;
  llama_create(model, config, c.B, c.T);
  for (const ParamInfo& p : model.layout.params) {
    std::vector<float> w = fixture.read_f32(p.name, shape_of(p));
    std::memcpy(model.params + p.offset, w.data(), p.numel * sizeof(float));
  }
  std::vector<int32_t> inputs = read_i32(fixture, "inputs");
  std::vector<int32_t> targets = read_i32(fixture, "targets");
  ASSERT_EQ(inputs.size(), c.B * c.T);
  ASSERT_EQ(targets.size(), c.B * c.T);

  llama_zero_grads(model);
  float loss = llama_forward(model, inputs.data(), targets.data(), c.B, c.T, 1.0f);
  llama_backward(model);

  const double ref_loss = read_f64_scalar(fixture, "loss");
  const double loss_error = std::abs(double(loss) - ref_loss) / std::abs(ref_loss);
  EXPECT_LT(loss_error, 1e-5) << "loss " << loss << ", reference " << ref_loss;

  double worst = 0;
  std::string worst_name;
  for (const ParamInfo& p : model.layout.params) {
    std::vector<float> g_ref = fixture.read_f32("grad." + p.name, shape_of(p));
    double error = norm_relative_error(model.grads + p.offset, g_ref);
    EXPECT_LT(error, 1e-4) << "gradient of " << p.name;
    if (!(error <= worst)) {  // NaN counts as worst
      worst = error;
      worst_name = p.name;
    }
  }
  std::printf(
      "[%s] loss %.9g (reference %.12g, relative error %.3g); worst gradient error %.3g (%s)\n",
      c.name, double(loss), ref_loss, loss_error, worst, worst_name.c_str());
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
