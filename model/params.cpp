#include "model/params.h"

#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/rng.h"

namespace hibari {

namespace {

constexpr size_t align_floats = 16;  // 64 bytes

size_t aligned(size_t n) {
  return checked_add(n, align_floats - 1, "parameter layout") / align_floats * align_floats;
}

const char* const embed_name = "model.embed_tokens.weight";

bool is_layer_param(const std::string& name) { return name.rfind("model.layers.", 0) == 0; }

// The full-tensor element runs of a shard's parameter: calls copy(local_offset, full_offset, n) for
// each contiguous run, offsets in floats from the tensors' starts.  rows: one run (part r of the
// rows is contiguous); cols: one run per row.
template <typename Copy>
void for_each_run(const ParamInfo& local, int tp_rank, Copy copy) {
  const size_t r = size_t(tp_rank);
  switch (local.split) {
    case ShardSplit::none:
      copy(size_t{0}, size_t{0}, local.numel);
      return;
    case ShardSplit::rows:
      copy(size_t{0}, r * local.numel, local.numel);
      return;
    case ShardSplit::cols: {
      const size_t rows = local.shape[0], cols = local.shape[1], full_cols = local.full_shape[1];
      if (cols == full_cols) return copy(size_t{0}, size_t{0}, local.numel);  // tp 1: one run
      for (size_t i = 0; i < rows; ++i) copy(i * cols, i * full_cols + r * cols, cols);
      return;
    }
  }
}

const ParamInfo& full_param(const ParameterLayout& full, const ParamInfo& local) {
  check(local.full_index < full.params.size() && full.params[local.full_index].name == local.name,
        "shard slicing: " + local.name + " is not in the full layout");
  const ParamInfo& f = full.params[local.full_index];
  check(f.numel == local.full_shape[0] * local.full_shape[1],
        "shard slicing: " + local.name + " has another shape in the full layout");
  return f;
}

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
  using enum ShardSplit;
  return {{
      {"input_layernorm.weight", C, 1, 1, false, none},
      {"self_attn.q_proj.weight", Q, C, 2, true, rows},
      {"self_attn.k_proj.weight", KV, C, 2, true, rows},
      {"self_attn.v_proj.weight", KV, C, 2, true, rows},
      {"self_attn.o_proj.weight", C, Q, 2, true, cols},
      {"post_attention_layernorm.weight", C, 1, 1, false, none},
      {"mlp.gate_proj.weight", F, C, 2, true, rows},
      {"mlp.up_proj.weight", F, C, 2, true, rows},
      {"mlp.down_proj.weight", C, F, 2, true, cols},
  }};
}

ParameterLayout llama_parameter_layout(const ModelConfig& c, const ModelShard& shard) {
  shard_check(c, shard);
  const size_t tp = size_t(shard.tp_size), L = c.num_hidden_layers;
  ParameterLayout layout;
  // Stacked projections (q,k,v and gate,up) must be contiguous to be one GEMM, so only a tensor
  // that does not continue a stack starts on an aligned offset.
  auto add = [&](std::string name, size_t rows, size_t cols, int ndim, bool decay, bool continues,
                 ShardSplit split, size_t full_index) {
    if (!continues) layout.total = aligned(layout.total);
    const size_t local_rows = split == ShardSplit::rows ? rows / tp : rows;
    const size_t local_cols = split == ShardSplit::cols ? cols / tp : cols;
    // Checked: a size that wraps would allocate too little and initialize past the end.
    const size_t numel = checked_mul(local_rows, local_cols, "parameter layout: " + name);
    layout.params.push_back({.name = std::move(name),
                             .shape = {local_rows, local_cols},
                             .ndim = ndim,
                             .offset = layout.total,
                             .numel = numel,
                             .weight_decay = decay,
                             .split = split,
                             .full_shape = {rows, cols},
                             .tp_replicated = split == ShardSplit::none,
                             .full_index = full_index});
    layout.total = checked_add(layout.total, numel, "parameter layout");
  };
  const size_t V = c.vocab_size, C = c.hidden_size;
  if (shard.first_stage) add(embed_name, V, C, 2, true, false, ShardSplit::rows, 0);
  for (size_t l = shard.layer_begin; l < shard_layer_end(c, shard); ++l) {
    std::string prefix = "model.layers." + std::to_string(l) + ".";
    size_t index = 1 + 9 * l;
    for (const LayerField& f : llama_layer_fields(c)) {
      std::string suffix = f.suffix;
      bool continues = suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight" ||
                       suffix == "mlp.up_proj.weight";
      add(prefix + suffix, f.rows, f.cols, f.ndim, f.weight_decay, continues, f.split, index++);
    }
  }
  if (shard.last_stage) {
    add("model.norm.weight", C, 1, 1, false, false, ShardSplit::none, 1 + 9 * L);
    if (!c.tie_word_embeddings)
      add("lm_head.weight", V, C, 2, true, false, ShardSplit::rows, 2 + 9 * L);
    else if (!shard.first_stage)  // the head's own copy of the tied embedding
      add(embed_name, V, C, 2, true, false, ShardSplit::rows, 0);
  }
  layout.total = aligned(layout.total);
  return layout;
}

std::vector<ParamGroup> llama_param_groups(const ParameterLayout& layout) {
  // A group is a run of parameters with the same key: the embedding (first of the buffer), one
  // layer ("model.layers.l." prefix), or the tail (everything after the layers).
  auto key = [&](size_t i) -> std::string {
    const std::string& name = layout.params[i].name;
    if (i == 0 && name == embed_name) return "embed";
    if (is_layer_param(name)) return name.substr(0, name.find('.', 13));
    return "tail";
  };
  std::vector<ParamGroup> groups;
  std::string current;
  for (size_t i = 0; i < layout.params.size(); ++i) {
    std::string k = key(i);
    if (groups.empty() || k != current) {
      size_t begin = groups.empty() ? 0 : layout.params[i].offset;
      if (!groups.empty()) groups.back().end = begin, groups.back().param_end = i;
      groups.push_back({begin, 0, i, 0});
      current = k;
    }
  }
  if (!groups.empty())
    groups.back().end = layout.total, groups.back().param_end = layout.params.size();
  return groups;
}

LlamaWeights llama_weights(const ModelConfig& c, const ParameterLayout& layout, float* base) {
  // The layout's order is fixed: embedding (first stage), 9 fields per layer, model.norm and the
  // head or the tied copy (last stage).
  const std::vector<ParamInfo>& ps = layout.params;
  auto at = [&](size_t i) { return base + ps[i].offset; };
  auto mismatch = [] { fail("llama_weights: layout does not match the config"); };
  LlamaWeights w;
  size_t i = 0;
  if (i < ps.size() && ps[i].name == embed_name) w.embed = at(i++);
  while (i < ps.size() && is_layer_param(ps[i].name)) {
    if (i + 9 > ps.size()) mismatch();
    w.layers.push_back({.input_norm = at(i),
                        .qkv = at(i + 1),
                        .o_proj = at(i + 4),
                        .post_norm = at(i + 5),
                        .gate_up = at(i + 6),
                        .down = at(i + 8)});
    i += 9;
  }
  if (i < ps.size()) {
    if (ps[i].name != "model.norm.weight") mismatch();
    w.final_norm = at(i++);
    if (!c.tie_word_embeddings) {
      if (i >= ps.size() || ps[i].name != "lm_head.weight") mismatch();
      w.lm_head = at(i++);
    } else if (w.embed == nullptr) {
      if (i >= ps.size() || ps[i].name != embed_name) mismatch();
      w.lm_head = at(i++);
    } else {
      w.lm_head = w.embed;
    }
  }
  if (i != ps.size() || w.layers.size() > c.num_hidden_layers) mismatch();
  if (w.embed && w.final_norm && w.layers.size() != c.num_hidden_layers) mismatch();
  return w;
}

void llama_init_parameters(float* params, const ParameterLayout& layout, double initializer_range,
                           uint64_t seed, const ModelShard& shard) {
  for (const ParamInfo& info : layout.params) {
    float* x = params + info.offset;
    if (info.ndim == 1) {
      for (size_t i = 0; i < info.numel; ++i) x[i] = 1.0f;  // RMSNorm weights start at one
      continue;
    }
    // Local element (i, j) is element (row0 + i, col0 + j) of the full tensor.
    const uint32_t stream = uint32_t(info.full_index);
    const size_t rows = info.shape[0], cols = info.shape[1], full_cols = info.full_shape[1];
    const size_t r = size_t(shard.tp_rank);
    const size_t row0 = info.split == ShardSplit::rows ? r * rows : 0;
    const size_t col0 = info.split == ShardSplit::cols ? r * cols : 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = 0; j < cols; ++j)
        x[i * cols + j] = float(initializer_range *
                                random_normal(seed, stream, (row0 + i) * full_cols + col0 + j));
  }
}

void llama_shard_extract(const ParameterLayout& full, const float* full_buf,
                         const ParameterLayout& local, float* local_buf, const ModelShard& shard) {
  for (const ParamInfo& p : local.params) {
    const float* src = full_buf + full_param(full, p).offset;
    float* dst = local_buf + p.offset;
    for_each_run(p, shard.tp_rank, [&](size_t l, size_t f, size_t n) {
      std::memcpy(dst + l, src + f, n * sizeof(float));
    });
  }
}

void llama_shard_insert(const ParameterLayout& full, float* full_buf, const ParameterLayout& local,
                        const float* local_buf, const ModelShard& shard) {
  for (const ParamInfo& p : local.params) {
    float* dst = full_buf + full_param(full, p).offset;
    const float* src = local_buf + p.offset;
    for_each_run(p, shard.tp_rank, [&](size_t l, size_t f, size_t n) {
      std::memcpy(dst + f, src + l, n * sizeof(float));
    });
  }
}

}  // namespace hibari
