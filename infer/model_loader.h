// infer/model_loader.h — a model for inference (one process, tp 1) from what a user points at:
//   a Hugging Face directory   config.json + model.safetensors (or shards + index), F32/BF16/F16
//   a hibari checkpoint        ROOT/step_000123 (manifest.json, config.json, model.safetensors),
//                              verified against its manifest before it is read; or a parallel
//                              run's sharded step (checkpoint/sharded_checkpoint.h, version 2):
//                              config.json from its text files, each parameter read whole from its
//                              pieces (shard checksums checked), the exp_avg* tensors not read
//   a checkpoint root          ROOT (holds `latest` or step_* directories): its newest intact one,
//                              of either format (a corrupt one skipped with a note)
// A hibari checkpoint's model.safetensors uses Hugging Face's names (train/train_checkpoint.h), so
// both are read by model/hf_weights.  Parameters are fp32 in one flat buffer with named views; no
// gradients, no training activations.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"

namespace hibari {

struct LoadedModel {
  ModelConfig config;
  ParameterLayout layout;     // llama_parameter_layout(config): the whole model
  std::vector<float> params;  // (layout.total)
  LlamaWeights weights;       // named views into params (moving a LoadedModel keeps them valid)
  std::string weights_dir;    // the directory the weights were read from (a step dir for a root)
  std::string description;    // "Hugging Face directory D" / "checkpoint D (step N)", for logs
  std::vector<std::string> notes;  // checkpoints skipped as corrupt on the way, one line each
  bool sharded = false;            // read from a sharded (version 2) checkpoint step
};

// Fails with one line naming the file ("DIR: not a directory", "DIR/config.json: missing ...",
// "DIR/model.safetensors: no tensor 'x'") for anything that is not a loadable Llama, for a
// checkpoint step whose manifest.json is gone (native_checkpoint.h, refuse_step_without_manifest),
// and for weights holding NaN or Inf ("FILE: tensor NAME holds NaN at element I").
LoadedModel load_model_for_inference(const std::string& path);

// The index of the first NaN or Inf among x[0, n), or n when all are finite (parallel, vectorized).
size_t first_non_finite(const float* x, size_t n);

// The tokenizer file that goes with a model: the first tokenizer.json / tokenizer.model in
// `model_path`, then in the two directories above it (a checkpoint step's root and its run
// directory); "" when there is none.
std::string find_model_tokenizer(const std::string& model_path);

// The tokenizer of a model: `tokenizer_path` (file or directory) when not empty, else
// find_model_tokenizer's.  One-line error naming where it looked when none is found.
TextTokenizer load_tokenizer_for_model(const std::string& model_path,
                                       const std::string& tokenizer_path);

// A training-forward Llama (model/llama.h) over the loaded weights, without copying them and
// without gradients: llama_forward / llama_logits_at on up to B x T tokens.  `model` must outlive
// `llama`.
void llama_over_loaded(Llama& llama, LoadedModel& model, size_t B, size_t T);

}  // namespace hibari
