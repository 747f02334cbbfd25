// infer/decoder.h — the Llama forward for inference: a KV cache per sequence, prefill and decode.
// Dimension letters as model/llama.h: C hidden, F intermediate, V vocabulary, L layers,
// NH / NKV query / key-value heads, HD head size, Q = NH HD, KV = NKV HD, S = Q + 2 KV; and
//   B  sequences (slots of the cache), P  positions per slot (the cache length),
//   N  new tokens of one step, packed: row r is token `pos[r]` of sequence `seq[r]`.
//
// A step appends new tokens to any subset of the sequences (many per sequence for a prompt, one
// while decoding) and returns logits.  Rows are packed, never padded, and every kernel of the
// step computes a row from that row alone (rowwise GEMM, per-row RMSNorm/RoPE/SwiGLU, attention
// over that row's own cache), so a sequence's numbers do not depend on what else is in the batch,
// nor on how its prompt was split into steps: prefill and decode produce the same bits.
// (options.blas_gemm trades that guarantee for OpenBLAS's speed on large prefills.)
//
// Only rows with logits go through the last layer's attention output, MLP and final norm (every
// row's K and V is cached by then), as llama.cpp does: a prompt's other rows need nothing more.
//
// K and V are cached after RoPE, per layer: k_cache, v_cache (L, B, NKV, P, HD).
// The projections are packed once for the rowwise GEMM (kernels/cpu/rowwise_matmul.h): a second
// copy of every matrix but the embedding, in the decoder's arena, or over the weights themselves
// (options.pack_in_place, as `hibari generate` and `hibari eval` do).
// Everything (packed weights, cache and scratch for max_tokens rows) is allocated by
// decoder_create: a step allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "model/config.h"
#include "model/params.h"

namespace hibari {

struct DecoderOptions {
  size_t max_batch = 1;     // B: sequences held in the cache at once
  size_t max_seq = 2048;    // P: positions per sequence (prompt + generated); <= max_position_...
  size_t max_tokens = 512;  // N: rows per step (a longer prefill is split into steps)
  bool blas_gemm = false;   // OpenBLAS for the projections: faster prefill, batch-dependent bits
  // Pack the projections over the given weights instead of copying them, where the packed size is
  // the matrix's own (rows a multiple of kRowwisePanel; not a head tied to the embedding): no
  // second copy of the model.  The caller must not read those matrices as (N, K) afterwards.
  bool pack_in_place = false;
};

struct Decoder {
  ModelConfig config;
  LlamaWeights weights;  // not owned (LoadedModel::weights or a Llama's)
  LlamaWeights packed;   // projections and head packed (rowwise_pack); empty with blas_gemm
  DecoderOptions options;
  std::vector<size_t> length;  // (B) positions cached per sequence
  Arena arena;
  float* k_cache = nullptr;  // (L, B, NKV, P, HD)
  float* v_cache = nullptr;  // (L, B, NKV, P, HD)
  // scratch for one step of up to N rows
  float* residual = nullptr;  // (N, C)
  float* norm = nullptr;      // (N, C)
  float* qkv = nullptr;       // (N, S)
  float* att = nullptr;       // (N, Q)
  float* gate_up = nullptr;   // (N, 2F)
  float* hidden = nullptr;    // (N, F)
  float* logits = nullptr;    // (R, V)   logits of the rows asked for; R = max(B, 64)
  float* rope_cos = nullptr;  // (P, HD/2)
  float* rope_sin = nullptr;  // (P, HD/2)
  std::vector<int32_t> row_seq, row_pos, row_token;  // (N) capacity, the step's rows
  std::vector<size_t> logit_rows;                    // (N) capacity, rows whose logits are made
};

void decoder_create(Decoder& decoder, const ModelConfig& config, const LlamaWeights& weights,
                    const DecoderOptions& options);

// Forgets sequence b's cache (length 0): the slot can start a new sequence.
void decoder_reset(Decoder& decoder, size_t b);
void decoder_reset_all(Decoder& decoder);

// One token row of a step: `token` goes to sequence `seq` at its next position; when `logits`,
// the logits (V) of that position are computed (into decoder.logits + i * V, i = the index of this
// row among the rows with logits, in order).
struct StepToken {
  int32_t seq;
  int32_t token;
  bool logits;
};

// Runs one step over `tokens` (<= max_tokens rows, at most R of them with logits; the rows of one
// sequence in position order).  Returns the number of logit rows written to decoder.logits.
size_t decoder_step(Decoder& decoder, const std::vector<StepToken>& tokens);

// Prefills sequence slots with whole prompts (prompts[i] goes to slot slots[i], which must be
// empty), splitting into steps of max_tokens rows; writes the last position's logits of prompt i to
// decoder.logits + i * V.  prompts.size() <= max_batch.
void decoder_prefill(Decoder& decoder, const std::vector<size_t>& slots,
                     const std::vector<std::vector<int32_t>>& prompts);

// Rows of logits one step can return (decoder.logits holds this many): max(max_batch, 64).
size_t decoder_logit_rows(const Decoder& decoder);

// Copies sequence `from`'s cache (its K and V, length positions) into slot `to`, which then
// continues from there: sequences that share a prefix compute it once (evaluation's choices of
// one question).  The copy has the prefix's bits, so the continuations' logits are the bits of
// scoring each whole sequence.
void decoder_copy_sequence(Decoder& decoder, size_t from, size_t to);

// log_softmax(logits (V))[target], in double from the fp32 logits, the exp summed in id order
// (the same bits on any thread count); when is_argmax, whether target is the argmax (ties: the
// lowest id).
double token_logprob(const float* logits, size_t V, int32_t target, bool* is_argmax = nullptr);

// For evaluation: log p(tokens[t] | tokens[<t]) for every position of every sequence:
//   result[i].size() == sequences[i].size(), result[i][0] = 0 (nothing predicts the first token),
//   result[i][t] = log_softmax(logits of position t-1)[tokens[t]] (fp32 logits, computed in
//   double).
// Sequences are packed into steps of up to max_tokens rows (no padding); a sequence's last token
// is predicted but not fed, so a sequence may hold max_seq + 1 tokens.
// The values are independent of how sequences are batched (bit for bit, without blas_gemm).
// When `is_argmax` is given, (*is_argmax)[i][t] says whether tokens[t] was the argmax (ties: the
// lowest id) of its position's logits ([i][0] = 1).  Uses (and resets) every cache slot.
std::vector<std::vector<double>> sequence_logprobs(
    Decoder& decoder, const std::vector<std::vector<int32_t>>& sequences,
    std::vector<std::vector<uint8_t>>* is_argmax = nullptr);

}  // namespace hibari
