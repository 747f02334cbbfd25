// eval/scorer.h — what evaluation asks of a model: the log-likelihood of a continuation given a
// context (multiple choice, perplexity) and greedy generation (JSQuAD), on the KV-cached inference
// decoder (infer/decoder.h).
//
// A log-likelihood request is one token sequence, context + continuation; its score is the sum of
// the last continuation-length entries of sequence_logprobs.  Sequences are packed into decoder
// steps without padding, and every row of a step is computed from that row alone, so a score does
// not depend on batch_size, on the order of the requests or on what else is in the batch: the bits
// are the same.  A sequence longer than the window keeps its last max_length + 1 tokens (the
// context is cut on the left; the last token is predicted, not fed), as lm-evaluation-harness
// does.
// Requests with the same context tokens (a question's choices) compute the context once: it is
// cached in one slot and copied to the others (decoder_copy_sequence), and only the
// continuations' positions go through the vocabulary head.  The cached context has the bits of
// the whole sequence's, so a score is the same either way.
//
// Scores are log-softmax values in double precision from the float32 logits of each position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"
#include "eval/task.h"
#include "infer/decoder.h"
#include "infer/model_loader.h"

namespace hibari {

struct EvalModel {
  LoadedModel loaded;                      // the weights (decoder points into them)
  Decoder decoder;                         // batch_size slots of max_length positions
  std::optional<TextTokenizer> tokenizer;  // set by load_eval_model (no default tokenizer)
  // tokenizer_config.json's clean_up_tokenization_spaces beside the tokenizer (true when absent:
  // transformers' default when the JP harness was pinned): decoded generations get
  // transformers' clean_up_tokenization (" ." -> "." ...) as the harness's tok_decode does.
  bool clean_up_tokenization_spaces = true;
  std::string name;       // for the result file: the directory's name
  size_t batch_size = 1;  // sequences in the decoder at once (scoring and generation)
  size_t max_length = 0;  // the window: tokens a scored position may see (context + predicted)
};

// Loads a Hugging Face directory (config.json, *.safetensors, tokenizer.json or tokenizer.model)
// or a hibari checkpoint (a step directory, or a checkpoint root: its newest intact checkpoint)
// with load_model_for_inference, and makes a decoder of batch_size slots.  max_length 0: the
// config's max_position_embeddings, as the JP harness's hf-causal model takes it (at most that
// in any case).  A scored sequence is at most max_length + 1 tokens: the window fed to the model
// plus the token its last position predicts, which is never fed.  `tokenizer` (a file or
// directory) overrides the model's own; a checkpoint without one needs it.  Errors are one line
// naming the file.
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

// One result per request, in request order; bit-identical for any batch_size and request order.
std::vector<LoglikelihoodResult> score_loglikelihood(EvalModel& model,
                                                     const std::vector<LoglikelihoodRequest>& reqs);

// Greedy generation as the JP harness's greedy_until: a prompt keeps its last
// max_length - max_new_tokens tokens, generation ends at `stop_token` (the last token of
// encode(stop[0])), at EOS when stop_at_eos, or after max_new_tokens; the generated tokens are
// decoded (special tokens kept unless skip_special_tokens) and cut before the first `stop` string.
struct GreedyRequest {
  std::vector<int32_t> prompt;
  size_t max_new_tokens = 0;
};
struct GreedyOptions {
  std::vector<std::string> stop;
  std::optional<int32_t> stop_token;
  bool stop_at_eos = false;
  bool skip_special_tokens = false;
  bool clean_up_tokenization_spaces = false;  // transformers' clean_up_tokenization after decode
};

// transformers' PreTrainedTokenizerBase.clean_up_tokenization: " ." -> ".", " ?" -> "?",
// " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s",
// " 've" -> "'ve", " 're" -> "'re", each replace over the whole string in that order.
std::string clean_up_tokenization(std::string text);
// One answer per request, in request order; batch_size prompts of equal max_new_tokens run
// together.  Like scoring, an answer does not depend on the batch.
std::vector<std::string> generate_greedy(EvalModel& model, const std::vector<GreedyRequest>& reqs,
                                         const GreedyOptions& options);

// Context and continuation token ids for the strings, by the task's encoding (eval/task.h):
//   separate: encode(context) and encode(continuation) without special tokens; [EOS] for an
//             empty context (the JP harness's hf-causal loglikelihood).
//   whole:    as lm-evaluation-harness 0.4's _encode_pair: whole = encode(context + continuation)
//             with BOS, context_ids = encode(context), continuation = the rest of whole after
//             len(context_ids) (trailing spaces of the context move to the continuation first), so
//             a tokenizer that merges across the boundary still scores exactly the continuation.
LoglikelihoodRequest encode_request(const TextTokenizer& tokenizer, const std::string& context,
                                    const std::string& continuation, RequestEncoding encoding);
// The whole-encoding case of encode_request.
LoglikelihoodRequest encode_pair(const TextTokenizer& tokenizer, const std::string& context,
                                 const std::string& continuation);

}  // namespace hibari
