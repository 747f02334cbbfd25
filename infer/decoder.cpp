// infer/decoder.cpp — see decoder.h.
#include "infer/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/cached_attention.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/rowwise_matmul.h"
#include "kernels/cpu/swiglu.h"

namespace hibari {

namespace {

// Logit rows computed at once by sequence_logprobs (and the floor of the logits buffer).
constexpr size_t kLogitChunk = 64;

size_t logit_capacity(const DecoderOptions& o) { return std::max(o.max_batch, kLogitChunk); }

// The weights the GEMMs read: packed for the rowwise GEMM, as stored for OpenBLAS.
const LlamaWeights& gemm_weights(const Decoder& d) {
  return d.options.blas_gemm ? d.weights : d.packed;
}

// y (M, N) = x (M, K) @ w (N, K)^T: rowwise (batch-independent bits; w packed) or OpenBLAS.
void linear(const Decoder& d, float* y, const float* x, const float* w, size_t M, size_t N,
            size_t K) {
  if (d.options.blas_gemm)
    cpu::gemm(y, x, w, M, N, K, {.transpose_b = true});
  else
    cpu::matmul_rowwise(y, x, w, M, N, K);
}

// Moves the step's rows with logits (logit_rows[0 .. kept), ascending) to the front of the
// arrays the rest of the last layer reads, and makes logit_rows the identity.
void keep_logit_rows(Decoder& d, size_t kept) {
  const size_t C = d.config.hidden_size, S = d.config.qkv_size();
  for (size_t j = 0; j < kept; ++j) {
    const size_t r = d.logit_rows[j];  // r >= j: rows are ascending
    if (r != j) {
      std::memcpy(d.qkv + j * S, d.qkv + r * S, S * sizeof(float));
      std::memcpy(d.residual + j * C, d.residual + r * C, C * sizeof(float));
      d.row_seq[j] = d.row_seq[r];
      d.row_pos[j] = d.row_pos[r];
    }
    d.logit_rows[j] = j;
  }
}

float* k_cache_at(Decoder& d, size_t layer) {
  const ModelConfig& c = d.config;
  return d.k_cache +
         layer * d.options.max_batch * c.num_key_value_heads * d.options.max_seq * c.head_dim;
}
float* v_cache_at(Decoder& d, size_t layer) {
  const ModelConfig& c = d.config;
  return d.v_cache +
         layer * d.options.max_batch * c.num_key_value_heads * d.options.max_seq * c.head_dim;
}

// Runs the layers over the step's rows (row_seq / row_pos / row_token, N of them), appending each
// row's K and V to its slot's cache, and leaves the final-normed hidden states of the `logit`
// rows listed in logit_rows (ascending) in d.norm's first rows (logit_rows becomes 0, 1, ...).
void forward_rows(Decoder& d, size_t N, size_t logit) {
  const ModelConfig& c = d.config;
  const size_t C = c.hidden_size, F = c.intermediate_size, HD = c.head_dim;
  const size_t NH = c.num_attention_heads, NKV = c.num_key_value_heads;
  const size_t Q = c.q_size(), KV = c.kv_size(), S = c.qkv_size(), P = d.options.max_seq;
  const size_t half = HD / 2;
  const float eps = float(c.rms_norm_eps);
  float* rstd = d.hidden;  // (N) scratch for the norms' 1/rms (hidden is free at that moment)
  cpu::embedding_forward(d.residual, d.row_token.data(), d.weights.embed, N, C);
  const size_t L = d.weights.layers.size();
  for (size_t l = 0; l < L; ++l) {
    const LlamaLayerWeights& w = gemm_weights(d).layers[l];
    const LlamaLayerWeights& norms = d.weights.layers[l];
    // attention
    cpu::rmsnorm_forward(d.norm, rstd, d.residual, norms.input_norm, N, C, eps);
    linear(d, d.qkv, d.norm, w.qkv, N, S, C);
    float* kc = k_cache_at(d, l);
    float* vc = v_cache_at(d, l);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; ++r) {
      float* row = d.qkv + r * S;
      const size_t p = size_t(d.row_pos[r]);
      // q and k heads are adjacent: rotate NH + NKV heads at this row's position
      cpu::rope_forward(row, d.rope_cos + p * half, d.rope_sin + p * half, 1, 1, NH + NKV, HD, S);
      for (size_t h = 0; h < NKV; ++h) {
        const size_t at = ((size_t(d.row_seq[r]) * NKV + h) * P + p) * HD;
        std::memcpy(kc + at, row + Q + h * HD, HD * sizeof(float));
        std::memcpy(vc + at, row + Q + KV + h * HD, HD * sizeof(float));
      }
    }
    if (l + 1 == L && logit < N) {
      keep_logit_rows(d, logit);
      N = logit;
      if (N == 0) return;
    }
    cpu::cached_attention_forward(d.att, d.qkv, S, kc, vc, d.row_seq.data(), d.row_pos.data(), N,
                                  {.NH = NH, .NKV = NKV, .HD = HD, .P = P});
    // residual += o_proj(att), through norm as the GEMM's output
    linear(d, d.norm, d.att, w.o_proj, N, C, Q);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N * C; ++i) d.residual[i] += d.norm[i];
    // MLP
    cpu::rmsnorm_forward(d.norm, rstd, d.residual, norms.post_norm, N, C, eps);
    linear(d, d.gate_up, d.norm, w.gate_up, N, 2 * F, C);
    cpu::swiglu_forward(d.hidden, d.gate_up, N, F);
    linear(d, d.norm, d.hidden, w.down, N, C, F);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N * C; ++i) d.residual[i] += d.norm[i];
  }
  if (logit < N) {  // no layers
    keep_logit_rows(d, logit);
    N = logit;
  }
  cpu::rmsnorm_forward(d.norm, rstd, d.residual, d.weights.final_norm, N, C, eps);
}

// Fills the step's row arrays from `tokens`, checking slots, ids and lengths; advances lengths.
void place_rows(Decoder& d, const std::vector<StepToken>& tokens) {
  const size_t N = tokens.size(), V = d.config.vocab_size;
  check(N > 0 && N <= d.options.max_tokens, "decoder_step: " + std::to_string(N) +
                                                " rows, the decoder takes 1.." +
                                                std::to_string(d.options.max_tokens));
  for (size_t r = 0; r < N; ++r) {
    const StepToken& t = tokens[r];
    check(t.seq >= 0 && size_t(t.seq) < d.options.max_batch,
          "decoder_step: sequence slot " + std::to_string(t.seq) + " outside the cache");
    if (t.token < 0 || size_t(t.token) >= V)
      fail("token id " + std::to_string(t.token) + " is outside the vocabulary (" +
           std::to_string(V) + ")");
    size_t& length = d.length[size_t(t.seq)];
    if (length >= d.options.max_seq)
      fail("sequence " + std::to_string(t.seq) + " is longer than the decoder's " +
           std::to_string(d.options.max_seq) + " positions");
    d.row_seq[r] = t.seq;
    d.row_pos[r] = int32_t(length++);
    d.row_token[r] = t.token;
  }
}

// logits (n, V) of the step's logit rows first .. first + n (rows of d.norm after forward_rows):
// only the rows asked for go through the vocabulary head, the costly GEMM while decoding.
void head(Decoder& d, float* logits, size_t first, size_t n) {
  const size_t C = d.config.hidden_size;
  linear(d, logits, d.norm + first * C, gemm_weights(d).lm_head, n, d.config.vocab_size, C);
}

}  // namespace

void decoder_create(Decoder& d, const ModelConfig& c, const LlamaWeights& weights,
                    const DecoderOptions& o) {
  check(o.max_batch > 0 && o.max_seq > 0 && o.max_tokens > 0, "decoder_create: empty sizes");
  check(o.max_tokens >= o.max_batch,
        "decoder_create: max_tokens below max_batch (a decode step has a row per sequence)");
  check(weights.embed && weights.lm_head && weights.final_norm &&
            weights.layers.size() == c.num_hidden_layers,
        "decoder_create: the weights are not a whole one-process model");
  if (o.max_seq > c.max_position_embeddings)
    fail("sequence length " + std::to_string(o.max_seq) + " exceeds max_position_embeddings " +
         std::to_string(c.max_position_embeddings));
  check(c.head_dim <= cpu::kCachedAttentionMaxHeadDim, "decoder_create: head_dim too large");
  d.config = c;
  d.weights = weights;
  d.options = o;
  d.length.assign(o.max_batch, 0);
  const size_t N = o.max_tokens, C = c.hidden_size, F = c.intermediate_size;
  const size_t cache =
      c.num_hidden_layers * o.max_batch * c.num_key_value_heads * o.max_seq * c.head_dim;
  Arena& a = d.arena;
  struct Plan {
    float** field;
    size_t floats;
  };
  const Plan plan[] = {
      {&d.k_cache, cache},
      {&d.v_cache, cache},
      {&d.residual, N * C},
      {&d.norm, N * C},
      {&d.qkv, N * c.qkv_size()},
      {&d.att, N * c.q_size()},
      {&d.gate_up, N * 2 * F},
      {&d.hidden, N * std::max<size_t>(F, 1)},
      {&d.logits, logit_capacity(o) * c.vocab_size},
      {&d.rope_cos, o.max_seq * c.head_dim / 2},
      {&d.rope_sin, o.max_seq * c.head_dim / 2},
  };
  // The projections and the head packed for the rowwise GEMM; norms and embedding stay shared.
  struct Pack {
    float** field;
    float* weight;  // the matrix as stored (N, K)
    size_t rows, cols;
  };
  std::vector<Pack> packs;
  if (!o.blas_gemm) {
    d.packed = weights;
    const size_t Q = c.q_size();
    for (size_t l = 0; l < c.num_hidden_layers; ++l) {
      const LlamaLayerWeights& w = weights.layers[l];
      LlamaLayerWeights& p = d.packed.layers[l];
      packs.push_back({&p.qkv, w.qkv, c.qkv_size(), C});
      packs.push_back({&p.o_proj, w.o_proj, C, Q});
      packs.push_back({&p.gate_up, w.gate_up, 2 * F, C});
      packs.push_back({&p.down, w.down, C, F});
    }
    packs.push_back({&d.packed.lm_head, weights.lm_head, c.vocab_size, C});
  }
  auto in_place = [&](const Pack& p) {
    return o.pack_in_place && p.rows % cpu::kRowwisePanel == 0 && p.weight != weights.embed;
  };
  std::vector<size_t> slots, pack_slots;
  for (const Plan& p : plan) slots.push_back(a.plan_floats(p.floats));
  for (const Pack& p : packs)
    pack_slots.push_back(in_place(p) ? 0
                                     : a.plan_floats(cpu::rowwise_packed_floats(p.rows, p.cols)));
  a.commit();
  for (size_t i = 0; i < std::size(plan); ++i) *plan[i].field = a.floats(slots[i]);
  std::vector<float> original;  // a matrix packed in place is read from this copy
  for (size_t i = 0; i < packs.size(); ++i) {
    const Pack& p = packs[i];
    if (in_place(p)) {
      original.assign(p.weight, p.weight + p.rows * p.cols);
      *p.field = p.weight;
      cpu::rowwise_pack(*p.field, original.data(), p.rows, p.cols);
    } else {
      *p.field = a.floats(pack_slots[i]);
      cpu::rowwise_pack(*p.field, p.weight, p.rows, p.cols);
    }
  }
  std::vector<float> inv_freq(c.head_dim / 2);
  cpu::rope_inv_freq(inv_freq.data(), c.head_dim, c.rope_theta, c.rope_scaling);
  cpu::rope_table(d.rope_cos, d.rope_sin, inv_freq.data(), o.max_seq, c.head_dim);
  d.row_seq.assign(N, 0);
  d.row_pos.assign(N, 0);
  d.row_token.assign(N, 0);
  d.logit_rows.assign(N, 0);
}

void decoder_reset(Decoder& d, size_t b) {
  check(b < d.length.size(), "decoder_reset: no sequence slot " + std::to_string(b));
  d.length[b] = 0;
}

void decoder_reset_all(Decoder& d) { std::fill(d.length.begin(), d.length.end(), 0); }

size_t decoder_step(Decoder& d, const std::vector<StepToken>& tokens) {
  const size_t N = tokens.size();
  place_rows(d, tokens);
  size_t rows = 0;
  for (size_t r = 0; r < N; ++r)
    if (tokens[r].logits) d.logit_rows[rows++] = r;
  check(rows <= logit_capacity(d.options), "decoder_step: more logit rows than the buffer holds");
  forward_rows(d, N, rows);
  head(d, d.logits, 0, rows);
  return rows;
}

void decoder_prefill(Decoder& d, const std::vector<size_t>& slots,
                     const std::vector<std::vector<int32_t>>& prompts) {
  check(slots.size() == prompts.size() && prompts.size() <= d.options.max_batch,
        "decoder_prefill: more prompts than sequence slots");
  const size_t V = d.config.vocab_size;
  std::vector<StepToken> step;
  step.reserve(d.options.max_tokens);
  // The prompts whose last row falls in a step are consecutive, [first_owner, first_owner + rows):
  // their logits go straight to their places.
  size_t first_owner = 0, rows = 0;
  auto flush = [&] {
    if (step.empty()) return;
    place_rows(d, step);
    forward_rows(d, step.size(), rows);
    head(d, d.logits + first_owner * V, 0, rows);
    step.clear();
    first_owner += rows;
    rows = 0;
  };
  for (size_t i = 0; i < prompts.size(); ++i) {
    check(!prompts[i].empty(), "decoder_prefill: empty prompt");
    check(slots[i] < d.options.max_batch && d.length[slots[i]] == 0,
          "decoder_prefill: slot " + std::to_string(slots[i]) + " is not empty");
    for (size_t t = 0; t < prompts[i].size(); ++t) {
      const bool last = t + 1 == prompts[i].size();
      if (last) d.logit_rows[rows++] = step.size();
      step.push_back({int32_t(slots[i]), prompts[i][t], last});
      if (step.size() == d.options.max_tokens) flush();
    }
  }
  flush();
}

size_t decoder_logit_rows(const Decoder& d) { return logit_capacity(d.options); }

void decoder_copy_sequence(Decoder& d, size_t from, size_t to) {
  check(from < d.length.size() && to < d.length.size(),
        "decoder_copy_sequence: no sequence slot " + std::to_string(std::max(from, to)));
  if (from == to) return;
  const size_t NKV = d.config.num_key_value_heads, P = d.options.max_seq, HD = d.config.head_dim;
  // A layer's cache is (B, NKV, P, HD): one run of length x HD floats per kv head.
  for (size_t l = 0; l < d.config.num_hidden_layers; ++l)
    for (float* cache : {k_cache_at(d, l), v_cache_at(d, l)})
      for (size_t h = 0; h < NKV; ++h)
        std::memcpy(cache + (to * NKV + h) * P * HD, cache + (from * NKV + h) * P * HD,
                    d.length[from] * HD * sizeof(float));
  d.length[to] = d.length[from];
}

double token_logprob(const float* x, size_t V, int32_t target, bool* is_argmax) {
  size_t best = 0;
  for (size_t v = 1; v < V; ++v)
    if (x[v] > x[best]) best = v;
  double sum = 0.0;  // in double, in id order: the same for any thread count
  for (size_t v = 0; v < V; ++v) sum += std::exp(double(x[v]) - double(x[best]));
  if (is_argmax) *is_argmax = best == size_t(target);
  return double(x[size_t(target)]) - double(x[best]) - std::log(sum);
}

std::vector<std::vector<double>> sequence_logprobs(Decoder& d,
                                                   const std::vector<std::vector<int32_t>>& seqs,
                                                   std::vector<std::vector<uint8_t>>* is_argmax) {
  const size_t V = d.config.vocab_size;
  std::vector<std::vector<double>> result(seqs.size());
  if (is_argmax) is_argmax->assign(seqs.size(), {});
  for (size_t i = 0; i < seqs.size(); ++i) {
    check(!seqs[i].empty(), "sequence_logprobs: empty sequence " + std::to_string(i));
    if (seqs[i].size() > d.options.max_seq + 1)
      fail("sequence_logprobs: sequence " + std::to_string(i) + " has " +
           std::to_string(seqs[i].size()) + " tokens, the decoder holds " +
           std::to_string(d.options.max_seq) + " positions and the token the last predicts");
    result[i].assign(seqs[i].size(), 0.0);
    if (is_argmax) (*is_argmax)[i].assign(seqs[i].size(), 1);
  }
  std::vector<StepToken> step;
  step.reserve(d.options.max_tokens);
  struct Target {
    size_t seq, t;  // row predicts seqs[seq][t]
  };
  std::vector<Target> targets;
  targets.reserve(d.options.max_tokens);
  auto flush = [&] {
    if (step.empty()) return;
    place_rows(d, step);
    forward_rows(d, step.size(), targets.size());
    // every row but a sequence's last predicts the next token: chunks through the head
    for (size_t r0 = 0; r0 < targets.size(); r0 += kLogitChunk) {
      const size_t n = std::min(kLogitChunk, targets.size() - r0);
      head(d, d.logits, r0, n);
#pragma omp parallel for schedule(static)
      for (size_t j = 0; j < n; ++j) {
        const Target& tg = targets[r0 + j];
        bool best = false;
        result[tg.seq][tg.t] = token_logprob(d.logits + j * V, V, seqs[tg.seq][tg.t], &best);
        if (is_argmax) (*is_argmax)[tg.seq][tg.t] = best;
      }
    }
    step.clear();
    targets.clear();
  };
  // Sequences go to cache slots in turn; a full set of slots (or a full step) runs.
  size_t used_slots = 0;
  decoder_reset_all(d);
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (used_slots == d.options.max_batch) {
      flush();
      decoder_reset_all(d);
      used_slots = 0;
    }
    const int32_t slot = int32_t(used_slots++);
    // The last token is only predicted, never fed: a window of max_seq positions scores
    // max_seq + 1 tokens (lm-evaluation-harness's (context + continuation)[-(max_length + 1):]).
    for (size_t t = 0; t + 1 < seqs[i].size(); ++t) {
      d.logit_rows[targets.size()] = step.size();
      targets.push_back({i, t + 1});
      step.push_back({slot, seqs[i][t], false});
      if (step.size() == d.options.max_tokens) flush();
    }
  }
  flush();
  decoder_reset_all(d);
  return result;
}

}  // namespace hibari
