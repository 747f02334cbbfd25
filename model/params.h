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
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace hibari {

struct ParamInfo {
  std::string name;             // Hugging Face name
  std::array<size_t, 2> shape;  // (rows, cols); a vector is (n, 1)
  int ndim;                     // 1 or 2, as Hugging Face stores it
  size_t offset;                // in floats, into the flat buffer
  size_t numel;
  bool weight_decay;  // false for norms
};

struct ParameterLayout {
  std::vector<ParamInfo> params;
  size_t total = 0;  // floats in the flat buffer
  const ParamInfo* find(const std::string& name) const;
};

// The parameter `p` inside a flat buffer laid out by this registry (parameters, gradients or an
// optimizer state), as a Tensor view with Hugging Face's shape.
Tensor param_view(float* base, const ParamInfo& p);

// One layer's fields (name suffix after "model.layers.N.", shape, decay): the single list that
// offsets, pointers, names and initialization all derive from.
struct LayerField {
  const char* suffix;
  size_t rows, cols;
  int ndim;
  bool weight_decay;
};
std::array<LayerField, 9> llama_layer_fields(const ModelConfig& config);

ParameterLayout llama_parameter_layout(const ModelConfig& config);

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
  float* embed;  // (V, C)
  std::vector<LlamaLayerWeights> layers;
  float* final_norm;  // (C)
  float* lm_head;     // (V, C); == embed when tied
};
LlamaWeights llama_weights(const ModelConfig& config, const ParameterLayout& layout, float* base);

// Hugging Face's initialization: normal(0, initializer_range) for linear and embedding weights,
// ones for norms.  Value i of parameter p is the counter-based normal (seed, stream p, i): the same
// for any thread count.
void llama_init_parameters(float* params, const ParameterLayout& layout, double initializer_range,
                           uint64_t seed);

}  // namespace hibari
