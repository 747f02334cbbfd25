// eval/scorer.cpp — log-likelihoods and greedy generation on the KV-cached decoder (infer/).
#include "eval/scorer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "infer/generate.h"

namespace hibari {

namespace {

// Rows per decoder step: large enough that a step streams the weights once for many tokens.
constexpr size_t kStepTokens = 512;

}  // namespace

void load_eval_model(EvalModel& m, const std::string& model_dir, const std::string& tokenizer,
                     size_t batch_size, size_t max_length) {
  namespace fs = std::filesystem;
  check(batch_size > 0, "load_eval_model: batch size 0");
  m.loaded = load_model_for_inference(model_dir);
  const ModelConfig& config = m.loaded.config;
  check(config.max_position_embeddings >= 2, model_dir + ": max_position_embeddings " +
                                                 std::to_string(config.max_position_embeddings) +
                                                 " leaves no window to score");
  if (max_length == 0) max_length = std::min<size_t>(config.max_position_embeddings, 2048);
  // The decoder caches every token of a scored sequence, the predicted last one included.
  max_length = std::min(max_length, config.max_position_embeddings - 1);
  m.tokenizer.emplace(load_tokenizer_for_model(model_dir, tokenizer));
  check(m.tokenizer->vocab_size() <= config.vocab_size,
        model_dir + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
            " tokens, the model's vocabulary " + std::to_string(config.vocab_size));
  decoder_create(m.decoder, config, m.loaded.weights,
                 {.max_batch = batch_size,
                  .max_seq = max_length + 1,
                  .max_tokens = kStepTokens,
                  .blas_gemm = false,       // rowwise GEMMs: scores independent of the batch
                  .pack_in_place = true});  // m.loaded's weights serve only this decoder
  m.batch_size = batch_size;
  m.max_length = max_length;
  fs::path p = fs::weakly_canonical(fs::path(model_dir));
  m.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

std::vector<LoglikelihoodResult> score_loglikelihood(
    EvalModel& m, const std::vector<LoglikelihoodRequest>& reqs) {
  const size_t V = m.loaded.config.vocab_size;
  const size_t window = m.max_length;
  // Each request as one token sequence (context + continuation, the left cut to window + 1).
  std::vector<std::vector<int32_t>> seqs(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    const LoglikelihoodRequest& r = reqs[i];
    check(!r.context.empty() && !r.continuation.empty(),
          "score_loglikelihood: a request needs a context token and a continuation");
    check(r.continuation.size() <= window,
          "score_loglikelihood: a continuation of " + std::to_string(r.continuation.size()) +
              " tokens is longer than the window of " + std::to_string(window));
    std::vector<int32_t>& all = seqs[i];
    all.reserve(r.context.size() + r.continuation.size());
    all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    if (all.size() > window + 1) all.erase(all.begin(), all.end() - long(window + 1));
    for (int32_t t : all)
      check(t >= 0 && size_t(t) < V, "score_loglikelihood: token id " + std::to_string(t) +
                                         " outside the vocabulary of " + std::to_string(V));
  }
  std::vector<std::vector<uint8_t>> is_argmax;
  const std::vector<std::vector<double>> logprobs = sequence_logprobs(m.decoder, seqs, &is_argmax);
  std::vector<LoglikelihoodResult> results(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    LoglikelihoodResult& r = results[i];
    const size_t n = seqs[i].size(), scored = reqs[i].continuation.size();
    r.tokens = scored;
    r.greedy = true;
    for (size_t t = n - scored; t < n; ++t) {  // entry t: log p(seqs[i][t] | seqs[i][<t])
      r.logprob += logprobs[i][t];
      r.greedy = r.greedy && is_argmax[i][t] != 0;
    }
  }
  return results;
}

namespace {

// The text before the first of `stop` in `text` (all of it when none occurs).
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stop) {
  size_t cut = std::string::npos;
  for (const std::string& s : stop)
    if (!s.empty()) cut = std::min(cut, text.find(s));
  return cut == std::string::npos ? text : text.substr(0, cut);
}

}  // namespace

std::vector<std::string> generate_greedy(EvalModel& m,
                                         const std::vector<std::vector<int32_t>>& prompts,
                                         size_t max_new_tokens,
                                         const std::vector<std::string>& stop) {
  check(max_new_tokens > 0 && max_new_tokens < m.max_length,
        "generate_greedy: " + std::to_string(max_new_tokens) +
            " new tokens do not fit a window of " + std::to_string(m.max_length));
  const TextTokenizer& tok = *m.tokenizer;
  GenerateOptions o;
  o.max_new_tokens = max_new_tokens;  // sampling {}: greedy
  if (std::optional<int32_t> eos = tok.eos_id()) o.stop_tokens.push_back(*eos);
  // A token whose text begins with a stop string ends the answer right there (the text before it
  // is complete), so generation can stop on it.  A stop string inside a token's text is found by
  // cutting the decoded answer.
  for (size_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string piece = tok.decode({int32_t(id)}, true);
    for (const std::string& s : stop)
      if (!s.empty() && piece.compare(0, s.size(), s) == 0) {
        o.stop_tokens.push_back(int32_t(id));
        break;
      }
  }
  const size_t keep = m.max_length - max_new_tokens;
  std::vector<std::string> answers;
  answers.reserve(prompts.size());
  for (size_t start = 0; start < prompts.size(); start += m.batch_size) {
    const size_t n = std::min(m.batch_size, prompts.size() - start);
    std::vector<std::vector<int32_t>> batch;
    for (size_t i = start; i < start + n; ++i) {
      const std::vector<int32_t>& p = prompts[i];
      check(!p.empty(), "generate_greedy: empty prompt " + std::to_string(i));
      batch.emplace_back(p.size() > keep ? p.end() - long(keep) : p.begin(), p.end());
    }
    for (const std::vector<int32_t>& out : generate(m.decoder, batch, o))
      answers.push_back(cut_at_stop(tok.decode(out, true), stop));
  }
  return answers;
}

LoglikelihoodRequest encode_pair(const TextTokenizer& tok, const std::string& context,
                                 const std::string& continuation) {
  std::string ctx = context, cont = continuation;
  size_t keep = ctx.find_last_not_of(' ');
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep < ctx.size()) {
    cont = ctx.substr(keep) + cont;
    ctx.resize(keep);
  }
  std::vector<int32_t> whole = tok.encode(ctx + cont, true);
  std::vector<int32_t> ctx_ids = tok.encode(ctx, true);
  LoglikelihoodRequest r;
  const size_t split = std::min(ctx_ids.size(), whole.size());
  r.context.assign(whole.begin(), whole.begin() + long(split));
  r.continuation.assign(whole.begin() + long(split), whole.end());
  if (r.context.empty()) {  // no BOS and an empty context: condition on EOS as the harness does
    std::optional<int32_t> eos = tok.eos_id();
    check(eos.has_value(), "encode_pair: empty context and the tokenizer has no BOS or EOS");
    r.context.push_back(*eos);
  }
  check(!r.continuation.empty(), "encode_pair: the continuation \"" + continuation +
                                     "\" encodes to no tokens after its context");
  return r;
}

}  // namespace hibari
