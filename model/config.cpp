#include "model/config.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hibari {

namespace {

using nlohmann::json;

const json& require(const json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    fail_file(source, std::string("missing field \"") + key + "\"");
  return *it;
}

size_t positive_size(const json& j, const char* key, const std::string& source) {
  const json& v = require(j, key, source);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    fail_file(source,
              std::string("field \"") + key + "\" must be a positive integer, got " + v.dump());
  return v.get<size_t>();
}

double positive_number(const json& j, const char* key, double fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number() || it->get<double>() <= 0)
    fail_file(source,
              std::string("field \"") + key + "\" must be a positive number, got " + it->dump());
  return it->get<double>();
}

int64_t token_id(const json& v, const char* key, const std::string& source) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    fail_file(source, std::string("field \"") + key + "\" must be a token id, got " + v.dump());
  return v.get<int64_t>();
}

cpu::RopeScaling rope_scaling_from_json(const json& j, const std::string& source) {
  cpu::RopeScaling s;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return s;
  if (!it->is_object()) fail_file(source, "field \"rope_scaling\" must be an object or null");
  const json& r = *it;
  std::string type = r.value("rope_type", r.value("type", std::string()));
  if (type == "default") return s;
  if (type != "llama3")
    fail_file(source, "rope_scaling type \"" + type + "\" is not supported (only \"llama3\")");
  s.factor = positive_number(r, "factor", 0, source);
  if (s.factor == 0) fail_file(source, "rope_scaling needs \"factor\"");
  s.low_freq_factor = positive_number(r, "low_freq_factor", 1, source);
  s.high_freq_factor = positive_number(r, "high_freq_factor", 4, source);
  s.original_max_position_embeddings =
      positive_number(r, "original_max_position_embeddings", 8192, source);
  if (s.high_freq_factor <= s.low_freq_factor)
    fail_file(source, "rope_scaling needs high_freq_factor > low_freq_factor");
  return s;
}

// A whole number as a JSON integer (a length read as double must not come back as 8192.0, which
// some loaders refuse), anything else as a float.
json json_number(double v) {
  if (v >= 0 && v < 9.0e15 && v == std::floor(v)) return int64_t(v);
  return v;
}

}  // namespace

ModelConfig model_config_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail_file(source, "expected a JSON object");
  ModelConfig c;
  const json& type = require(j, "model_type", source);
  if (!type.is_string()) fail_file(source, "field \"model_type\" must be a string");
  c.model_type = type.get<std::string>();
  if (c.model_type != "llama")
    fail_file(source, "model_type \"" + c.model_type + "\" is not supported (supported: llama)");

  c.vocab_size = positive_size(j, "vocab_size", source);
  c.hidden_size = positive_size(j, "hidden_size", source);
  c.intermediate_size = positive_size(j, "intermediate_size", source);
  c.num_hidden_layers = positive_size(j, "num_hidden_layers", source);
  c.num_attention_heads = positive_size(j, "num_attention_heads", source);
  c.num_key_value_heads = j.contains("num_key_value_heads")
                              ? positive_size(j, "num_key_value_heads", source)
                              : c.num_attention_heads;  // transformers' default: MHA
  c.max_position_embeddings = positive_size(j, "max_position_embeddings", source);
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null()
                   ? positive_size(j, "head_dim", source)
                   : c.hidden_size / c.num_attention_heads;
  if (!j.contains("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    fail_file(source, "hidden_size must be a multiple of num_attention_heads");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail_file(source, "num_attention_heads must be a multiple of num_key_value_heads");
  if (c.head_dim % 2 != 0) fail_file(source, "head_dim must be even for rotary embeddings");

  c.rms_norm_eps = positive_number(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = positive_number(j, "rope_theta", 10000.0, source);
  c.initializer_range = positive_number(j, "initializer_range", 0.02, source);
  c.rope_scaling = rope_scaling_from_json(j, source);

  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean())
      fail_file(source, "field \"tie_word_embeddings\" must be true or false");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") fail_file(source, "hidden_act \"" + act + "\" is not supported (only silu)");
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (j.contains(bias) && j[bias].is_boolean() && j[bias].get<bool>())
      fail_file(source, std::string("\"") + bias + "\": true is not supported");
  }
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null())
    c.bos_token_id = token_id(j["bos_token_id"], "bos_token_id", source);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& eos = j["eos_token_id"];  // one id, or a list (Llama 3.1 and later)
    if (eos.is_array()) {
      for (const json& e : eos) c.eos_token_ids.push_back(token_id(e, "eos_token_id", source));
    } else {
      c.eos_token_ids.push_back(token_id(eos, "eos_token_id", source));
    }
  }
  for (int64_t id : c.eos_token_ids)
    if (size_t(id) >= c.vocab_size) fail_file(source, "eos_token_id is not below vocab_size");
  if (c.bos_token_id >= 0 && size_t(c.bos_token_id) >= c.vocab_size)
    fail_file(source, "bos_token_id is not below vocab_size");
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot open model config");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) fail_file(path, "malformed JSON");
  return model_config_from_json(j, path);
}

json model_config_to_json(const ModelConfig& c) {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", c.model_type},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"head_dim", c.head_dim},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"initializer_range", c.initializer_range},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"torch_dtype", "float32"}};
  if (c.rope_scaling.factor > 0) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings",
                          json_number(c.rope_scaling.original_max_position_embeddings)}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  return j;
}

size_t matmul_parameter_count(const ModelConfig& c) {
  size_t C = c.hidden_size, F = c.intermediate_size;
  size_t per_layer = c.qkv_size() * C + C * c.q_size() + 3 * F * C;
  return c.num_hidden_layers * per_layer + c.vocab_size * C;  // + the vocabulary head
}

size_t parameter_count(const ModelConfig& c) {
  size_t C = c.hidden_size;
  size_t norms = (2 * c.num_hidden_layers + 1) * C;
  size_t embeddings = c.tie_word_embeddings ? 0 : c.vocab_size * C;  // input table when untied
  return matmul_parameter_count(c) + norms + embeddings;
}

}  // namespace hibari
