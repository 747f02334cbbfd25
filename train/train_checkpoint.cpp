// train/train_checkpoint.cpp — see train_checkpoint.h.
#include "train/train_checkpoint.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"

namespace hibari {

namespace {

std::vector<int64_t> shape_of(const ParamInfo& p) {
  if (p.ndim == 1) return {int64_t(p.shape[0])};
  return {int64_t(p.shape[0]), int64_t(p.shape[1])};
}

// The keys of config.json in ModelConfig's order (model/config.h): the sizes a user sets come
// before what follows from them (hidden_size before head_dim).
constexpr const char* kConfigKeyOrder[] = {"model_type",
                                           "vocab_size",
                                           "hidden_size",
                                           "intermediate_size",
                                           "num_hidden_layers",
                                           "num_attention_heads",
                                           "num_key_value_heads",
                                           "head_dim",
                                           "max_position_embeddings",
                                           "rms_norm_eps",
                                           "rope_theta",
                                           "rope_scaling",
                                           "initializer_range",
                                           "tie_word_embeddings",
                                           "bos_token_id",
                                           "eos_token_id"};

}  // namespace

std::string config_differences(const nlohmann::json& saved, const nlohmann::json& now) {
  std::vector<std::string> keys;
  for (const char* key : kConfigKeyOrder)
    if (now.contains(key)) keys.push_back(key);
  for (const auto& [key, value] : now.items())  // the rest alphabetically (nlohmann's order)
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  std::string out;
  for (const std::string& key : keys) {
    const nlohmann::json& value = now[key];
    if (saved.contains(key) && saved[key] == value) continue;
    if (!out.empty()) out += "; ";
    out += key + " is " + (saved.contains(key) ? saved[key].dump() : "absent") + " there, " +
           value.dump() + " in this run's model";
  }
  return out;
}

CheckpointWriter::~CheckpointWriter() {
  if (thread.joinable()) thread.join();
}

void checkpoint_wait(CheckpointWriter& w, std::string& problem) {
  problem.clear();
  if (w.thread.joinable()) w.thread.join();
  if (w.error) {
    try {
      std::rethrow_exception(w.error);
    } catch (const std::exception& e) {
      problem = e.what();
    }
    w.error = nullptr;
  }
}

void checkpoint_save(CheckpointWriter& w, int64_t step, const TrainingState& st, Loader& loader,
                     const std::string& config_json, const std::string& run_toml, bool background) {
  std::string problem;
  checkpoint_wait(w, problem);
  if (!problem.empty()) std::fprintf(stderr, "hibari: warning: %s\n", problem.c_str());

  const ParameterLayout& layout = *st.layout;
  const size_t n = layout.total;
  w.snapshot.resize(3 * n);  // allocated at the first checkpoint only
  std::memcpy(w.snapshot.data(), st.params, n * sizeof(float));
  std::memcpy(w.snapshot.data() + n, st.m, n * sizeof(float));
  std::memcpy(w.snapshot.data() + 2 * n, st.v, n * sizeof(float));

  w.content.step = step;
  w.content.tensor_files.clear();
  std::vector<CheckpointTensor>& params = w.content.tensor_files["model"];
  std::vector<CheckpointTensor>& moments = w.content.tensor_files["optimizer"];
  for (const ParamInfo& p : layout.params) {
    params.push_back({p.name, shape_of(p), w.snapshot.data() + p.offset});
    moments.push_back({"exp_avg." + p.name, shape_of(p), w.snapshot.data() + n + p.offset});
    moments.push_back({"exp_avg_sq." + p.name, shape_of(p), w.snapshot.data() + 2 * n + p.offset});
  }
  nlohmann::json state = {{"step", step},
                          {"optimizer_step", st.optimizer_step},
                          {"loader", loader_state_to_json(loader_checkpoint_state(loader))}};
  w.content.text_files = {
      {"state.json", state.dump(2) + "\n"}, {"config.json", config_json}, {"run.toml", run_toml}};
  auto write = [&w] {
    try {
      write_checkpoint(w.root, w.content, w.keep);
      w.last_written = w.content.step;
    } catch (...) {
      w.error = std::current_exception();
    }
  };
  if (background) {
    w.thread = std::thread([write] {
      // Below the training threads: on a machine whose cores all train, the write should take
      // the CPU they leave, not slow the step down.
      setpriority(PRIO_PROCESS, pid_t(syscall(SYS_gettid)), 10);
      write();
    });
  } else {
    write();
  }
}

void checkpoint_save(CheckpointWriter& w, int64_t step, const Llama& model, const AdamW& optimizer,
                     Loader& loader, const std::string& config_json, const std::string& run_toml,
                     bool background) {
  TrainingState state{.layout = &model.layout,
                      .params = model.params,
                      .m = const_cast<float*>(optimizer.m.data()),
                      .v = const_cast<float*>(optimizer.v.data()),
                      .optimizer_step = optimizer.step};
  checkpoint_save(w, step, state, loader, config_json, run_toml, background);
}

LoaderState checkpoint_restore(const LoadedCheckpoint& c, const ModelConfig& model,
                               TrainingState& st, int64_t& step) {
  const std::string config_path = c.dir + "/config.json";
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(c.text("config.json"));
  } catch (const nlohmann::json::exception&) {
    fail_file(config_path, "malformed JSON");
  }
  const std::string differences = config_differences(saved, model_config_to_json(model));
  if (!differences.empty()) fail_file(config_path, "a checkpoint of another model: " + differences);
  const SafeTensorsFile& params = c.tensors("model");
  const SafeTensorsFile& moments = c.tensors("optimizer");
  for (const ParamInfo& p : st.layout->params) {
    params.read_f32_into(p.name, st.params + p.offset, shape_of(p));
    moments.read_f32_into("exp_avg." + p.name, st.m + p.offset, shape_of(p));
    moments.read_f32_into("exp_avg_sq." + p.name, st.v + p.offset, shape_of(p));
  }
  const std::string state_path = c.dir + "/state.json";
  try {
    nlohmann::json state = nlohmann::json::parse(c.text("state.json"));
    step = state.at("step").get<int64_t>();
    st.optimizer_step = state.at("optimizer_step").get<int64_t>();
    return loader_state_from_json(state.at("loader"), state_path);
  } catch (const nlohmann::json::exception& e) {
    fail_file(state_path, std::string("malformed training state: ") + e.what());
  }
}

}  // namespace hibari
