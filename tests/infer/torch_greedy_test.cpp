// Greedy generation against a plain PyTorch Llama: a Hugging Face directory written by
// tests/reference/hf_llama.py (bf16, sharded: an independent writer) is loaded by
// load_model_for_inference and decoded with the KV cache; tests/reference/greedy_torch.py decodes
// it in float64 without a cache.  The tokens must be equal.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "infer/generate.h"
#include "infer/model_loader.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

bool torch_available() {
  return std::system(HIBARI_PYTHON " -c 'import torch' >/dev/null 2>&1") == 0;
}

TEST(TorchGreedy, SameTokensAsPlainPyTorch) {
  if (!torch_available()) GTEST_SKIP() << HIBARI_PYTHON " cannot import torch";
  test::ScratchDir dir("torch_greedy");
  const std::string config = dir.file("config.json"), model = dir.file("model");
  std::ofstream(config) << R"({"model_type": "llama", "vocab_size": 80, "hidden_size": 32,
    "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": false})";
  const std::string ref = std::string(HIBARI_PYTHON) + " " HIBARI_SOURCE_DIR "/tests/reference/";
  ASSERT_EQ(std::system((ref + "hf_llama.py make --config " + config + " --out " + model +
                         " --dtype bf16 --max-shard-bytes 20000 --std 0.3 --seed 4")
                            .c_str()),
            0);
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {7}, {5, 9, 11, 13, 17, 19, 23}};
  const size_t new_tokens = 20;
  const std::string out = dir.file("torch.txt");
  ASSERT_EQ(std::system((ref + "greedy_torch.py --model " + model +
                         " --prompts '1,2,3;7;5,9,11,13,17,19,23' --new 20 >" + out)
                            .c_str()),
            0);
  std::ifstream in(out);
  std::vector<std::vector<int32_t>> expected;
  for (std::string line; std::getline(in, line);)
    expected.push_back(nlohmann::json::parse(line).get<std::vector<int32_t>>());
  ASSERT_EQ(expected.size(), prompts.size());

  LoadedModel m = load_model_for_inference(model);
  Decoder d;
  decoder_create(d, m.config, m.weights, {.max_batch = 3, .max_seq = 40, .max_tokens = 8});
  GenerateOptions o;
  o.max_new_tokens = new_tokens;
  const auto got = generate(d, prompts, o);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "prompt " << i;
}

}  // namespace
}  // namespace hibari
