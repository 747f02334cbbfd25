// model/hf_weights.h — Hugging Face model directories <-> hibari's flat parameter buffer.
// A directory is config.json + model.safetensors (or shards + model.safetensors.index.json) +
// generation_config.json, as transformers' LlamaForCausalLM.save_pretrained writes it.  The
// parameter registry (model/params.h) already uses Hugging Face's names; q/k/v and gate/up are
// stacked in the buffer but each keeps its own named view, so import and export are a copy per
// tensor.  No q/k permutation: hibari's RoPE is transformers' rotate_half convention
// (kernels/cpu/rope.h), the layout HF checkpoints are stored in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/config.h"
#include "model/params.h"

namespace hibari {

// Fails with "DIR/config.json: FIELD is X in the file, Y in the model" when any field that shapes
// the parameters (vocab, sizes, heads, layers, tied embeddings) differs.
void check_hf_config(const ModelConfig& model, const ModelConfig& file, const std::string& source);

// Fills `params` (laid out by `layout`, for `config`) from the safetensors of `hf_dir`, any float
// dtype -> f32.  DIR/config.json must match `config` (check_hf_config).  A missing tensor, a wrong
// shape or an unexpected tensor (other than rotary inv_freq buffers) is a one-line error naming the
// file.  With tie_word_embeddings an lm_head.weight may be absent (or equal to the embedding).
void load_hf_weights(const ParameterLayout& layout, float* params, const ModelConfig& config,
                     const std::string& hf_dir);

struct HfSaveOptions {
  StDtype dtype = StDtype::F32;         // F32, BF16 or F16 in the safetensors
  size_t max_shard_bytes = 5000000000;  // transformers' default "5GB"
};

// What a conversion carries from the source directory besides the weights.
struct HfCarryOver {
  std::string config_path;  // the source's config.json (hf_config_text); empty: none
  // (source path, name in the output): copied unchanged (tokenizer files); a
  // generation_config.json among them replaces the one save_hf_weights writes.
  std::vector<std::pair<std::string, std::string>> files;
  std::string readme;  // README.md of the output; empty: none
};

// Writes config.json, generation_config.json, the safetensors (sharded with an index above
// max_shard_bytes) and what `carry` names into `out_dir`, atomically: everything goes to a
// temporary sibling directory that is renamed to out_dir at the end.  out_dir must not exist or be
// an empty directory.
void save_hf_weights(const ParameterLayout& layout, const float* params, const ModelConfig& config,
                     const std::string& out_dir, const HfSaveOptions& options,
                     const HfCarryOver& carry = {});

// The config.json text for `config` saved as `dtype`.  With a source config.json (its text, read
// from source_path) the source's keys, their order and their JSON types are kept: keys hibari does
// not model (pad_token_id, use_cache, ...) unchanged, and a field hibari models is rewritten only
// where its value differs (vocab_size after --resize-vocab; torch_dtype / dtype); keys the source
// lacks are added.  A whole number stays an integer (8192, never 8192.0).
std::string hf_config_text(const ModelConfig& config, StDtype dtype, const std::string& source_text,
                           const std::string& source_path);

// "5GB", "500MB", "2GiB", "1000": bytes, with Hugging Face's units (KB/MB/GB are powers of 10,
// KiB/MiB/GiB powers of 2).  `what` names the value in the error.
size_t parse_byte_size(const std::string& text, const std::string& what);

// Vocabulary extension on the model side: the parameters of `config` with vocab_size grown to
// `new_vocab` (into `new_params`, laid out by llama_parameter_layout of the returned config). Every
// old value is copied unchanged; each new row of embed_tokens (and of lm_head when untied) is the
// mean of that matrix's old rows plus normal noise of std kVocabResizeNoiseScale x the standard
// deviation of the matrix's old values, drawn from (seed, stream = the parameter's index, element),
// so the new tokens start as an "average token" that is still distinguishable.
constexpr double kVocabResizeNoiseScale = 0.01;
ModelConfig resize_vocab(const ModelConfig& config, const ParameterLayout& layout,
                         const float* params, size_t new_vocab, uint64_t seed,
                         std::vector<float>& new_params);

}  // namespace hibari
