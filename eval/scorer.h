// eval/scorer.h — what evaluation asks of a model: the log-likelihood of a continuation given a
// context (multiple choice, perplexity) and greedy generation (JSQuAD).
//
// Log-likelihood requests run in batches of up to batch_size sequences, longest first (as
// lm-evaluation-harness orders them, so a batch wastes little padding).  A sequence is
// context + continuation minus its last token, right-padded to the batch's longest; with a causal
// model the padding after a sequence never reaches its positions.  A sequence longer than the
// window keeps its last max_length + 1 tokens (the context is cut on the left).
//
// Scores are log-softmax values in double precision from the float32 logits of each position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"
#include "model/llama.h"

namespace hibari {

struct EvalModel {
  Llama llama;                             // planned for batch_size x max_length tokens
  std::optional<TextTokenizer> tokenizer;  // set by load_eval_model (no default tokenizer)
  std::string name;                        // for the result file: the directory's name
  size_t batch_size = 1;
  size_t max_length = 0;  // tokens per forward (the window)
};

// Loads a Hugging Face directory (config.json, *.safetensors, tokenizer.json or tokenizer.model)
// or a hibari checkpoint (a step directory, or a checkpoint root: its newest intact checkpoint),
// and plans the model for batch_size x max_length tokens (max_length 0: the config's
// max_position_embeddings, capped at 2048).  `tokenizer` (a file or directory) overrides the
// model directory's own; a checkpoint without one needs it.
void load_eval_model(EvalModel& model, const std::string& dir, const std::string& tokenizer,
                     size_t batch_size, size_t max_length);

struct LoglikelihoodRequest {
  std::vector<int32_t> context;       // at least one token (BOS or the previous token)
  std::vector<int32_t> continuation;  // at least one token
};

struct LoglikelihoodResult {
  double logprob = 0;   // sum over the continuation's tokens of log p(token | everything before)
  bool greedy = false;  // every continuation token was the argmax of its position
  size_t tokens = 0;    // continuation tokens scored
};

// One result per request, in request order.  Each sequence's positions see only its own tokens, so
// batch_size and padding change no score beyond float32 rounding: model/llama_forward's GEMMs
// round differently with another row count (measured: relative differences near 1e-8 between
// batch 1 and 7 on the tiny test model; not bit-identical).
std::vector<LoglikelihoodResult> score_loglikelihood(EvalModel& model,
                                                     const std::vector<LoglikelihoodRequest>& reqs);

// Greedy decoding from `prompt` until one of `stop` appears in the decoded text, EOS, or
// max_new_tokens.  Returns the text before the stop string.
std::string generate_greedy(EvalModel& model, const std::vector<int32_t>& prompt,
                            size_t max_new_tokens, const std::vector<std::string>& stop);

// Context and continuation token ids for the strings, as lm-evaluation-harness's _encode_pair:
// whole = encode(context + continuation), context_ids = encode(context), continuation = the rest
// of whole after len(context_ids) (trailing spaces of the context move to the continuation first),
// so a tokenizer that merges across the boundary still scores exactly the continuation's text.
// The context gets the tokenizer's special tokens (BOS).
LoglikelihoodRequest encode_pair(const TextTokenizer& tokenizer, const std::string& context,
                                 const std::string& continuation);

}  // namespace hibari
