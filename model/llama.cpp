#include "model/llama.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace hibari {

namespace {

// Tokens per vocabulary-head chunk: enough rows for an efficient GEMM, few enough that
// (chunk x V) logits stay small (256 x 32000 floats = 32 MiB).
constexpr size_t default_head_chunk = 256;

cpu::AttentionShape attention_shape(const ModelConfig& c, size_t B, size_t T) {
  return {B, T, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
}

// Counts the targets that take part in the loss.
size_t count_valid(const int32_t* targets, size_t N) {
  size_t n = 0;
  for (size_t i = 0; i < N; ++i) n += targets[i] != cpu::ignore_index;
  return n;
}

}  // namespace

void llama_create(Llama& m, const ModelConfig& c, size_t B, size_t T) {
  check(B > 0 && T > 0, "llama_create: empty batch");
  if (T > c.max_position_embeddings)
    fail("sequence length " + std::to_string(T) + " exceeds max_position_embeddings " +
         std::to_string(c.max_position_embeddings));
  m.config = c;
  m.layout = llama_parameter_layout(c);
  m.max_B = B;
  m.max_T = T;
  const size_t N = B * T, C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const size_t L = c.num_hidden_layers, S = c.qkv_size(), Q = c.q_size(), HD = c.head_dim;
  m.head_chunk = std::min(default_head_chunk, N);

  Arena& a = m.arena;
  size_t params = a.plan_floats(m.layout.total), grads = a.plan_floats(m.layout.total);
  // The field list of LlamaActivations, with sizes: one place, one order.
  struct Plan {
    float** field;
    size_t floats;
  };
  LlamaActivations& x = m.acts;
  const Plan plan[] = {
      {&x.residual, (L + 1) * N * C},
      {&x.rstd1, L * N},
      {&x.qkv, L * N * S},
      {&x.att, L * N * Q},
      {&x.lse, L * N * c.num_attention_heads},
      {&x.residual_mid, L * N * C},
      {&x.rstd2, L * N},
      {&x.gate_up, L * N * 2 * F},
      {&x.final_rstd, N},
      {&x.norm_out, N * C},
      {&x.mlp_hidden, N * F},
      {&x.logits, m.head_chunk * V},
      {&x.losses, N},
      {&x.dresidual, N * C},
      {&x.dnorm_out, N * C},
      {&x.dqkv, N * S},
      {&x.datt, N * Q},
      {&x.dgate_up, N * 2 * F},
      {&x.dmlp_hidden, N * F},
      {&x.rope_cos, T * HD / 2},
      {&x.rope_sin, T * HD / 2},
  };
  std::vector<size_t> slots;
  for (const Plan& p : plan) slots.push_back(a.plan_floats(p.floats));
  a.commit();
  m.params = a.floats(params);
  m.grads = a.floats(grads);
  for (size_t i = 0; i < std::size(plan); ++i) *plan[i].field = a.floats(slots[i]);

  m.weights = llama_weights(c, m.layout, m.params);
  m.dweights = llama_weights(c, m.layout, m.grads);
  std::vector<float> inv_freq(HD / 2);
  cpu::rope_inv_freq(inv_freq.data(), HD, c.rope_theta, c.rope_scaling);
  cpu::rope_table(x.rope_cos, x.rope_sin, inv_freq.data(), T, HD);
  m.inputs.assign(N, 0);
  m.targets.assign(N, cpu::ignore_index);
}

void llama_zero_grads(Llama& m) { std::memset(m.grads, 0, m.layout.total * sizeof(float)); }

float llama_forward(Llama& m, const int32_t* inputs, const int32_t* targets, size_t B, size_t T,
                    float loss_weight) {
  const ModelConfig& c = m.config;
  check(B <= m.max_B && T <= m.max_T && B * T > 0,
        "llama_forward: batch larger than the model was planned for");
  const size_t N = B * T, C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const size_t S = c.qkv_size(), Q = c.q_size(), HD = c.head_dim, NH = c.num_attention_heads;
  const float eps = float(c.rms_norm_eps);
  LlamaActivations& x = m.acts;
  m.B = B;
  m.T = T;
  for (size_t i = 0; i < N; ++i) {
    if (inputs[i] < 0 || size_t(inputs[i]) >= V)
      fail("token id " + std::to_string(inputs[i]) + " is outside the vocabulary (" +
           std::to_string(V) + ")");
  }
  std::copy(inputs, inputs + N, m.inputs.begin());

  cpu::embedding_forward(x.residual, inputs, m.weights.embed, N, C);
  for (size_t l = 0; l < c.num_hidden_layers; ++l) {
    const LlamaLayerWeights& w = m.weights.layers[l];
    float* res_in = x.residual + l * N * C;
    float* res_mid = x.residual_mid + l * N * C;
    float* res_out = x.residual + (l + 1) * N * C;
    float* qkv = x.qkv + l * N * S;
    float* att = x.att + l * N * Q;
    float* gate_up = x.gate_up + l * N * 2 * F;
    // attention
    cpu::rmsnorm_forward(x.norm_out, x.rstd1 + l * N, res_in, w.input_norm, N, C, eps);
    cpu::gemm(qkv, x.norm_out, w.qkv, N, S, C, {.transpose_b = true});
    // q and k are adjacent in each row: rotate their NH + NKV heads in one pass
    cpu::rope_forward(qkv, x.rope_cos, x.rope_sin, B, T, NH + c.num_key_value_heads, HD, S);
    cpu::attention_forward(att, x.lse + l * N * NH, qkv, attention_shape(c, B, T));
    std::memcpy(res_mid, res_in, N * C * sizeof(float));
    cpu::gemm(res_mid, att, w.o_proj, N, C, Q, {.transpose_b = true, .accumulate = true});
    // MLP
    cpu::rmsnorm_forward(x.norm_out, x.rstd2 + l * N, res_mid, w.post_norm, N, C, eps);
    cpu::gemm(gate_up, x.norm_out, w.gate_up, N, 2 * F, C, {.transpose_b = true});
    cpu::swiglu_forward(x.mlp_hidden, gate_up, N, F);
    std::memcpy(res_out, res_mid, N * C * sizeof(float));
    cpu::gemm(res_out, x.mlp_hidden, w.down, N, C, F, {.transpose_b = true, .accumulate = true});
  }
  const float* res_final = x.residual + c.num_hidden_layers * N * C;
  cpu::rmsnorm_forward(x.norm_out, x.final_rstd, res_final, m.weights.final_norm, N, C, eps);
  if (targets == nullptr) return 0.0f;
  std::copy(targets, targets + N, m.targets.begin());

  // Vocabulary head + loss, chunk by chunk.  In training the chunk's logits become their gradient
  // at once, and dnorm_out (the gradient entering model.norm) and d lm_head are filled here.
  size_t valid = count_valid(targets, N);
  const bool training = loss_weight > 0;
  const float grad_scale = valid ? loss_weight / float(valid) : 0.0f;
  for (size_t n0 = 0; n0 < N; n0 += m.head_chunk) {
    size_t n = std::min(m.head_chunk, N - n0);
    const float* h = x.norm_out + n0 * C;
    cpu::gemm(x.logits, h, m.weights.lm_head, n, V, C, {.transpose_b = true});
    if (!training) {
      cpu::cross_entropy_loss(x.losses + n0, x.logits, targets + n0, n, V);
      continue;
    }
    cpu::softmax_cross_entropy(x.logits, x.losses + n0, targets + n0, n, V, grad_scale);
    cpu::gemm(x.dnorm_out + n0 * C, x.logits, m.weights.lm_head, n, C, V);
    cpu::gemm(m.dweights.lm_head, x.logits, h, V, C, n, {.transpose_a = true, .accumulate = true});
  }
  double total = 0.0;  // summed in token order: the same for any thread count
  for (size_t i = 0; i < N; ++i) total += x.losses[i];
  return valid ? float(total / double(valid)) : 0.0f;
}

void llama_backward(Llama& m) {
  const ModelConfig& c = m.config;
  const size_t B = m.B, T = m.T, N = B * T, C = c.hidden_size, F = c.intermediate_size;
  const size_t S = c.qkv_size(), Q = c.q_size(), HD = c.head_dim, NH = c.num_attention_heads;
  const size_t L = c.num_hidden_layers;
  const float eps = float(c.rms_norm_eps);
  LlamaActivations& x = m.acts;

  // model.norm: the residual stream's gradient starts here (norm backward accumulates, so zero it)
  std::memset(x.dresidual, 0, N * C * sizeof(float));
  cpu::rmsnorm_backward(x.dresidual, m.dweights.final_norm, x.dnorm_out, x.residual + L * N * C,
                        m.weights.final_norm, x.final_rstd, N, C);
  for (size_t l = L; l-- > 0;) {
    const LlamaLayerWeights& w = m.weights.layers[l];
    const LlamaLayerWeights& dw = m.dweights.layers[l];
    const float* res_in = x.residual + l * N * C;
    const float* res_mid = x.residual_mid + l * N * C;
    const float* qkv = x.qkv + l * N * S;
    const float* att = x.att + l * N * Q;
    const float* gate_up = x.gate_up + l * N * 2 * F;
    // MLP: out = res_mid + down(swiglu(gate_up(rmsnorm2(res_mid))))
    cpu::swiglu_forward(x.mlp_hidden, gate_up, N, F);  // recompute
    cpu::gemm(x.dmlp_hidden, x.dresidual, w.down, N, F, C);
    cpu::gemm(dw.down, x.dresidual, x.mlp_hidden, C, F, N,
              {.transpose_a = true, .accumulate = true});
    cpu::swiglu_backward(x.dgate_up, x.dmlp_hidden, gate_up, N, F);
    cpu::rmsnorm_forward(x.norm_out, x.rstd2 + l * N, res_mid, w.post_norm, N, C,
                         eps);  // recompute
    cpu::gemm(x.dnorm_out, x.dgate_up, w.gate_up, N, C, 2 * F);
    cpu::gemm(dw.gate_up, x.dgate_up, x.norm_out, 2 * F, C, N,
              {.transpose_a = true, .accumulate = true});
    cpu::rmsnorm_backward(x.dresidual, dw.post_norm, x.dnorm_out, res_mid, w.post_norm,
                          x.rstd2 + l * N, N, C);
    // attention: res_mid = res_in + o_proj(attention(rope(qkv(rmsnorm1(res_in)))))
    cpu::gemm(x.datt, x.dresidual, w.o_proj, N, Q, C);
    cpu::gemm(dw.o_proj, x.dresidual, att, C, Q, N, {.transpose_a = true, .accumulate = true});
    cpu::attention_backward(x.dqkv, x.datt, qkv, att, x.lse + l * N * NH, attention_shape(c, B, T));
    cpu::rope_backward(x.dqkv, x.rope_cos, x.rope_sin, B, T, NH + c.num_key_value_heads, HD, S);
    cpu::rmsnorm_forward(x.norm_out, x.rstd1 + l * N, res_in, w.input_norm, N, C,
                         eps);  // recompute
    cpu::gemm(x.dnorm_out, x.dqkv, w.qkv, N, C, S);
    cpu::gemm(dw.qkv, x.dqkv, x.norm_out, S, C, N, {.transpose_a = true, .accumulate = true});
    cpu::rmsnorm_backward(x.dresidual, dw.input_norm, x.dnorm_out, res_in, w.input_norm,
                          x.rstd1 + l * N, N, C);
  }
  cpu::embedding_backward(m.dweights.embed, x.dresidual, m.inputs.data(), N, C);
}

void llama_logits_at(Llama& m, float* logits, size_t b, size_t t) {
  const ModelConfig& c = m.config;
  check(b < m.B && t < m.T, "llama_logits_at: position outside the last forward");
  const float* h = m.acts.norm_out + (b * m.T + t) * c.hidden_size;
  cpu::gemm(logits, h, m.weights.lm_head, 1, c.vocab_size, c.hidden_size, {.transpose_b = true});
}

double llama_train_flops_per_token(const ModelConfig& c, size_t T) {
  return 6.0 * double(matmul_parameter_count(c)) +
         6.0 * double(c.num_hidden_layers) * double(T) * double(c.q_size());
}

}  // namespace hibari
