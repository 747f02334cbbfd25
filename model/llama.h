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
// A model may be one shard of a replica (model/shard.h), split as Megatron-LM splits it:
//   tensor parallelism (tp ranks): qkv_proj and gate_up are column-parallel (each rank computes its
//     NH/tp, NKV/tp heads and F/tp MLP columns, attention runs on the local heads), o_proj and down
//     are row-parallel: their partial outputs are summed over tp (all-reduce), or, with sequence
//     parallelism, reduce-scattered to N/tp tokens, so the norms and the residual stream run on
//     N/tp tokens and the normed input is all-gathered before each column-parallel GEMM.  Backward
//     swaps the pairs (all-gather <-> reduce-scatter; without SP the column-parallel input's
//     gradient is all-reduced).  Embedding and head are vocabulary-parallel (V/tp rows each): the
//     lookup is summed over tp, the logits stay (N, V/tp) and the loss combines the ranks'
//     per-token max and sum of exponentials.  Every tp rank returns the same loss and, for the
//     replicated norm weights, the same complete gradient.
//   Dimensions local to a rank carry an l: Nl = N/tp with SP (else N), NHl = NH/tp, Ql, Sl, Fl, Vl.
//   pipeline stages: a stage runs layers [layer_begin, layer_end).  A non-first stage reads its
//     input hidden states (Nl, C) from llama_stage_input, a non-last stage leaves its output in
//     llama_stage_output; gradients travel back through llama_stage_doutput / llama_stage_dinput.
//     `activation_slots` micro-batches may be in flight between their forward and backward (1F1B
//     keeps up to stages - stage): each saved activation exists once per slot, scratch once.
//
// Memory is planned once for the largest (B, T) the model will see (llama_create): parameters,
// gradients, saved activations and scratch live in one Arena; a step allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "model/config.h"
#include "model/params.h"
#include "model/shard.h"
#include "parallel/comm.h"

namespace hibari {

// What forward saves for the backward of one micro-batch (one activation slot), per local layer l.
// Normalized activations and the SwiGLU output are cheap to recompute, so they are not saved:
// backward rebuilds them into the shared scratch (recompute rather than store L copies).
struct LlamaSaved {
  float* residual;      // (nl+1, Nl, C)  residual stream entering layer l; [nl] leaves the stage
  float* rstd1;         // (nl, Nl)       input_layernorm 1/rms
  float* qkv;           // (nl, N, Sl)    projections, rope applied to q and k
  float* att;           // (nl, N, Ql)    attention output, before o_proj
  float* lse;           // (nl, B, NHl, T) attention log-sum-exp per query row
  float* residual_mid;  // (nl, Nl, C)    residual stream after attention
  float* rstd2;         // (nl, Nl)       post_attention_layernorm 1/rms
  float* gate_up;       // (nl, N, 2Fl)   gate_proj and up_proj outputs
  float* final_rstd;    // (Nl)           model.norm 1/rms (last stage)
  float* dfinal;        // (Nl, C)        gradient entering model.norm, from the fused head
  int32_t* inputs;      // (N)            token ids (first stage), for the embedding's backward
  size_t B = 0, T = 0;  // shape of the slot's forward
};

// Scratch: one copy, shared by all slots.  Without SP (or tp 1) the *_local and *_full buffers
// are the same memory as their counterparts (Nl = N).
struct LlamaActivations {
  float* norm_out;        // (N, C)      a norm's output for every token (all-gathered with SP)
  float* norm_local;      // (Nl, C)     a norm's output for this rank's tokens
  float* mlp_hidden;      // (N, Fl)     swiglu output (forward; recomputed in backward)
  float* logits;          // (head_chunk, Vl)  logits, then their gradient
  float* losses;          // (N)         per-token loss
  float* dresidual;       // (Nl, C)     gradient of the residual stream
  float* dresidual_full;  // (N, C)      all-gathered dresidual (SP)
  float* dnorm_out;       // (N, C)      gradient of a norm's output (partial over tp before reduce)
  float* dnorm_local;     // (Nl, C)     the reduce-scattered part of it (SP)
  float* partial;         // (N, C)      a row-parallel GEMM's output before the sum over tp
  float* dqkv;            // (N, Sl)
  float* datt;            // (N, Ql)
  float* dgate_up;        // (N, 2Fl)
  float* dmlp_hidden;     // (N, Fl)
  float* ce_stats;        // (3, head_chunk)  tp > 1: per token local max, sum exp, target logit
  float* ce_gathered;     // (tp, 3, head_chunk)
  float* dnorm_weights;   // (2 nl + 1, C) SP: a micro-batch's norm-weight gradients before the sum
  float* doutput;         // (Nl, C)     non-last stage: the received gradient of the stage output
  float* rope_cos;        // (T, HD/2)
  float* rope_sin;        // (T, HD/2)
};

// Hooks for data parallelism / ZeRO, set by the trainer (default none).  Groups are numbered as
// llama_param_groups(model.layout).
struct LlamaHooks {
  void* context = nullptr;
  // Before a group's parameters are read (forward or backward): ZeRO-3 gathers them here.
  void (*use_params)(void* context, size_t group) = nullptr;
  // After backward has accumulated a group's gradients for this micro-batch: DP starts that
  // bucket's all-reduce, ZeRO-2/3 reduce-scatter it.  On the last stage the head's gradient is
  // accumulated during llama_forward (the fused head), so the tail's (or, tied on one stage, the
  // embedding's) gradient buffer must be in place from that forward on.
  void (*grads_done)(void* context, size_t group) = nullptr;
};

struct LlamaOptions {
  // false: params and grads are not allocated; the trainer points every group at its own buffers
  // with llama_point_group before forward (ZeRO-3 keeps only a gathered working copy).
  bool own_parameters = true;
};

struct Llama {
  ModelConfig config;
  ModelShard shard;
  Comm* tp = nullptr;  // tensor-parallel communicator (size shard.tp_size); nullptr when tp 1
  ParameterLayout layout;
  std::vector<ParamGroup> groups;  // llama_param_groups(layout)
  size_t embed_group = SIZE_MAX;   // group indices; SIZE_MAX where the stage has none
  size_t first_layer_group = 0;    // group of local layer 0
  size_t tail_group = SIZE_MAX;
  size_t max_B = 0, max_T = 0, head_chunk = 0;
  Arena arena;
  float* params = nullptr;  // (layout.total); nullptr without own_parameters
  float* grads = nullptr;   // (layout.total), same layout
  LlamaWeights weights;     // named views of params
  LlamaWeights dweights;    // named views of grads
  LlamaActivations acts;
  std::vector<LlamaSaved> slots;  // activation_slots
  LlamaHooks hooks;
  // Shape of the last forward (llama_logits_at).
  size_t B = 0, T = 0;
  std::vector<int32_t> inputs;  // (slots, max_B * max_T) copies of each slot's token ids
};

// Plans and allocates everything for batches of up to B x T tokens.  Parameters are zero until
// llama_init_parameters or a load fills them.  `tp` is the tensor-parallel communicator (size
// shard.tp_size) or nullptr when tp_size == 1.
void llama_create(Llama& model, const ModelConfig& config, size_t B, size_t T,
                  const ModelShard& shard = {}, Comm* tp = nullptr, size_t activation_slots = 1,
                  const LlamaOptions& options = {});

// Forward pass over (B, T) tokens into activation slot `slot` and, when `targets` is given (last
// stage), the loss: mean cross-entropy over targets that are not ignore_index (-100).  When
// `loss_weight` > 0 the head's gradient is taken on the way (d(loss_weight * loss)/d(logits)) and
// llama_backward(slot) must follow; with 0 the call is evaluation only.  Returns the mean loss (0
// without targets or valid targets, and on a non-last stage).  On a non-first stage `inputs` may be
// nullptr: the stage's input is what the caller wrote to llama_stage_input(model, slot).
float llama_forward(Llama& model, const int32_t* inputs, const int32_t* targets, size_t B, size_t T,
                    float loss_weight, size_t slot = 0);
// Accumulates (+=) d(loss_weight * loss)/d(params) of slot `slot`'s micro-batch into model.grads.
// On a non-last stage the caller first writes the gradient of the stage output to
// llama_stage_doutput(model).
void llama_backward(Llama& model, size_t slot = 0);

// Pipeline boundaries, all (Nl, C) with Nl the tokens of this tp rank (N/tp with SP, else N).
// A pipeline runs every micro-batch at the planned max_B x max_T.
float* llama_stage_input(Llama& model, size_t slot);  // non-first stage: write before forward
const float* llama_stage_output(const Llama& model, size_t slot);  // non-last: read after forward
float* llama_stage_doutput(Llama& model);             // non-last stage: write before backward
const float* llama_stage_dinput(const Llama& model);  // non-first stage: read after backward
size_t llama_stage_floats(const Llama& model);        // Nl * C of the planned batch

// Repoints the named weight / gradient views of `group` to buffers laid out like the flat buffer's
// [begin, end) range of that group (a null pointer leaves that side as it is).
void llama_point_group(Llama& model, size_t group, float* params, float* grads);

// Logits (V) of position t of sequence b after a forward without targets (generation; one
// process, tp 1).
void llama_logits_at(Llama& model, float* logits, size_t b, size_t t);

// Zeroes model.grads (nothing to do without own_parameters: the trainer owns the gradients).
void llama_zero_grads(Llama& model);

// Model FLOPs of one training token (forward + backward), the numerator of MFU:
//   6 * (matmul parameters, head included) + 6 * L * T * Q   (causal attention: QK^T and PV).
double llama_train_flops_per_token(const ModelConfig& config, size_t T);

}  // namespace hibari
