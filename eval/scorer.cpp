// eval/scorer.cpp — batched log-likelihoods and greedy generation on model/llama.h.
#include "eval/scorer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>

#include "checkpoint/native_checkpoint.h"
#include "core/error.h"
#include "model/config.h"
#include "model/hf_weights.h"

namespace hibari {

void load_eval_model(EvalModel& m, const std::string& model_dir, const std::string& tokenizer,
                     size_t batch_size, size_t max_length) {
  namespace fs = std::filesystem;
  check(batch_size > 0, "load_eval_model: batch size 0");
  std::string dir = model_dir;
  if (fs::exists(fs::path(dir) / "manifest.json")) {
    load_checkpoint(dir);  // verifies every file against the manifest
  } else if (fs::exists(fs::path(dir) / "latest")) {
    std::vector<std::string> notes;
    std::unique_ptr<LoadedCheckpoint> checkpoint = load_latest_checkpoint(dir, &notes);
    if (checkpoint) dir = checkpoint->dir;
  }
  if (!fs::is_regular_file(fs::path(dir) / "config.json"))
    fail_file(dir, "not a model directory (no config.json)");
  ModelConfig config = load_model_config((fs::path(dir) / "config.json").string());
  if (max_length == 0) max_length = std::min<size_t>(config.max_position_embeddings, 2048);
  if (config.max_position_embeddings > 0)
    max_length = std::min(max_length, config.max_position_embeddings);
  m.tokenizer.emplace(load_text_tokenizer(tokenizer.empty() ? dir : tokenizer));
  check(m.tokenizer->vocab_size() <= config.vocab_size,
        dir + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
            " tokens, the model's vocabulary " + std::to_string(config.vocab_size));
  llama_create(m.llama, config, batch_size, max_length);
  load_hf_weights(m.llama.layout, m.llama.params, config, dir);
  m.batch_size = batch_size;
  m.max_length = max_length;
  fs::path p = fs::weakly_canonical(fs::path(model_dir));
  m.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

namespace {

// log-softmax of `logits` (V) at `target`, in double; also whether target is the argmax (first
// index on ties).
double log_softmax_at(const float* logits, size_t V, int32_t target, bool* is_argmax) {
  float max_value = logits[0];
  size_t arg = 0;
  for (size_t v = 1; v < V; ++v) {
    if (logits[v] > max_value) {
      max_value = logits[v];
      arg = v;
    }
  }
  double sum = 0;
  for (size_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(max_value));
  *is_argmax = size_t(target) == arg;
  return double(logits[target]) - double(max_value) - std::log(sum);
}

}  // namespace

std::vector<LoglikelihoodResult> score_loglikelihood(
    EvalModel& m, const std::vector<LoglikelihoodRequest>& reqs) {
  const size_t V = m.llama.config.vocab_size;
  const size_t window = m.max_length;
  // Each request as one token sequence (context + continuation, the left cut to window + 1).
  struct Seq {
    std::vector<int32_t> tokens;
    size_t scored = 0;  // the last `scored` tokens are the continuation
  };
  std::vector<Seq> seqs(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    const LoglikelihoodRequest& r = reqs[i];
    check(!r.context.empty() && !r.continuation.empty(),
          "score_loglikelihood: a request needs a context token and a continuation");
    check(r.continuation.size() <= window,
          "score_loglikelihood: a continuation of " + std::to_string(r.continuation.size()) +
              " tokens is longer than the window of " + std::to_string(window));
    std::vector<int32_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    if (all.size() > window + 1) all.erase(all.begin(), all.end() - long(window + 1));
    for (int32_t t : all)
      check(t >= 0 && size_t(t) < V, "score_loglikelihood: token id " + std::to_string(t) +
                                         " outside the vocabulary of " + std::to_string(V));
    seqs[i].tokens = std::move(all);
    seqs[i].scored = r.continuation.size();
  }
  // Longest first; ties in request order (stable), so batches are the same run to run.
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return seqs[a].tokens.size() > seqs[b].tokens.size();
  });

  std::vector<LoglikelihoodResult> results(reqs.size());
  std::vector<int32_t> inputs(m.batch_size * window);
  std::vector<float> logits(V);
  for (size_t start = 0; start < order.size(); start += m.batch_size) {
    const size_t B = std::min(m.batch_size, order.size() - start);
    const size_t T = seqs[order[start]].tokens.size() - 1;  // the longest input of the batch
    std::fill(inputs.begin(), inputs.begin() + long(B * T), 0);
    for (size_t b = 0; b < B; ++b) {
      const std::vector<int32_t>& tokens = seqs[order[start + b]].tokens;
      std::copy(tokens.begin(), tokens.end() - 1, inputs.begin() + long(b * T));
    }
    llama_forward(m.llama, inputs.data(), nullptr, B, T, 0.0f);
    for (size_t b = 0; b < B; ++b) {
      const Seq& s = seqs[order[start + b]];
      LoglikelihoodResult& r = results[order[start + b]];
      r.greedy = true;
      r.tokens = s.scored;
      const size_t n = s.tokens.size();
      // Position t's logits predict token t + 1.
      for (size_t t = n - 1 - s.scored; t + 1 < n; ++t) {
        llama_logits_at(m.llama, logits.data(), b, t);
        bool is_argmax = false;
        r.logprob += log_softmax_at(logits.data(), V, s.tokens[t + 1], &is_argmax);
        r.greedy = r.greedy && is_argmax;
      }
    }
  }
  return results;
}

std::string generate_greedy(EvalModel& m, const std::vector<int32_t>& prompt, size_t max_new_tokens,
                            const std::vector<std::string>& stop) {
  check(!prompt.empty(), "generate_greedy: empty prompt");
  const size_t V = m.llama.config.vocab_size;
  const std::optional<int32_t> eos = m.tokenizer->eos_id();
  std::vector<int32_t> tokens = prompt;
  std::vector<int32_t> generated;
  std::vector<float> logits(V);
  std::string text;
  for (size_t step = 0; step < max_new_tokens; ++step) {
    const size_t T = std::min(tokens.size(), m.max_length);
    const int32_t* window = tokens.data() + (tokens.size() - T);
    llama_forward(m.llama, window, nullptr, 1, T, 0.0f);
    llama_logits_at(m.llama, logits.data(), 0, T - 1);
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (eos && next == *eos) break;
    tokens.push_back(next);
    generated.push_back(next);
    text = m.tokenizer->decode(generated, true);
    size_t cut = std::string::npos;
    for (const std::string& s : stop)
      if (!s.empty()) cut = std::min(cut, text.find(s));
    if (cut != std::string::npos) return text.substr(0, cut);
  }
  return text;
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
