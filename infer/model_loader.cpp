// infer/model_loader.cpp — see model_loader.h.
#include "infer/model_loader.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "checkpoint/native_checkpoint.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "model/hf_weights.h"

namespace hibari {

namespace {

namespace fs = std::filesystem;

bool is_checkpoint_root(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "latest", ec)) return true;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) return true;
  return false;
}

// A NaN or Inf weight makes every score NaN, which eval would count as wrong answers (accuracy 0)
// without a word: refused, naming the file and tensor it came from.
void refuse_non_finite(const LoadedModel& m) {
  const size_t i = first_non_finite(m.params.data(), m.params.size());
  if (i == m.params.size()) return;
  for (const ParamInfo& p : m.layout.params) {
    if (i < p.offset || i >= p.offset + p.numel) continue;
    std::string file = m.weights_dir;
    try {
      const SafeTensorsModel st = safetensors_open_model(m.weights_dir);
      if (const SafeTensorsFile* f = st.file_of(p.name)) file = f->path;
    } catch (const std::exception&) {
      // it was just read; name the directory if it cannot be opened again
    }
    const float v = m.params[i];
    fail_file(file, "tensor " + p.name + " holds " +
                        (std::isnan(v) ? "NaN"
                         : v > 0       ? "+Inf"
                                       : "-Inf") +
                        " at element " + std::to_string(i - p.offset) +
                        "; a model with NaN/Inf weights cannot give finite scores");
  }
  fail_file(m.weights_dir, "NaN/Inf at element " + std::to_string(i) + " of the parameters");
}

}  // namespace

size_t first_non_finite(const float* x, size_t n) {
  // Chunks in parallel, each an OR of an integer test (exponent bits all ones: NaN or Inf) that
  // vectorizes; the exact element is looked for only in the first chunk that has one.
  constexpr size_t kChunk = size_t(1) << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  size_t first = chunks;
#pragma omp parallel for schedule(static) reduction(min : first)
  for (size_t c = 0; c < chunks; ++c) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    uint32_t any = 0;
#pragma omp simd reduction(| : any)
    for (size_t i = c * kChunk; i < end; ++i)
      any |= uint32_t((std::bit_cast<uint32_t>(x[i]) & 0x7f800000u) == 0x7f800000u);
    if (any) first = std::min(first, c);
  }
  if (first == chunks) return n;
  size_t i = first * kChunk;
  while (std::isfinite(x[i])) ++i;
  return i;
}

namespace {

// The model parameters of a sharded (version 2) checkpoint step, tensor by tensor (each whole
// tensor read from its pieces; a shard file's XXH64 is checked when it is first touched).  The
// optimizer's exp_avg* tensors are not read.
void load_sharded_params(LoadedModel& m, ShardedCheckpoint& c) {
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(c.text("config.json"));
  } catch (const nlohmann::json::exception& e) {
    fail_file(c.dir + "/config.json", std::string("malformed JSON: ") + e.what());
  }
  m.config = model_config_from_json(saved, c.dir + "/config.json");
  m.layout = llama_parameter_layout(m.config);
  m.params.assign(m.layout.total, 0.0f);
  for (const ParamInfo& p : m.layout.params) {
    const ShardedCheckpoint::Tensor& t = c.tensor(p.name);
    const std::vector<int64_t> want =
        p.ndim == 1 ? std::vector<int64_t>{int64_t(p.shape[0])}
                    : std::vector<int64_t>{int64_t(p.shape[0]), int64_t(p.shape[1])};
    if (t.shape != want)
      fail_file(c.dir + "/manifest.json",
                "tensor " + p.name + " has another shape than " + "config.json gives it");
    sharded_read(c, p.name, whole_slice(t.shape), m.params.data() + p.offset);
  }
  sharded_release(c);
}

// One checkpoint step of either format, read into `m`: verified (a v1 step's files all, a v2
// step's manifest, text files and every shard read) before it is used.
void load_step(LoadedModel& m, const std::string& dir) {
  if (checkpoint_manifest_version(dir) == kShardedCheckpointVersion) {
    ShardedCheckpoint c = sharded_open(dir);
    load_sharded_params(m, c);
    m.weights_dir = dir;
    m.sharded = true;
    m.description = "checkpoint " + dir + " (step " + std::to_string(c.step) + ")";
    return;
  }
  const LoadedCheckpoint c = load_checkpoint(dir);
  m.weights_dir = dir;
  m.description = "checkpoint " + dir + " (step " + std::to_string(c.step) + ")";
}

}  // namespace

LoadedModel load_model_for_inference(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such model directory");
  if (!fs::is_directory(path, ec)) fail_file(path, "not a directory (a model is a directory)");
  LoadedModel m;
  const fs::path dir(path);
  // A step that lost its manifest would otherwise pass for a Hugging Face directory, unverified.
  refuse_step_without_manifest(path);
  if (fs::exists(dir / "manifest.json", ec)) {
    // one checkpoint: verified (sizes and checksums of every file) before it is read
    load_step(m, path);
  } else if (!fs::exists(dir / "config.json", ec) && is_checkpoint_root(dir)) {
    // the newest intact step of either format; a corrupt one is skipped with a note
    const std::vector<std::pair<int64_t, std::string>> steps = checkpoint_step_dirs(path);
    std::string first_problem;
    bool loaded = false;
    for (const auto& [step, step_dir] : steps) {
      try {
        LoadedModel attempt;
        load_step(attempt, step_dir);
        attempt.notes = std::move(m.notes);
        m = std::move(attempt);
        loaded = true;
        break;
      } catch (const Error& e) {
        if (first_problem.empty()) first_problem = e.what();
        m.notes.push_back(std::string("skipping a corrupt checkpoint: ") + e.what());
      }
    }
    if (!loaded && steps.empty()) fail_file(path, "no checkpoint in this directory");
    if (!loaded) fail("no intact checkpoint in " + path + "; the newest: " + first_problem);
  } else {
    m.weights_dir = path;
    m.description = "Hugging Face directory " + path;
  }
  if (!m.sharded) {
    const std::string config_path = (fs::path(m.weights_dir) / "config.json").string();
    if (!fs::exists(config_path, ec))
      fail_file(config_path, "missing (not a Hugging Face model or hibari checkpoint?)");
    m.config = load_model_config(config_path);
    m.layout = llama_parameter_layout(m.config);
    m.params.assign(m.layout.total, 0.0f);
    load_hf_weights(m.layout, m.params.data(), m.config, m.weights_dir);
  }
  refuse_non_finite(m);
  m.weights = llama_weights(m.config, m.layout, m.params.data());
  return m;
}

std::string find_model_tokenizer(const std::string& model_path) {
  // the model directory, then (a checkpoint) the step directory's root and the run directory
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(model_path), ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  for (int up = 0; up < 3; ++up) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"})
      if (fs::is_regular_file(p / name, ec)) return (p / name).string();
    if (!p.has_parent_path() || p.parent_path() == p) break;
    p = p.parent_path();
  }
  return "";
}

TextTokenizer load_tokenizer_for_model(const std::string& model_path,
                                       const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) return load_text_tokenizer(tokenizer_path);
  const std::string found = find_model_tokenizer(model_path);
  if (found.empty())
    fail_file(model_path,
              "no tokenizer.json or tokenizer.model here or in the two directories above "
              "(give one with --tokenizer)");
  return load_text_tokenizer(found);
}

void llama_over_loaded(Llama& llama, LoadedModel& model, size_t B, size_t T) {
  llama_create(llama, model.config, B, T, {}, nullptr, 1, {.own_parameters = false});
  for (size_t g = 0; g < llama.groups.size(); ++g)
    llama_point_group(llama, g, model.params.data() + llama.groups[g].begin, nullptr);
}

}  // namespace hibari
