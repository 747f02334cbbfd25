// model/params.h — the parameter registry: every parameter of a model is a named view into one flat
// buffer, named as Hugging Face names it.  Gradients and optimizer state use the same layout in
// buffers of their own, so clipping, checkpoint shards and ZeRO partitions are slices, not lists.
//
// Llama layout, in this order (offsets are multiples of 16 floats, so views stay 64-byte aligned):
//   model.embed_tokens.weight                       (V, C)
//   per layer l, the fields of llama_layer_fields():
//     model.layers.l.input_layernorm.weight         (C)
//     model.layers.l.self_attn.{q,k,v}_proj.weight  (Q, C) (KV, C) (KV, C)   adjacent: one GEMM
//     model.layers.l.self_attn.o_proj.weight        (C, Q)
//     model.layers.l.post_attention_layernorm.weight (C)
//     model.layers.l.mlp.{gate,up}_proj.weight      (F, C) (F, C)            adjacent: one GEMM
//     model.layers.l.mlp.down_proj.weight           (C, F)
//   model.norm.weight                               (C)
//   lm_head.weight                                  (V, C)   absent when tie_word_embeddings
//
// A shard (model/shard.h) keeps the same names (layers keep their GLOBAL index) with local shapes:
//   tensor parallelism cuts each matrix into tp equal contiguous parts, Megatron's split —
//     rows (column-parallel: outputs cut):  q_proj, k_proj, v_proj (NH/tp and NKV/tp heads),
//                                           gate_proj, up_proj (F/tp), embed_tokens, lm_head (V/tp)
//     cols (row-parallel: inputs cut):      o_proj, down_proj
//     none (tp_replicated: whole on every tp rank): the norm weights;
//   a pipeline stage holds its layers; the embedding only on the first stage, model.norm and
//   lm_head only on the last.  With tie_word_embeddings and more than one stage, the last stage
//   holds its own copy of the embedding for the head, named "model.embed_tokens.weight" at the
//   tail: the trainer MUST sum the two copies' gradients (first stage's + last stage's) before the
//   optimizer step, so that both copies stay equal.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/shard.h"

namespace hibari {

// Which dimension of the full Hugging Face tensor tensor parallelism cuts into tp equal contiguous
// parts (tp rank r holds part r).
enum class ShardSplit { none, rows, cols };

struct ParamInfo {
  std::string name;             // Hugging Face name
  std::array<size_t, 2> shape;  // (rows, cols) held here; a vector is (n, 1)
  int ndim;                     // 1 or 2, as Hugging Face stores it
  size_t offset;                // in floats, into the flat buffer
  size_t numel;
  bool weight_decay;                       // false for norms
  ShardSplit split = ShardSplit::none;     // how tensor parallelism cuts the full tensor
  std::array<size_t, 2> full_shape{0, 0};  // (rows, cols) of the full tensor
  bool tp_replicated = false;              // every tp rank holds the whole tensor (norms)
  size_t full_index = 0;  // index in the unsharded layout: its init stream and its place
};

struct ParameterLayout {
  std::vector<ParamInfo> params;
  size_t total = 0;  // floats in the flat buffer
  const ParamInfo* find(const std::string& name) const;
};

// The parameter `p` inside a flat buffer laid out by this registry (parameters, gradients or an
// optimizer state), as a Tensor view with Hugging Face's shape.
Tensor param_view(float* base, const ParamInfo& p);

// One layer's fields (name suffix after "model.layers.N.", full shape, decay, tp split): the single
// list that offsets, pointers, names and initialization all derive from.
struct LayerField {
  const char* suffix;
  size_t rows, cols;
  int ndim;
  bool weight_decay;
  ShardSplit split;
};
std::array<LayerField, 9> llama_layer_fields(const ModelConfig& config);

// The layout of `shard` (default: the whole model, as one process holds it).
ParameterLayout llama_parameter_layout(const ModelConfig& config, const ModelShard& shard = {});

// Contiguous [begin, end) float ranges of a flat buffer that ZeRO-3 gathers as units, in buffer
// order, covering [0, total): the embedding (first stage), each local layer, and the tail
// (model.norm + lm_head or the tied copy; last stage).  Parameters [param_begin, param_end) of
// layout.params lie in the group.
struct ParamGroup {
  size_t begin, end;
  size_t param_begin, param_end;
};
std::vector<ParamGroup> llama_param_groups(const ParameterLayout& layout);

// Named pointers into a flat buffer laid out by llama_parameter_layout (parameters or gradients).
struct LlamaLayerWeights {
  float* input_norm;  // (C)
  float* qkv;         // (Q + 2 KV, C)  q_proj, k_proj, v_proj stacked
  float* o_proj;      // (C, Q)
  float* post_norm;   // (C)
  float* gate_up;     // (2F, C)  gate_proj, up_proj stacked
  float* down;        // (C, F)
};
struct LlamaWeights {
  float* embed = nullptr;                 // (V, C); first stage only
  std::vector<LlamaLayerWeights> layers;  // this stage's layers, local index
  float* final_norm = nullptr;            // (C); last stage only
  float* lm_head = nullptr;               // (V, C); == embed when tied on one stage
};
// The views of a layout made by llama_parameter_layout (whole model or shard; shapes are local).
LlamaWeights llama_weights(const ModelConfig& config, const ParameterLayout& layout, float* base);

// Hugging Face's initialization: normal(0, initializer_range) for linear and embedding weights,
// ones for norms.  Value i of parameter p is the counter-based normal (seed, stream p, i), with p
// the index in the FULL layout and i the index in the full tensor: the same for any thread count,
// and a shard's elements (`layout` of `shard`) get exactly the values a one-process init gives
// them.
void llama_init_parameters(float* params, const ParameterLayout& layout, double initializer_range,
                           uint64_t seed, const ModelShard& shard = {});

// Slicing between a full buffer (laid out by `full`, the one-process layout) and a shard's buffer
// (laid out by `local` = llama_parameter_layout(config, shard)): extract copies the shard's part
// out of the full buffer, insert writes it back into its place.
void llama_shard_extract(const ParameterLayout& full, const float* full_buf,
                         const ParameterLayout& local, float* local_buf, const ModelShard& shard);
void llama_shard_insert(const ParameterLayout& full, float* full_buf, const ParameterLayout& local,
                        const float* local_buf, const ModelShard& shard);

}  // namespace hibari
