// train/train_checkpoint.h — what a training checkpoint holds and how a run comes back from one.
//
// A checkpoint (checkpoint/native_checkpoint.h) of step s holds:
//   model.safetensors      every parameter, fp32, by its Hugging Face name
//   optimizer.safetensors  AdamW's exp_avg.<name> and exp_avg_sq.<name>, fp32
//   state.json             {"step": s, "optimizer_step": ..., "loader": <data/loader.h state with
//                           the hash of the next batch>}
//   config.json, run.toml  the model and the run as they were
// The random numbers of a run are counter-based (core/rng.h: seed, stream, index), so the step is
// all the RNG state there is.  Restoring all of this makes step s + 1 bit-identical to an
// uninterrupted run.
//
// Writing happens on a background thread from a snapshot taken at the end of the step (one memcpy
// of parameters and moments into a buffer allocated once), so training goes on while the files are
// written; the next checkpoint, or the end of the run, waits for the previous write.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "data/loader.h"
#include "model/llama.h"
#include "optim/adamw.h"

namespace hibari {

struct CheckpointWriter {
  std::string root;
  int keep = 0;
  std::vector<float> snapshot;  // params | exp_avg | exp_avg_sq
  CheckpointContent content;    // tensors point into `snapshot`
  std::thread thread;
  std::exception_ptr error;   // of the last background write, reported by checkpoint_wait
  int64_t last_written = -1;  // step of the last checkpoint written
  ~CheckpointWriter();
};

// The whole model's training state in one-process layout: what a checkpoint holds whatever the
// parallel layout that wrote it (a multi-process run gathers it on one rank first), so a run can
// resume under another layout.
struct TrainingState {
  const ParameterLayout* layout = nullptr;  // the one-process layout (llama_parameter_layout)
  float* params = nullptr;                  // (layout->total) each
  float* m = nullptr;
  float* v = nullptr;
  int64_t optimizer_step = 0;
};

// Snapshots the state and the loader after `step` and writes them (in the background when
// `background`).  Waits for the previous write first.
void checkpoint_save(CheckpointWriter& w, int64_t step, const TrainingState& state, Loader& loader,
                     const std::string& config_json, const std::string& run_toml, bool background);
// The same for a one-process model and its optimizer.
void checkpoint_save(CheckpointWriter& w, int64_t step, const Llama& model, const AdamW& optimizer,
                     Loader& loader, const std::string& config_json, const std::string& run_toml,
                     bool background);
// Waits for a background write.  A refused checkpoint (NaN/Inf) or a failed write is reported in
// `problem` (empty when it went well).
void checkpoint_wait(CheckpointWriter& w, std::string& problem);

// Restores parameters, AdamW moments and optimizer step from `c` into `state`'s buffers, checking
// that it is a checkpoint of `model` (config.json, where every differing key is named, and every
// tensor's shape); returns the loader state it recorded and sets `step`.
LoaderState checkpoint_restore(const LoadedCheckpoint& c, const ModelConfig& model,
                               TrainingState& state, int64_t& step);

// Every key of `now` (model_config_to_json of this run's model) whose value differs in `saved` (a
// checkpoint's config.json) or is absent there, as "KEY is SAVED there, NOW in this run's model"
// joined by "; ", in ModelConfig's field order (the size a user changed before the sizes that
// follow from it); "" when none differs.
std::string config_differences(const nlohmann::json& saved, const nlohmann::json& now);

}  // namespace hibari
