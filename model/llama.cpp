#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cpu/vector_math.h"

namespace hibari {

namespace {

// Tokens per vocabulary-head chunk: enough rows for an efficient GEMM, few enough that
// (chunk x V) logits stay small (256 x 32000 floats = 32 MiB).
constexpr size_t default_head_chunk = 256;

// The sizes one rank works with; see the legend in llama.h.  size_t throughout: products such as
// nl * N * Sl overflow int on real models.
struct Dims {
  size_t B, T, N, Nl, C, tp, NHl, NKVl, HD, Ql, Sl, Fl, Vl, nl;
};

Dims dims(const Llama& m, size_t B, size_t T) {
  const ModelConfig& c = m.config;
  const size_t tp = size_t(m.shard.tp_size), N = B * T;
  const size_t NHl = c.num_attention_heads / tp, NKVl = c.num_key_value_heads / tp;
  return {.B = B,
          .T = T,
          .N = N,
          .Nl = m.shard.sequence_parallel ? N / tp : N,
          .C = c.hidden_size,
          .tp = tp,
          .NHl = NHl,
          .NKVl = NKVl,
          .HD = c.head_dim,
          .Ql = NHl * c.head_dim,
          .Sl = (NHl + 2 * NKVl) * c.head_dim,
          .Fl = c.intermediate_size / tp,
          .Vl = c.vocab_size / tp,
          .nl = m.weights.layers.size()};
}

// Counts the targets that take part in the loss.
size_t count_valid(const int32_t* targets, size_t N) {
  size_t n = 0;
  for (size_t i = 0; i < N; ++i) n += targets[i] != cpu::ignore_index;
  return n;
}

std::span<float> span_of(float* p, size_t n) { return {p, n}; }

// --- hooks -------------------------------------------------------------------------------------

void use_params(Llama& m, size_t group) {
  if (group != SIZE_MAX && m.hooks.use_params) m.hooks.use_params(m.hooks.context, group);
}
void grads_done(Llama& m, size_t group) {
  if (group != SIZE_MAX && m.hooks.grads_done) m.hooks.grads_done(m.hooks.context, group);
}

// --- the tensor-parallel regions, forward and backward halves together (Megatron's mappings) ----

// Entering a column-parallel GEMM, forward: the norm's output for this rank's tokens (norm_local)
// becomes the input for all N tokens (norm_out): all-gather with SP, identity otherwise (the two
// are one buffer).  Its backward is reduce_norm_grad.
void gather_norm(Llama& m, const Dims& d) {
  if (!m.shard.sequence_parallel) return;
  all_gather(*m.tp, span_of(m.acts.norm_out, d.N * d.C), span_of(m.acts.norm_local, d.Nl * d.C));
}

// Backward of gather_norm: dnorm_out (N, C) holds this rank's partial gradient (its columns of the
// GEMM); the whole gradient is the sum over tp.  SP: reduce-scatter into dnorm_local; else
// all-reduce in place.  Nothing with tp 1.
void reduce_norm_grad(Llama& m, const Dims& d) {
  if (d.tp == 1) return;
  if (m.shard.sequence_parallel)
    reduce_scatter_sum(*m.tp, span_of(m.acts.dnorm_local, d.Nl * d.C),
                       span_of(m.acts.dnorm_out, d.N * d.C));
  else
    all_reduce_sum(*m.tp, span_of(m.acts.dnorm_out, d.N * d.C));
}

// A row-parallel GEMM joining the residual stream, forward: out (Nl, C) = res + sum over tp of
// a (N, K) @ w^T (C, K): all-reduce, or reduce-scatter to this rank's tokens with SP.
void row_parallel_residual(Llama& m, const Dims& d, float* out, const float* res, const float* a,
                           const float* w, size_t K) {
  const size_t n = d.Nl * d.C;
  if (d.tp == 1) {
    std::memcpy(out, res, n * sizeof(float));
    cpu::gemm(out, a, w, d.N, d.C, K, {.transpose_b = true, .accumulate = true});
    return;
  }
  float* partial = m.acts.partial;
  cpu::gemm(partial, a, w, d.N, d.C, K, {.transpose_b = true});
  if (m.shard.sequence_parallel) {
    reduce_scatter_sum(*m.tp, span_of(out, n), span_of(partial, d.N * d.C));
  } else {
    all_reduce_sum(*m.tp, span_of(partial, n));
    std::memcpy(out, partial, n * sizeof(float));
  }
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] += res[i];
}

// Backward of row_parallel_residual's sum: the gradient of the row-parallel output for all N
// tokens.  SP: all-gather dresidual; otherwise dresidual itself (identical on every tp rank).
const float* gather_dresidual(Llama& m, const Dims& d) {
  if (!m.shard.sequence_parallel) return m.acts.dresidual;
  all_gather(*m.tp, span_of(m.acts.dresidual_full, d.N * d.C),
             span_of(m.acts.dresidual, d.Nl * d.C));
  return m.acts.dresidual_full;
}

// --- vocabulary-parallel embedding and cross-entropy (tp > 1) ------------------------------------

// out (N, C) = rows of this rank's vocabulary part [lo, lo + Vl) of the embedding, zero for tokens
// outside it: summed over tp this is the full lookup.
void embedding_forward_part(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C,
                            size_t lo, size_t Vl) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const size_t id = size_t(tokens[n]);
    if (id >= lo && id < lo + Vl)
      std::memcpy(out + n * C, wte + (id - lo) * C, C * sizeof(float));
    else
      std::memset(out + n * C, 0, C * sizeof(float));
  }
}

// dwte (Vl, C) += dout rows of the tokens in [lo, lo + Vl); channel stripes per thread, token order
// inside a stripe (deterministic, as cpu::embedding_backward).
void embedding_backward_part(float* dwte, const float* dout, const int32_t* tokens, size_t N,
                             size_t C, size_t lo, size_t Vl) {
  constexpr size_t stripe = 64;
  const size_t stripes = (C + stripe - 1) / stripe;
#pragma omp parallel for schedule(static)
  for (size_t s = 0; s < stripes; ++s) {
    const size_t c0 = s * stripe, c1 = std::min(c0 + stripe, C);
    for (size_t n = 0; n < N; ++n) {
      const size_t id = size_t(tokens[n]);
      if (id < lo || id >= lo + Vl) continue;
      float* row = dwte + (id - lo) * C;
      const float* g = dout + n * C;
#pragma omp simd
      for (size_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

// Cross-entropy of n rows whose logits (n, Vl) are this rank's vocabulary part [lo, lo + Vl).
// Each rank contributes per row its max, sum(exp(x - max)) and the target's logit (0 when the
// target is elsewhere); one all-gather gives every rank all of them, combined in rank order, so
// every rank computes the same bits:
//   G = max_r max_r,  Z = sum_r sum_r exp(max_r - G),  loss = G + log Z - x_target,
//   dlogits = (exp(x - G) / Z - onehot) * grad_scale   (local: this rank's columns only).
void vocab_parallel_cross_entropy(Llama& m, float* logits, float* losses, const int32_t* targets,
                                  size_t n, size_t Vl, float grad_scale, bool training) {
  const size_t lo = size_t(m.shard.tp_rank) * Vl, tp = size_t(m.shard.tp_size);
  float* stats = m.acts.ce_stats;  // [max (n) | sum (n) | target logit (n)]
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < n; ++r) {
    const float* x = logits + r * Vl;
    float max = x[0];
#pragma omp simd reduction(max : max)
    for (size_t v = 0; v < Vl; ++v) max = x[v] > max ? x[v] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t v = 0; v < Vl; ++v) sum += cpu::exp_approx(x[v] - max);
    const int32_t y = targets[r];
    const bool here = y != cpu::ignore_index && size_t(y) >= lo && size_t(y) < lo + Vl;
    stats[r] = max;
    stats[n + r] = sum;
    stats[2 * n + r] = here ? x[size_t(y) - lo] : 0.0f;
  }
  float* all = m.acts.ce_gathered;  // (tp, 3n)
  all_gather(*m.tp, span_of(all, tp * 3 * n), span_of(stats, 3 * n));
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < n; ++r) {
    float* x = logits + r * Vl;
    const int32_t y = targets[r];
    if (y == cpu::ignore_index) {
      losses[r] = 0.0f;
      if (training) std::memset(x, 0, Vl * sizeof(float));
      continue;
    }
    float G = all[r];
    for (size_t k = 1; k < tp; ++k) G = std::max(G, all[k * 3 * n + r]);
    float Z = 0.0f, target_logit = 0.0f;
    for (size_t k = 0; k < tp; ++k) {
      Z += all[k * 3 * n + n + r] * std::exp(all[k * 3 * n + r] - G);
      target_logit += all[k * 3 * n + 2 * n + r];
    }
    losses[r] = G + std::log(Z) - target_logit;
    if (!training) continue;
    const float scale = grad_scale / Z;
#pragma omp simd
    for (size_t v = 0; v < Vl; ++v) x[v] = cpu::exp_approx(x[v] - G) * scale;
    if (size_t(y) >= lo && size_t(y) < lo + Vl) x[size_t(y) - lo] -= grad_scale;
  }
}

// --- views -------------------------------------------------------------------------------------

// Points the views of group g into `base`, a buffer laid out like the flat buffer's range of g.
void point_views(Llama& m, LlamaWeights& w, size_t g, float* base) {
  const ParamGroup& group = m.groups[g];
  auto at = [&](size_t i) { return base + (m.layout.params[i].offset - group.begin); };
  const size_t i0 = group.param_begin;
  if (g == m.embed_group) {
    w.embed = at(i0);
    if (m.config.tie_word_embeddings && m.shard.last_stage) w.lm_head = w.embed;
  } else if (g == m.tail_group) {
    w.final_norm = at(i0);
    if (group.param_end > i0 + 1) w.lm_head = at(i0 + 1);
  } else {
    LlamaLayerWeights& layer = w.layers[g - m.first_layer_group];
    layer = {.input_norm = at(i0),
             .qkv = at(i0 + 1),
             .o_proj = at(i0 + 4),
             .post_norm = at(i0 + 5),
             .gate_up = at(i0 + 6),
             .down = at(i0 + 8)};
  }
}

}  // namespace

void llama_create(Llama& m, const ModelConfig& c, size_t B, size_t T, const ModelShard& shard,
                  Comm* tp, size_t activation_slots, const LlamaOptions& options) {
  check(B > 0 && T > 0, "llama_create: empty batch");
  check(activation_slots > 0, "llama_create: no activation slot");
  if (T > c.max_position_embeddings)
    fail("sequence length " + std::to_string(T) + " exceeds max_position_embeddings " +
         std::to_string(c.max_position_embeddings));
  shard_check(c, shard, checked_mul(B, T, "micro-batch tokens"));
  if (shard.tp_size > 1)
    check(tp != nullptr && tp->size == shard.tp_size && tp->rank == shard.tp_rank,
          "llama_create: the tensor-parallel communicator does not match the shard");
  m.config = c;
  m.shard = shard;
  m.tp = shard.tp_size > 1 ? tp : nullptr;
  m.layout = llama_parameter_layout(c, shard);
  m.groups = llama_param_groups(m.layout);
  const size_t nl = shard_layer_end(c, shard) - shard.layer_begin;
  m.embed_group = shard.first_stage ? 0 : SIZE_MAX;
  m.first_layer_group = shard.first_stage ? 1 : 0;
  m.tail_group = shard.last_stage ? m.first_layer_group + nl : SIZE_MAX;
  check(m.groups.size() == m.first_layer_group + nl + (shard.last_stage ? 1 : 0),
        "llama_create: parameter groups do not match the shard");
  m.weights = {};
  m.weights.layers.assign(nl, {});
  m.dweights = m.weights;
  m.max_B = B;
  m.max_T = T;
  const Dims d = dims(m, B, T);
  const size_t N = d.N, Nl = d.Nl, C = d.C, S = d.Sl, Q = d.Ql, F = d.Fl, V = d.Vl, HD = d.HD;
  const bool tp_on = d.tp > 1, sp = shard.sequence_parallel;
  const bool last = shard.last_stage;
  m.head_chunk = std::min(default_head_chunk, N);

  Arena& a = m.arena;
  const size_t total = options.own_parameters ? m.layout.total : 0;
  size_t params = a.plan_floats(total), grads = a.plan_floats(total);
  // The field lists of LlamaSaved and LlamaActivations, with sizes: one place, one order.
  // A size of 0 leaves the field null (the stage or the tp setting does not need it).
  struct Plan {
    float** field;
    size_t floats;
  };
  // Checked products: with B x T tokens of a large model these would otherwise wrap.
  auto P = [](auto... factors) { return checked_product("activation sizes", size_t(factors)...); };
  std::vector<Plan> plan;
  m.slots.assign(activation_slots, {});
  for (LlamaSaved& s : m.slots) {
    plan.insert(plan.end(), {
                                {&s.residual, P((nl + 1), Nl, C)},
                                {&s.rstd1, P(nl, Nl)},
                                {&s.qkv, P(nl, N, S)},
                                {&s.att, P(nl, N, Q)},
                                {&s.lse, P(nl, N, d.NHl)},
                                {&s.residual_mid, P(nl, Nl, C)},
                                {&s.rstd2, P(nl, Nl)},
                                {&s.gate_up, P(nl, N, 2, F)},
                                {&s.final_rstd, last ? Nl : 0},
                                {&s.dfinal, last ? P(Nl, C) : 0},
                            });
  }
  LlamaActivations& x = m.acts;
  x = {};
  plan.insert(plan.end(), {
                              {&x.norm_out, P(N, C)},
                              {&x.norm_local, sp ? P(Nl, C) : 0},
                              {&x.mlp_hidden, P(N, F)},
                              {&x.logits, last ? P(m.head_chunk, V) : 0},
                              {&x.losses, last ? N : 0},
                              {&x.dresidual, P(Nl, C)},
                              {&x.dresidual_full, sp ? P(N, C) : 0},
                              {&x.dnorm_out, P(N, C)},
                              {&x.dnorm_local, sp ? P(Nl, C) : 0},
                              {&x.partial, tp_on ? P(N, C) : 0},
                              {&x.dqkv, P(N, S)},
                              {&x.datt, P(N, Q)},
                              {&x.dgate_up, P(N, 2, F)},
                              {&x.dmlp_hidden, P(N, F)},
                              {&x.ce_stats, tp_on && last ? P(3, m.head_chunk) : 0},
                              {&x.ce_gathered, tp_on && last ? P(d.tp, 3, m.head_chunk) : 0},
                              {&x.dnorm_weights, sp ? P(2 * nl + 1, C) : 0},
                              {&x.doutput, last ? 0 : P(Nl, C)},
                              {&x.rope_cos, P(T, HD / 2)},
                              {&x.rope_sin, P(T, HD / 2)},
                          });
  std::vector<size_t> slots;
  for (const Plan& p : plan) slots.push_back(p.floats ? a.plan_floats(p.floats) : SIZE_MAX);
  const std::string source = c.source.empty() ? std::string("the model config") : c.source;
  a.commit(source, "the model's parameters, gradients and activations (micro-batch " +
                       std::to_string(B) + " x " + std::to_string(T) + " tokens)");
  for (size_t i = 0; i < plan.size(); ++i)
    *plan[i].field = slots[i] == SIZE_MAX ? nullptr : a.floats(slots[i]);
  // Without SP the local and gathered buffers are one (Nl = N).
  if (!sp) {
    x.norm_local = x.norm_out;
    x.dresidual_full = x.dresidual;
    x.dnorm_local = x.dnorm_out;
  }
  if (options.own_parameters) {
    m.params = a.floats(params);
    m.grads = a.floats(grads);
    for (size_t g = 0; g < m.groups.size(); ++g) {
      point_views(m, m.weights, g, m.params + m.groups[g].begin);
      point_views(m, m.dweights, g, m.grads + m.groups[g].begin);
    }
  } else {
    m.params = m.grads = nullptr;
  }

  std::vector<float> inv_freq(HD / 2);
  cpu::rope_inv_freq(inv_freq.data(), HD, c.rope_theta, c.rope_scaling);
  cpu::rope_table(x.rope_cos, x.rope_sin, inv_freq.data(), T, HD);
  m.inputs.assign(activation_slots * N, 0);
  for (size_t s = 0; s < activation_slots; ++s) m.slots[s].inputs = m.inputs.data() + s * N;
}

void llama_zero_grads(Llama& m) {
  if (m.grads) std::memset(m.grads, 0, m.layout.total * sizeof(float));
}

void llama_point_group(Llama& m, size_t group, float* params, float* grads) {
  check(group < m.groups.size(), "llama_point_group: no group " + std::to_string(group));
  if (params) point_views(m, m.weights, group, params);
  if (grads) point_views(m, m.dweights, group, grads);
}

float* llama_stage_input(Llama& m, size_t slot) {
  check(slot < m.slots.size(), "llama_stage_input: no such activation slot");
  return m.slots[slot].residual;
}

const float* llama_stage_output(const Llama& m, size_t slot) {
  check(slot < m.slots.size(), "llama_stage_output: no such activation slot");
  const LlamaSaved& s = m.slots[slot];
  const size_t N = s.B * s.T, Nl = m.shard.sequence_parallel ? N / size_t(m.shard.tp_size) : N;
  return s.residual + m.weights.layers.size() * Nl * m.config.hidden_size;
}

float* llama_stage_doutput(Llama& m) { return m.acts.doutput; }

const float* llama_stage_dinput(const Llama& m) { return m.acts.dresidual; }

size_t llama_stage_floats(const Llama& m) {
  size_t N = m.max_B * m.max_T;
  if (m.shard.sequence_parallel) N /= size_t(m.shard.tp_size);
  return N * m.config.hidden_size;
}

float llama_forward(Llama& m, const int32_t* inputs, const int32_t* targets, size_t B, size_t T,
                    float loss_weight, size_t slot) {
  const ModelConfig& c = m.config;
  check(B <= m.max_B && T <= m.max_T && B * T > 0,
        "llama_forward: batch larger than the model was planned for");
  check(slot < m.slots.size(), "llama_forward: no such activation slot");
  const Dims d = dims(m, B, T);
  const size_t N = d.N, Nl = d.Nl, C = d.C, F = d.Fl, S = d.Sl, Q = d.Ql, V = c.vocab_size;
  if (m.shard.sequence_parallel)
    check(N % d.tp == 0, "llama_forward: sequence parallelism needs B*T divisible by tp");
  const float eps = float(c.rms_norm_eps);
  LlamaActivations& x = m.acts;
  LlamaSaved& s = m.slots[slot];
  s.B = m.B = B;
  s.T = m.T = T;
  const cpu::AttentionShape attention = {B, T, d.NHl, d.NKVl, d.HD};

  if (m.shard.first_stage) {
    check(inputs != nullptr, "llama_forward: the first stage needs token ids");
    for (size_t i = 0; i < N; ++i) {
      if (inputs[i] < 0 || size_t(inputs[i]) >= V)
        fail("token id " + std::to_string(inputs[i]) + " is outside the vocabulary (" +
             std::to_string(V) + ")");
    }
    std::copy(inputs, inputs + N, s.inputs);
    use_params(m, m.embed_group);
    if (d.tp == 1) {
      cpu::embedding_forward(s.residual, inputs, m.weights.embed, N, C);
    } else {
      // vocabulary-parallel: each rank looks up its rows, the sum over tp is the lookup
      const size_t lo = size_t(m.shard.tp_rank) * d.Vl;
      if (m.shard.sequence_parallel) {
        embedding_forward_part(x.partial, inputs, m.weights.embed, N, C, lo, d.Vl);
        reduce_scatter_sum(*m.tp, span_of(s.residual, Nl * C), span_of(x.partial, N * C));
      } else {
        embedding_forward_part(s.residual, inputs, m.weights.embed, N, C, lo, d.Vl);
        all_reduce_sum(*m.tp, span_of(s.residual, N * C));
      }
    }
  }
  for (size_t l = 0; l < d.nl; ++l) {
    use_params(m, m.first_layer_group + l);
    const LlamaLayerWeights& w = m.weights.layers[l];
    float* res_in = s.residual + l * Nl * C;
    float* res_mid = s.residual_mid + l * Nl * C;
    float* res_out = s.residual + (l + 1) * Nl * C;
    float* qkv = s.qkv + l * N * S;
    float* att = s.att + l * N * Q;
    float* gate_up = s.gate_up + l * N * 2 * F;
    // attention
    cpu::rmsnorm_forward(x.norm_local, s.rstd1 + l * Nl, res_in, w.input_norm, Nl, C, eps);
    gather_norm(m, d);
    cpu::gemm(qkv, x.norm_out, w.qkv, N, S, C, {.transpose_b = true});
    // q and k are adjacent in each row: rotate their NH + NKV heads in one pass
    cpu::rope_forward(qkv, x.rope_cos, x.rope_sin, B, T, d.NHl + d.NKVl, d.HD, S);
    cpu::attention_forward(att, s.lse + l * N * d.NHl, qkv, attention);
    row_parallel_residual(m, d, res_mid, res_in, att, w.o_proj, Q);
    // MLP
    cpu::rmsnorm_forward(x.norm_local, s.rstd2 + l * Nl, res_mid, w.post_norm, Nl, C, eps);
    gather_norm(m, d);
    cpu::gemm(gate_up, x.norm_out, w.gate_up, N, 2 * F, C, {.transpose_b = true});
    cpu::swiglu_forward(x.mlp_hidden, gate_up, N, F);
    row_parallel_residual(m, d, res_out, res_mid, x.mlp_hidden, w.down, F);
  }
  if (!m.shard.last_stage) return 0.0f;  // the output waits in llama_stage_output

  use_params(m, m.tail_group);
  const float* res_final = s.residual + d.nl * Nl * C;
  cpu::rmsnorm_forward(x.norm_local, s.final_rstd, res_final, m.weights.final_norm, Nl, C, eps);
  gather_norm(m, d);
  if (targets == nullptr) return 0.0f;

  // Vocabulary head + loss, chunk by chunk.  In training the chunk's logits become their gradient
  // at once, and dfinal (the gradient entering model.norm) and d lm_head are filled here.
  // Tied on one stage, the head reads the embedding group.
  if (m.config.tie_word_embeddings && m.shard.first_stage) use_params(m, m.embed_group);
  size_t valid = count_valid(targets, N);
  const bool training = loss_weight > 0;
  const float grad_scale = valid ? loss_weight / float(valid) : 0.0f;
  // tp > 1: the head's input gradient is this rank's partial sum (its vocabulary rows)
  float* dhead = d.tp == 1 || !m.shard.sequence_parallel ? s.dfinal : x.dnorm_out;
  for (size_t n0 = 0; n0 < N; n0 += m.head_chunk) {
    size_t n = std::min(m.head_chunk, N - n0);
    const float* h = x.norm_out + n0 * C;
    cpu::gemm(x.logits, h, m.weights.lm_head, n, d.Vl, C, {.transpose_b = true});
    if (d.tp > 1) {
      vocab_parallel_cross_entropy(m, x.logits, x.losses + n0, targets + n0, n, d.Vl, grad_scale,
                                   training);
    } else if (!training) {
      cpu::cross_entropy_loss(x.losses + n0, x.logits, targets + n0, n, V);
    } else {
      cpu::softmax_cross_entropy(x.logits, x.losses + n0, targets + n0, n, V, grad_scale);
    }
    if (!training) continue;
    cpu::gemm(dhead + n0 * C, x.logits, m.weights.lm_head, n, C, d.Vl);
    cpu::gemm(m.dweights.lm_head, x.logits, h, d.Vl, C, n,
              {.transpose_a = true, .accumulate = true});
  }
  if (training && d.tp > 1) {
    if (m.shard.sequence_parallel)
      reduce_scatter_sum(*m.tp, span_of(s.dfinal, Nl * C), span_of(dhead, N * C));
    else
      all_reduce_sum(*m.tp, span_of(dhead, N * C));
  }
  double total = 0.0;  // summed in token order: the same for any thread count
  for (size_t i = 0; i < N; ++i) total += x.losses[i];
  return valid ? float(total / double(valid)) : 0.0f;
}

void llama_backward(Llama& m, size_t slot) {
  const ModelConfig& c = m.config;
  check(slot < m.slots.size(), "llama_backward: no such activation slot");
  LlamaSaved& s = m.slots[slot];
  check(s.B > 0, "llama_backward: no forward in this slot");
  const Dims d = dims(m, s.B, s.T);
  const size_t N = d.N, Nl = d.Nl, C = d.C, F = d.Fl, S = d.Sl, Q = d.Ql;
  const float eps = float(c.rms_norm_eps);
  const bool sp = m.shard.sequence_parallel;
  const cpu::AttentionShape attention = {s.B, s.T, d.NHl, d.NKVl, d.HD};
  LlamaActivations& x = m.acts;
  // With SP a rank's norm-weight gradient covers only its tokens: this micro-batch's part is
  // summed over tp before it joins the accumulated gradient.
  if (sp) std::memset(x.dnorm_weights, 0, (2 * d.nl + 1) * C * sizeof(float));
  auto finish_norm_grads = [&](float* dst0, float* dst1, float* part, size_t count) {
    all_reduce_sum(*m.tp, span_of(part, count * C));
    for (size_t i = 0; i < C; ++i) dst0[i] += part[i];
    if (count == 2)
      for (size_t i = 0; i < C; ++i) dst1[i] += part[C + i];
  };

  if (m.shard.last_stage) {
    // model.norm: the residual stream's gradient starts here (norm backward accumulates, so zero)
    use_params(m, m.tail_group);
    float* dweight = sp ? x.dnorm_weights + 2 * d.nl * C : m.dweights.final_norm;
    std::memset(x.dresidual, 0, Nl * C * sizeof(float));
    cpu::rmsnorm_backward(x.dresidual, dweight, s.dfinal, s.residual + d.nl * Nl * C,
                          m.weights.final_norm, s.final_rstd, Nl, C);
    if (sp) finish_norm_grads(m.dweights.final_norm, nullptr, dweight, 1);
    grads_done(m, m.tail_group);
  } else {
    std::memcpy(x.dresidual, x.doutput, Nl * C * sizeof(float));
  }
  for (size_t l = d.nl; l-- > 0;) {
    use_params(m, m.first_layer_group + l);
    const LlamaLayerWeights& w = m.weights.layers[l];
    const LlamaLayerWeights& dw = m.dweights.layers[l];
    const float* res_in = s.residual + l * Nl * C;
    const float* res_mid = s.residual_mid + l * Nl * C;
    const float* qkv = s.qkv + l * N * S;
    const float* att = s.att + l * N * Q;
    const float* gate_up = s.gate_up + l * N * 2 * F;
    float* dinput_norm = sp ? x.dnorm_weights + 2 * l * C : dw.input_norm;
    float* dpost_norm = sp ? x.dnorm_weights + (2 * l + 1) * C : dw.post_norm;
    // MLP: out = res_mid + down(swiglu(gate_up(rmsnorm2(res_mid))))
    const float* dout = gather_dresidual(m, d);
    cpu::swiglu_forward(x.mlp_hidden, gate_up, N, F);  // recompute
    cpu::gemm(x.dmlp_hidden, dout, w.down, N, F, C);
    cpu::gemm(dw.down, dout, x.mlp_hidden, C, F, N, {.transpose_a = true, .accumulate = true});
    cpu::swiglu_backward(x.dgate_up, x.dmlp_hidden, gate_up, N, F);
    cpu::rmsnorm_forward(x.norm_local, s.rstd2 + l * Nl, res_mid, w.post_norm, Nl, C,
                         eps);  // recompute
    gather_norm(m, d);
    cpu::gemm(x.dnorm_out, x.dgate_up, w.gate_up, N, C, 2 * F);
    cpu::gemm(dw.gate_up, x.dgate_up, x.norm_out, 2 * F, C, N,
              {.transpose_a = true, .accumulate = true});
    reduce_norm_grad(m, d);
    cpu::rmsnorm_backward(x.dresidual, dpost_norm, x.dnorm_local, res_mid, w.post_norm,
                          s.rstd2 + l * Nl, Nl, C);
    // attention: res_mid = res_in + o_proj(attention(rope(qkv(rmsnorm1(res_in)))))
    dout = gather_dresidual(m, d);
    cpu::gemm(x.datt, dout, w.o_proj, N, Q, C);
    cpu::gemm(dw.o_proj, dout, att, C, Q, N, {.transpose_a = true, .accumulate = true});
    cpu::attention_backward(x.dqkv, x.datt, qkv, att, s.lse + l * N * d.NHl, attention);
    cpu::rope_backward(x.dqkv, x.rope_cos, x.rope_sin, s.B, s.T, d.NHl + d.NKVl, d.HD, S);
    cpu::rmsnorm_forward(x.norm_local, s.rstd1 + l * Nl, res_in, w.input_norm, Nl, C,
                         eps);  // recompute
    gather_norm(m, d);
    cpu::gemm(x.dnorm_out, x.dqkv, w.qkv, N, C, S);
    cpu::gemm(dw.qkv, x.dqkv, x.norm_out, S, C, N, {.transpose_a = true, .accumulate = true});
    reduce_norm_grad(m, d);
    cpu::rmsnorm_backward(x.dresidual, dinput_norm, x.dnorm_local, res_in, w.input_norm,
                          s.rstd1 + l * Nl, Nl, C);
    if (sp) finish_norm_grads(dw.input_norm, dw.post_norm, dinput_norm, 2);
    grads_done(m, m.first_layer_group + l);
  }
  if (m.shard.first_stage) {
    use_params(m, m.embed_group);
    if (d.tp == 1) {
      cpu::embedding_backward(m.dweights.embed, x.dresidual, s.inputs, N, C);
    } else {
      // vocabulary-parallel: the lookup's sum over tp passes the whole gradient to every rank
      const float* dout = gather_dresidual(m, d);
      embedding_backward_part(m.dweights.embed, dout, s.inputs, N, C,
                              size_t(m.shard.tp_rank) * d.Vl, d.Vl);
    }
    grads_done(m, m.embed_group);
  }
}

void llama_logits_at(Llama& m, float* logits, size_t b, size_t t) {
  const ModelConfig& c = m.config;
  check(m.shard.tp_size == 1 && m.shard.last_stage, "llama_logits_at: needs the whole head");
  check(b < m.B && t < m.T, "llama_logits_at: position outside the last forward");
  const float* h = m.acts.norm_out + (b * m.T + t) * c.hidden_size;
  cpu::gemm(logits, h, m.weights.lm_head, 1, c.vocab_size, c.hidden_size, {.transpose_b = true});
}

double llama_train_flops_per_token(const ModelConfig& c, size_t T) {
  return 6.0 * double(matmul_parameter_count(c)) +
         6.0 * double(c.num_hidden_layers) * double(T) * double(c.q_size());
}

}  // namespace hibari
