// model/llama.h — the Llama decoder with explicit forward and backward.
// Dimension letters: B batch, T sequence, N = B*T tokens, C hidden, F intermediate, V vocabulary,
// L layers, NH / NKV query / key-value heads, HD head size, Q = NH HD, KV = NKV HD, S = Q + 2 KV.
//
// One block, pre-norm:
//   h   = x + o_proj(attention(rope(qkv_proj(rmsnorm1(x)))))
//   out = h + down(swiglu(gate_up(rmsnorm2(h))))
// The vocabulary head and the loss are fused and chunked: logits for at most `head_chunk` tokens
// exist at once, and their gradient is taken on the spot (the loss is the last op of the graph).
//
// Memory is planned once for the largest (B, T) the model will see (llama_create): parameters,
// gradients, saved activations and scratch live in one Arena; a step allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "model/config.h"
#include "model/params.h"

namespace hibari {

// What forward saves for backward (per layer l, indexed by layer_offset) and what backward uses as
// scratch.  Normalized activations and the SwiGLU output are cheap to recompute, so they are not
// saved: backward rebuilds them into the shared scratch (recompute rather than store L copies).
struct LlamaActivations {
  float* residual;      // (L+1, N, C)  residual stream entering layer l; [L] leaves the last
  float* rstd1;         // (L, N)       input_layernorm 1/rms
  float* qkv;           // (L, N, S)    projections, rope applied to q and k
  float* att;           // (L, N, Q)    attention output, before o_proj
  float* lse;           // (L, B, NH, T) attention log-sum-exp per query row
  float* residual_mid;  // (L, N, C)    residual stream after attention
  float* rstd2;         // (L, N)       post_attention_layernorm 1/rms
  float* gate_up;       // (L, N, 2F)   gate_proj and up_proj outputs
  float* final_rstd;    // (N)          model.norm 1/rms
  // scratch
  float* norm_out;     // (N, C)       a norm's output (forward; recomputed in backward)
  float* mlp_hidden;   // (N, F)       swiglu output (forward; recomputed in backward)
  float* logits;       // (head_chunk, V)  logits, then their gradient
  float* losses;       // (N)          per-token loss
  float* dresidual;    // (N, C)       gradient of the residual stream
  float* dnorm_out;    // (N, C)
  float* dqkv;         // (N, S)
  float* datt;         // (N, Q)
  float* dgate_up;     // (N, 2F)
  float* dmlp_hidden;  // (N, F)
  float* rope_cos;     // (T, HD/2)
  float* rope_sin;     // (T, HD/2)
};

struct Llama {
  ModelConfig config;
  ParameterLayout layout;
  size_t max_B = 0, max_T = 0, head_chunk = 0;
  Arena arena;
  float* params = nullptr;  // (layout.total)
  float* grads = nullptr;   // (layout.total), same layout
  LlamaWeights weights;     // named views of params
  LlamaWeights dweights;    // named views of grads
  LlamaActivations acts;
  // Shape of the last forward; backward uses the activations it saved.
  size_t B = 0, T = 0;
  std::vector<int32_t> inputs, targets;  // (max_B * max_T) copies of the last batch
};

// Plans and allocates everything for batches of up to B x T tokens.  Parameters are zero until
// llama_init_parameters or a load fills them.
void llama_create(Llama& model, const ModelConfig& config, size_t B, size_t T);

// Forward pass over (B, T) tokens and, when `targets` is given, the loss: mean cross-entropy over
// targets that are not ignore_index (-100).  When `loss_weight` > 0 the head's gradient is taken on
// the way (d(loss_weight * loss)/d(logits)) and llama_backward must follow; with 0 the call is
// evaluation only.  Returns the mean loss (0 without targets or valid targets).
float llama_forward(Llama& model, const int32_t* inputs, const int32_t* targets, size_t B, size_t T,
                    float loss_weight);
// Accumulates (+=) d(loss_weight * loss)/d(params) into model.grads.
void llama_backward(Llama& model);

// Logits (V) of position t of sequence b after a forward without targets (generation).
void llama_logits_at(Llama& model, float* logits, size_t b, size_t t);

void llama_zero_grads(Llama& model);

// Model FLOPs of one training token (forward + backward), the numerator of MFU:
//   6 * (matmul parameters, head included) + 6 * L * T * Q   (causal attention: QK^T and PV).
double llama_train_flops_per_token(const ModelConfig& config, size_t T);

}  // namespace hibari
