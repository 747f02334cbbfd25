// fuzz/fuzz_checkpoint.h — a tiny, always identical training checkpoint (a one-layer model with its
// AdamW moments, state.json and config.json), written by the checkpoint targets into their scratch
// folder and by fuzz_seeds into the corpus: the same bytes, so the seed manifests' checksums hold.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "data/loader.h"
#include "model/config.h"
#include "model/params.h"

namespace hibari::fuzz {

inline ModelConfig tiny_model_config() {
  ModelConfig c;
  c.vocab_size = 8;
  c.hidden_size = 4;
  c.intermediate_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.max_position_embeddings = 16;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

inline std::vector<int64_t> param_shape(const ParamInfo& p) {
  if (p.ndim == 1) return {int64_t(p.shape[0])};
  return {int64_t(p.shape[0]), int64_t(p.shape[1])};
}

// The state.json of train/train_checkpoint.cpp for a run of one dataset.
inline std::string tiny_state_json() {
  LoaderState s;
  s.seq_length = 16;
  s.seed = 1234;
  s.split = "969,30,1";
  s.consumed_samples = 64;
  s.segment_sources = {"a"};
  s.segment_weights = {1.0};
  s.sources.push_back({.name = "a", .prefix = "data/a", .planned_samples = 640, .consumed = 64});
  s.next_batch_hash = 0x1234567890abcdefull;
  nlohmann::json j = {{"step", 4}, {"optimizer_step", 4}, {"loader", loader_state_to_json(s)}};
  return j.dump(2) + "\n";
}

// Writes ROOT/step_000004 and ROOT/latest; returns the step folder.
inline std::string write_tiny_checkpoint(const std::string& root) {
  const ModelConfig config = tiny_model_config();
  const ParameterLayout layout = llama_parameter_layout(config);
  static std::vector<float> values;
  values.assign(layout.total, 0.0f);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i % 17) / 16.0f;
  CheckpointContent content;
  content.step = 4;
  for (const ParamInfo& p : layout.params) {
    const float* d = values.data() + p.offset;
    content.tensor_files["model"].push_back({p.name, param_shape(p), d});
    content.tensor_files["optimizer"].push_back({"exp_avg." + p.name, param_shape(p), d});
    content.tensor_files["optimizer"].push_back({"exp_avg_sq." + p.name, param_shape(p), d});
  }
  content.text_files["state.json"] = tiny_state_json();
  content.text_files["config.json"] = model_config_to_json(config).dump(2) + "\n";
  write_checkpoint(root, content, 0);
  return root + "/" + checkpoint_dir_name(content.step);
}

}  // namespace hibari::fuzz
