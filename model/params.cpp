#include "model/params.h"

#include "core/error.h"
#include "core/rng.h"

namespace hibari {

namespace {

constexpr size_t align_floats = 16;  // 64 bytes

size_t aligned(size_t n) { return (n + align_floats - 1) / align_floats * align_floats; }

}  // namespace

const ParamInfo* ParameterLayout::find(const std::string& name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

Tensor param_view(float* base, const ParamInfo& p) {
  void* data = base + p.offset;
  if (p.ndim == 1) return Tensor::contiguous(data, DType::f32, {int64_t(p.shape[0])});
  return Tensor::contiguous(data, DType::f32, {int64_t(p.shape[0]), int64_t(p.shape[1])});
}

std::array<LayerField, 9> llama_layer_fields(const ModelConfig& c) {
  size_t C = c.hidden_size, Q = c.q_size(), KV = c.kv_size(), F = c.intermediate_size;
  return {{
      {"input_layernorm.weight", C, 1, 1, false},
      {"self_attn.q_proj.weight", Q, C, 2, true},
      {"self_attn.k_proj.weight", KV, C, 2, true},
      {"self_attn.v_proj.weight", KV, C, 2, true},
      {"self_attn.o_proj.weight", C, Q, 2, true},
      {"post_attention_layernorm.weight", C, 1, 1, false},
      {"mlp.gate_proj.weight", F, C, 2, true},
      {"mlp.up_proj.weight", F, C, 2, true},
      {"mlp.down_proj.weight", C, F, 2, true},
  }};
}

ParameterLayout llama_parameter_layout(const ModelConfig& c) {
  ParameterLayout layout;
  // Stacked projections (q,k,v and gate,up) must be contiguous to be one GEMM, so only a tensor
  // that does not continue a stack starts on an aligned offset.
  auto add = [&](std::string name, size_t rows, size_t cols, int ndim, bool decay, bool continues) {
    if (!continues) layout.total = aligned(layout.total);
    layout.params.push_back(
        {std::move(name), {rows, cols}, ndim, layout.total, rows * cols, decay});
    layout.total += rows * cols;
  };
  add("model.embed_tokens.weight", c.vocab_size, c.hidden_size, 2, true, false);
  for (size_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (const LayerField& f : llama_layer_fields(c)) {
      std::string suffix = f.suffix;
      bool continues = suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight" ||
                       suffix == "mlp.up_proj.weight";
      add(prefix + suffix, f.rows, f.cols, f.ndim, f.weight_decay, continues);
    }
  }
  add("model.norm.weight", c.hidden_size, 1, 1, false, false);
  if (!c.tie_word_embeddings) add("lm_head.weight", c.vocab_size, c.hidden_size, 2, true, false);
  layout.total = aligned(layout.total);
  return layout;
}

LlamaWeights llama_weights(const ModelConfig& c, const ParameterLayout& layout, float* base) {
  // The layout's order is fixed: embedding, 9 fields per layer, final norm, optional head.
  size_t expected = 1 + 9 * c.num_hidden_layers + 1 + (c.tie_word_embeddings ? 0 : 1);
  check(layout.params.size() == expected, "llama_weights: layout does not match the config");
  auto at = [&](size_t i) { return base + layout.params[i].offset; };
  LlamaWeights w;
  w.embed = at(0);
  for (size_t l = 0; l < c.num_hidden_layers; ++l) {
    size_t i = 1 + 9 * l;
    w.layers.push_back({.input_norm = at(i),
                        .qkv = at(i + 1),
                        .o_proj = at(i + 4),
                        .post_norm = at(i + 5),
                        .gate_up = at(i + 6),
                        .down = at(i + 8)});
  }
  w.final_norm = at(1 + 9 * c.num_hidden_layers);
  w.lm_head = c.tie_word_embeddings ? w.embed : at(2 + 9 * c.num_hidden_layers);
  return w;
}

void llama_init_parameters(float* params, const ParameterLayout& layout, double initializer_range,
                           uint64_t seed) {
  for (size_t p = 0; p < layout.params.size(); ++p) {
    const ParamInfo& info = layout.params[p];
    float* x = params + info.offset;
    if (info.ndim == 1) {
      for (size_t i = 0; i < info.numel; ++i) x[i] = 1.0f;  // RMSNorm weights start at one
      continue;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < info.numel; ++i)
      x[i] = float(initializer_range * random_normal(seed, uint32_t(p), i));
  }
}

}  // namespace hibari
