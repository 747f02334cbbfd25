// checkpoint/native_checkpoint.h — hibari's own checkpoints: a directory per step under a root,
// written atomically, verified when read, the newest K kept.
//
//   ROOT/step_000123/            one checkpoint (the name sorts by step)
//     <name>.safetensors         tensors (F32), one file per group: "model", "optimizer", ...
//     <name>.json / .toml ...    text files given by the trainer (state, config.json, run.toml)
//     manifest.json              {"format": "hibari-checkpoint", "version": 1, "step": 123,
//                                 "files": {"model.safetensors": {"bytes": N, "xxh64": "<hex>"}}}
//   ROOT/latest                  "step_000123\n", replaced atomically after the directory is in
//                                place: a crash at any moment leaves `latest` naming a complete one
//
// A checkpoint is written under ROOT/step_000123.tmp.<pid> and renamed into place once every file
// is written and fsynced; only then does `latest` move and are checkpoints beyond the newest K
// removed.  Every tensor is scanned for NaN/Inf first: a checkpoint holding one is refused (an
// Error) and nothing on disk changes, so a diverged run never replaces its last good state.
//
// Reading takes `latest` (or, when it is missing or names a broken checkpoint, the newest
// directory), checks every file of the manifest against its size and XXH64, and falls back to the
// next older checkpoint when one is corrupt, saying so in `notes`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace hibari {

struct CheckpointTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;  // numel floats; must stay valid until the write returns
};

struct CheckpointContent {
  int64_t step = 0;
  // file stem ("model") -> its tensors, written as <stem>.safetensors.
  std::map<std::string, std::vector<CheckpointTensor>> tensor_files;
  // file name ("state.json") -> contents.
  std::map<std::string, std::string> text_files;
};

// "step_000123".
std::string checkpoint_dir_name(int64_t step);

// Writes ROOT/step_XXXXXX atomically, moves ROOT/latest to it and removes all but the newest
// `keep` checkpoints (keep 0: keep all).  Errors (a NaN/Inf tensor, a full disk) leave ROOT as it
// was, apart from nothing.
void write_checkpoint(const std::string& root, const CheckpointContent& content, int keep);

// A checkpoint as read back: its directory, step, text files, and the safetensors files mapped.
struct LoadedCheckpoint {
  std::string dir;
  int64_t step = 0;
  std::map<std::string, std::string> text_files;
  std::map<std::string, SafeTensorsFile> tensor_files;  // by stem
  // The named text file, or an Error naming the checkpoint.
  const std::string& text(const std::string& name) const;
  const SafeTensorsFile& tensors(const std::string& stem) const;
};

// The newest valid checkpoint under ROOT, or nullptr when ROOT holds none at all.  A corrupt one
// (missing file, wrong size or checksum, bad manifest) is skipped with a line in `notes`; when
// every checkpoint is corrupt, an Error naming the newest and its problem.  Sharded steps (version
// 2, checkpoint/sharded_checkpoint.h) are passed over without a note: their own readers take them
// (a parallel resume notes a corrupt one); when nothing else is intact, the Error names the newest
// sharded step's problem.
std::unique_ptr<LoadedCheckpoint> load_latest_checkpoint(const std::string& root,
                                                         std::vector<std::string>* notes);
// One checkpoint directory, verified; Error "dir/file: problem" when it is not intact.
LoadedCheckpoint load_checkpoint(const std::string& dir);

// Whether DIR, which holds no manifest.json, is nevertheless a checkpoint step: it holds
// optimizer.safetensors or state.json (no Hugging Face directory does), its model.safetensors says
// {"format": "hibari"} (Hugging Face exports say "pt"), or it is named step_NNNNNN(.tmp.PID) beside
// a `latest` file.  Such a step lost its manifest or was never finished; nothing in it can be
// checked, so it must not be read as a plain Hugging Face directory.
bool is_step_without_manifest(const std::string& dir);
// Error "DIR: a hibari checkpoint step without manifest.json ..." when is_step_without_manifest.
void refuse_step_without_manifest(const std::string& dir);

}  // namespace hibari
