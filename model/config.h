// model/config.h — ModelConfig, read from a Hugging Face config.json.  Every size comes from the
// file; what hibari does not understand (another model_type, attention biases, another activation)
// is rejected with the file's name, never guessed.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "kernels/cpu/rope.h"

namespace hibari {

struct ModelConfig {
  std::string model_type = "llama";
  size_t vocab_size = 0;
  size_t hidden_size = 0;          // C
  size_t intermediate_size = 0;    // F
  size_t num_hidden_layers = 0;    // L
  size_t num_attention_heads = 0;  // NH
  size_t num_key_value_heads = 0;  // NKV (GQA when < NH)
  size_t head_dim = 0;             // HD; hidden_size / num_attention_heads unless given
  size_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  cpu::RopeScaling rope_scaling;  // factor 0: none
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string source;  // the file it was read from ("" when built in code): named in errors

  size_t q_size() const { return num_attention_heads * head_dim; }   // Q = NH HD
  size_t kv_size() const { return num_key_value_heads * head_dim; }  // KV = NKV HD
  size_t qkv_size() const { return q_size() + 2 * kv_size(); }       // S
};

// Parses a config.json document (every size bounded, every field's type checked); `source` (a path)
// names the file in errors.
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& source);
// Reads and parses `path`.
ModelConfig load_model_config(const std::string& path);
// The config.json a Hugging Face LlamaForCausalLM would load.
nlohmann::json model_config_to_json(const ModelConfig& config);

// Parameters in GEMMs (embedding excluded unless tied, where the head GEMM uses it).
size_t matmul_parameter_count(const ModelConfig& config);
size_t parameter_count(const ModelConfig& config);

}  // namespace hibari
