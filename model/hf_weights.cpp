// model/hf_weights.cpp — see hf_weights.h.
#include "model/hf_weights.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/rng.h"

namespace hibari {

namespace {

namespace fs = std::filesystem;

std::vector<int64_t> hf_shape(const ParamInfo& p) {
  if (p.ndim == 2) return {int64_t(p.shape[0]), int64_t(p.shape[1])};
  return {int64_t(p.shape[0])};
}

// Buffers that transformers keeps beside the parameters in some checkpoints; not weights.
bool known_non_parameter(const std::string& name) {
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string file_of(const SafeTensorsModel& model, const std::string& name) {
  const SafeTensorsFile* f = model.file_of(name);
  return f ? f->path : model.dir;
}

}  // namespace

void check_hf_config(const ModelConfig& model, const ModelConfig& file, const std::string& source) {
  struct Field {
    const char* name;
    size_t in_model, in_file;
  };
  const Field fields[] = {
      {"vocab_size", model.vocab_size, file.vocab_size},
      {"hidden_size", model.hidden_size, file.hidden_size},
      {"intermediate_size", model.intermediate_size, file.intermediate_size},
      {"num_hidden_layers", model.num_hidden_layers, file.num_hidden_layers},
      {"num_attention_heads", model.num_attention_heads, file.num_attention_heads},
      {"num_key_value_heads", model.num_key_value_heads, file.num_key_value_heads},
      {"head_dim", model.head_dim, file.head_dim},
      {"tie_word_embeddings", model.tie_word_embeddings, file.tie_word_embeddings},
  };
  for (const Field& f : fields) {
    if (f.in_model != f.in_file) {
      fail_file(source, std::string(f.name) + " is " + std::to_string(f.in_file) +
                            " in the file but " + std::to_string(f.in_model) + " in the model");
    }
  }
}

void load_hf_weights(const ParameterLayout& layout, float* params, const ModelConfig& config,
                     const std::string& hf_dir) {
  const std::string config_path = (fs::path(hf_dir) / "config.json").string();
  if (!fs::exists(config_path)) fail_file(config_path, "missing (not a Hugging Face model?)");
  check_hf_config(config, load_model_config(config_path), config_path);

  const SafeTensorsModel model = safetensors_open_model(hf_dir);
  std::set<std::string> used;
  for (const ParamInfo& p : layout.params) {
    const SafeTensorsFile* file = model.file_of(p.name);
    if (!file) {
      fail_file(model.index_path.empty() ? model.files[0].path : model.index_path,
                "no tensor '" + p.name + "'");
    }
    file->read_f32_into(p.name, params + p.offset, hf_shape(p));
    used.insert(p.name);
  }
  for (const auto& [name, where] : model.tensors) {
    if (used.count(name) || known_non_parameter(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) {
      // Some writers store the tied head anyway; accept it only as the same matrix.
      const ParamInfo* embed = layout.find("model.embed_tokens.weight");
      std::vector<float> head = where.first->read_f32(name, hf_shape(*embed));
      if (std::memcmp(head.data(), params + embed->offset, head.size() * sizeof(float)) != 0) {
        fail_file(where.first->path,
                  "lm_head.weight differs from model.embed_tokens.weight, but config.json ties "
                  "them (tie_word_embeddings)");
      }
      continue;
    }
    fail_file(file_of(model, name),
              "unexpected tensor '" + name + "' (not a parameter of this Llama model)");
  }
}

namespace {

const char* torch_dtype_name(StDtype dtype, const std::string& where) {
  switch (dtype) {
    case StDtype::F32:
      return "float32";
    case StDtype::BF16:
      return "bfloat16";
    case StDtype::F16:
      return "float16";
    default:
      fail_file(where, std::string("cannot save weights as ") + st_dtype_name(dtype));
  }
}

// `ours` laid over `base`: objects merge key by key; a value equal to base's keeps base's form
// (64 stays 64, 1e-05 stays as written), except that a whole number written as a float in base
// becomes the integer hibari writes; null (hibari has nothing to say) keeps base's value.
nlohmann::ordered_json overlay(const nlohmann::ordered_json& base,
                               const nlohmann::ordered_json& ours) {
  if (base.is_object() && ours.is_object()) {
    nlohmann::ordered_json out = base;
    for (const auto& [key, value] : ours.items())
      out[key] = base.contains(key) ? overlay(base[key], value) : value;
    return out;
  }
  if (ours.is_null()) return base;
  if (base != ours) return ours;
  return base.is_number_float() && ours.is_number_integer() ? ours : base;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail_file(path, "cannot be read");
  return text.str();
}

}  // namespace

std::string hf_config_text(const ModelConfig& config, StDtype dtype, const std::string& source_text,
                           const std::string& source_path) {
  const char* torch_dtype = torch_dtype_name(dtype, source_path);
  nlohmann::ordered_json ours = nlohmann::ordered_json::parse(model_config_to_json(config).dump());
  ours["torch_dtype"] = torch_dtype;
  if (source_text.empty()) return ours.dump(2) + "\n";
  nlohmann::ordered_json base = nlohmann::ordered_json::parse(source_text, nullptr, false);
  if (base.is_discarded() || !base.is_object()) fail_file(source_path, "malformed JSON");
  nlohmann::ordered_json out = overlay(base, ours);
  if (out.contains("dtype")) out["dtype"] = torch_dtype;  // transformers >= 4.56 writes this name
  return out.dump(2) + "\n";
}

void save_hf_weights(const ParameterLayout& layout, const float* params, const ModelConfig& config,
                     const std::string& out_dir, const HfSaveOptions& options,
                     const HfCarryOver& carry) {
  const std::string source_config =
      carry.config_path.empty() ? std::string() : read_text(carry.config_path);
  const std::string config_text =
      hf_config_text(config, options.dtype, source_config,
                     carry.config_path.empty() ? out_dir : carry.config_path);
  AtomicDir dir(out_dir);

  write_file_atomic(dir.file("config.json"), config_text);
  // What transformers' GenerationConfig.from_model_config keeps of a Llama config.
  nlohmann::json gen = {{"_from_model_config", true}};
  if (config.bos_token_id >= 0) gen["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1) gen["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) gen["eos_token_id"] = config.eos_token_ids;
  write_file_atomic(dir.file("generation_config.json"), gen.dump(2) + "\n");
  for (const auto& [path, name] : carry.files) write_file_atomic(dir.file(name), read_text(path));
  if (!carry.readme.empty()) write_file_atomic(dir.file("README.md"), carry.readme);

  std::vector<SafeTensorOut> tensors;
  for (const ParamInfo& p : layout.params) {
    tensors.push_back({.name = p.name,
                       .dtype = options.dtype,
                       .shape = hf_shape(p),
                       .data = params + p.offset,
                       .data_is_f32 = true});
  }
  // transformers refuses safetensors whose metadata does not say which framework wrote them.
  safetensors_write_model(dir.tmp_path, tensors, options.max_shard_bytes, {{"format", "pt"}});
  dir.commit();
}

size_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  const struct {
    const char* name;
    size_t scale;
  } units[] = {{"", 1},
               {"B", 1},
               {"KB", 1000},
               {"MB", 1000000},
               {"GB", 1000000000},
               {"TB", 1000000000000},
               {"KIB", size_t(1) << 10},
               {"MIB", size_t(1) << 20},
               {"GIB", size_t(1) << 30},
               {"TIB", size_t(1) << 40}};
  if (i > 0 && i <= 15) {
    const size_t n = std::stoull(text.substr(0, i));
    for (const auto& u : units) {
      if (unit == u.name && n > 0) return n * u.scale;
    }
  }
  fail(what + ": '" + text + "' is not a positive size such as 5GB, 500MB or 2GiB");
}

ModelConfig resize_vocab(const ModelConfig& config, const ParameterLayout& layout,
                         const float* params, size_t new_vocab, uint64_t seed,
                         std::vector<float>& new_params) {
  if (new_vocab < config.vocab_size) {
    fail("--resize-vocab " + std::to_string(new_vocab) + " is below the model's vocab_size " +
         std::to_string(config.vocab_size) + " (shrinking would drop trained rows)");
  }
  ModelConfig grown = config;
  grown.vocab_size = new_vocab;
  const ParameterLayout new_layout = llama_parameter_layout(grown);
  new_params.assign(new_layout.total, 0.0f);
  const size_t V = config.vocab_size, C = config.hidden_size;
  for (size_t k = 0; k < new_layout.params.size(); ++k) {
    const ParamInfo& np = new_layout.params[k];
    const ParamInfo* op = layout.find(np.name);
    if (!op) fail("resize_vocab: parameter " + np.name + " is not in the old layout");
    float* dst = new_params.data() + np.offset;
    const float* src = params + op->offset;
    std::memcpy(dst, src, op->numel * sizeof(float));
    if (np.numel == op->numel) continue;
    // A vocabulary matrix (V, C): mean row and overall std of the old rows, in double.
    std::vector<double> mean(C, 0.0);
    double sum = 0, sum_sq = 0;
    for (size_t r = 0; r < V; ++r) {
      for (size_t c = 0; c < C; ++c) {
        const double v = src[r * C + c];
        mean[c] += v;
        sum += v;
        sum_sq += v * v;
      }
    }
    for (double& m : mean) m /= double(V);
    const double n = double(V * C), avg = sum / n;
    const double std = std::sqrt(std::max(0.0, sum_sq / n - avg * avg));
    const double noise = kVocabResizeNoiseScale * std;
    for (size_t r = V; r < new_vocab; ++r) {
      for (size_t c = 0; c < C; ++c) {
        const size_t i = (r - V) * C + c;  // counter: independent of the old vocabulary size
        dst[r * C + c] = float(mean[c] + noise * random_normal(seed, uint32_t(k), i));
      }
    }
  }
  return grown;
}

}  // namespace hibari
