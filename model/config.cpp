#include "model/config.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/json_fields.h"

namespace hibari {

namespace {

using nlohmann::json;

// Bounds on each size, far above any real model (Llama-3-405B: hidden 16384, 126 layers, vocab
// 128256) and low enough that products of them cannot wrap; the parameter total is bounded too.
constexpr uint64_t max_dim = uint64_t(1) << 31;    // ids are int32; positions fit an int32 too
constexpr uint64_t max_count = uint64_t(1) << 20;  // layers and heads
constexpr uint64_t max_parameters = uint64_t(1) << 40;

size_t positive_size(const json& j, const char* key, uint64_t max, const std::string& source) {
  const json& v = json_require(j, key, source);
  const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= max
                  : v.is_number_integer()
                      ? v.get<int64_t>() >= 1 && uint64_t(v.get<int64_t>()) <= max
                      : false;
  if (!ok)
    fail_file(source, std::string("field \"") + key + "\" must be a positive integer up to " +
                          std::to_string(max) + ", got " + v.dump());
  return v.get<size_t>();
}

double positive_number(const json& j, const char* key, double fallback, const std::string& source) {
  const double v = json_get_number(j, key, fallback, source);
  if (json_field(j, key) && !(v > 0))
    fail_file(source, std::string("field \"") + key + "\" must be a positive number, got " +
                          json_field(j, key)->dump());
  return v;
}

int64_t token_id(const json& v, const char* key, const std::string& source) {
  return json_as_int(v, std::string("field \"") + key + "\" (a token id)", source, 0,
                     std::numeric_limits<int32_t>::max());
}

cpu::RopeScaling rope_scaling_from_json(const json& j, const std::string& source) {
  cpu::RopeScaling s;
  const json* it = json_field(j, "rope_scaling");
  if (it == nullptr) return s;
  if (!it->is_object()) fail_file(source, "field \"rope_scaling\" must be an object or null");
  const json& r = *it;
  // transformers reads "rope_type", and "type" in older files.
  std::string type =
      json_field(r, "rope_type")
          ? json_as_string(r["rope_type"], "field \"rope_scaling.rope_type\"", source)
          : json_get_string(r, "type", std::string(), source);
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
  c.source = source;
  c.model_type = json_get_string(j, "model_type", source);
  if (c.model_type != "llama")
    fail_file(source, "model_type \"" + c.model_type + "\" is not supported (supported: llama)");

  c.vocab_size = positive_size(j, "vocab_size", max_dim, source);
  c.hidden_size = positive_size(j, "hidden_size", max_dim, source);
  c.intermediate_size = positive_size(j, "intermediate_size", max_dim, source);
  c.num_hidden_layers = positive_size(j, "num_hidden_layers", max_count, source);
  c.num_attention_heads = positive_size(j, "num_attention_heads", max_count, source);
  c.num_key_value_heads = json_field(j, "num_key_value_heads")
                              ? positive_size(j, "num_key_value_heads", max_count, source)
                              : c.num_attention_heads;  // transformers' default: MHA
  c.max_position_embeddings = positive_size(j, "max_position_embeddings", max_dim, source);
  const bool has_head_dim = json_field(j, "head_dim") != nullptr;
  c.head_dim = has_head_dim ? positive_size(j, "head_dim", max_count, source)
                            : c.hidden_size / c.num_attention_heads;
  if (!has_head_dim && c.hidden_size % c.num_attention_heads != 0)
    fail_file(source, "hidden_size must be a multiple of num_attention_heads");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail_file(source, "num_attention_heads must be a multiple of num_key_value_heads");
  if (c.head_dim == 0 || c.head_dim % 2 != 0)
    fail_file(source, "head_dim must be even for rotary embeddings");

  c.rms_norm_eps = positive_number(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = positive_number(j, "rope_theta", 10000.0, source);
  c.initializer_range = positive_number(j, "initializer_range", 0.02, source);
  c.rope_scaling = rope_scaling_from_json(j, source);

  c.tie_word_embeddings = json_get_bool(j, "tie_word_embeddings", false, source);
  std::string act = json_get_string(j, "hidden_act", std::string("silu"), source);
  if (act != "silu") fail_file(source, "hidden_act \"" + act + "\" is not supported (only silu)");
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (json_get_bool(j, bias, false, source))
      fail_file(source, std::string("\"") + bias + "\": true is not supported");
  }
  if (const json* bos = json_field(j, "bos_token_id"))
    c.bos_token_id = token_id(*bos, "bos_token_id", source);
  if (const json* eos = json_field(j, "eos_token_id")) {
    if (eos->is_array()) {  // one id, or a list (Llama 3.1 and later)
      for (const json& e : *eos) c.eos_token_ids.push_back(token_id(e, "eos_token_id", source));
    } else {
      c.eos_token_ids.push_back(token_id(*eos, "eos_token_id", source));
    }
  }
  for (int64_t id : c.eos_token_ids)
    if (size_t(id) >= c.vocab_size) fail_file(source, "eos_token_id is not below vocab_size");
  if (c.bos_token_id >= 0 && size_t(c.bos_token_id) >= c.vocab_size)
    fail_file(source, "bos_token_id is not below vocab_size");

  // Each size is bounded above; their products must be too (a layout past 2^40 floats is no
  // model this machine or any other trains, and it keeps every offset far from wrapping).
  size_t total = 0;
  try {
    total = parameter_count(c);
  } catch (const Error&) {
    total = SIZE_MAX;
  }
  if (total > max_parameters)
    fail_file(source, "the sizes give " +
                          (total == SIZE_MAX ? std::string("over 2^64") : std::to_string(total)) +
                          " parameters, over the limit of 2^40 (vocab_size " +
                          std::to_string(c.vocab_size) + ", hidden_size " +
                          std::to_string(c.hidden_size) + ", intermediate_size " +
                          std::to_string(c.intermediate_size) + ", num_hidden_layers " +
                          std::to_string(c.num_hidden_layers) + ")");
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open model config");
  std::stringstream text;
  text << in.rdbuf();
  return model_config_from_json(parse_json_file(text.str(), path, "malformed JSON"), path);
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
  const char* what = "parameter count";
  const size_t C = c.hidden_size, F = c.intermediate_size;
  const size_t Q = checked_mul(c.num_attention_heads, c.head_dim, what);
  const size_t KV = checked_mul(c.num_key_value_heads, c.head_dim, what);
  const size_t S = checked_add(Q, checked_mul(2, KV, what), what);
  const size_t per_layer =
      checked_add(checked_add(checked_mul(S, C, what), checked_mul(C, Q, what), what),
                  checked_product(what, 3, F, C), what);
  return checked_add(checked_mul(c.num_hidden_layers, per_layer, what),
                     checked_mul(c.vocab_size, C, what), what);  // + the vocabulary head
}

size_t parameter_count(const ModelConfig& c) {
  const char* what = "parameter count";
  const size_t C = c.hidden_size;
  const size_t norms =
      checked_mul(checked_add(checked_mul(2, c.num_hidden_layers, what), 1, what), C, what);
  // The input table when untied.
  const size_t embeddings = c.tie_word_embeddings ? 0 : checked_mul(c.vocab_size, C, what);
  return checked_add(checked_add(matmul_parameter_count(c), norms, what), embeddings, what);
}

}  // namespace hibari
