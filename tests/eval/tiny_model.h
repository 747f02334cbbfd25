// tests/eval/tiny_model.h — the fixed tiny random model the eval tests score with: the config and
// the demo's 2000-piece ja/en tokenizer from examples/eval/tiny_model, and weights drawn by
// llama_init_parameters(seed 7, std 0.5): large enough that choices differ clearly in likelihood.
// Written as a Hugging Face directory, so every test loads it the way a user's model loads.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"

namespace hibari::test {

inline const std::string kEvalExamples = std::string(HIBARI_SOURCE_DIR) + "/examples/eval";

// Writes the model into `dir` (which must not exist or be empty) and returns it.
inline std::string write_tiny_eval_model(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(kEvalExamples) / "tiny_model";
  ModelConfig config = load_model_config((src / "config.json").string());
  ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params(layout.total);
  llama_init_parameters(params.data(), layout, 0.5, 7);
  save_hf_weights(layout, params.data(), config, dir.string(), {});
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(src / f, dir / f, fs::copy_options::overwrite_existing);
  return dir.string();
}

}  // namespace hibari::test
