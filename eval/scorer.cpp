// eval/scorer.cpp — log-likelihoods and greedy generation on the KV-cached decoder (infer/).
#include "eval/scorer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_fields.h"
#include "infer/generate.h"

namespace hibari {

namespace {

// Rows per decoder step: large enough that a step streams the weights once for many tokens.
constexpr size_t kStepTokens = 512;

}  // namespace

namespace {

// tokenizer_config.json's clean_up_tokenization_spaces beside the tokenizer file that was loaded.
// True when absent.
bool read_clean_up_tokenization_spaces(const std::string& tokenizer_file) {
  const std::filesystem::path config =
      std::filesystem::path(tokenizer_file).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(config, ec)) return true;
  std::ifstream in(config, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = parse_json_file(text.str(), config.string());
  if (!j.is_object()) fail_file(config.string(), "not a JSON object");
  return json_get_bool(j, "clean_up_tokenization_spaces", true, config.string());
}

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
  if (max_length == 0) max_length = config.max_position_embeddings;
  max_length = std::min(max_length, config.max_position_embeddings);
  m.tokenizer.emplace(load_tokenizer_for_model(model_dir, tokenizer));
  m.clean_up_tokenization_spaces = read_clean_up_tokenization_spaces(m.tokenizer->path());
  check(m.tokenizer->vocab_size() <= config.vocab_size,
        model_dir + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
            " tokens, the model's vocabulary " + std::to_string(config.vocab_size));
  decoder_create(m.decoder, config, m.loaded.weights,
                 {.max_batch = batch_size,
                  .max_seq = max_length,
                  .max_tokens = kStepTokens,
                  .blas_gemm = false,       // rowwise GEMMs: scores independent of the batch
                  .pack_in_place = true});  // m.loaded's weights serve only this decoder
  m.batch_size = batch_size;
  m.max_length = max_length;
  fs::path p = fs::weakly_canonical(fs::path(model_dir));
  m.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

namespace {

// The scored entries of the requests: entry e of request i is log p(seqs[i][ctx + e] |
// seqs[i][< ctx + e]), ctx = the request's context length after the cut.
struct Entries {
  std::vector<std::vector<double>> logprob;
  std::vector<std::vector<uint8_t>> is_argmax;
};

// Requests whose contexts are the same tokens (a question's choices), `groups` of at most
// batch_size: per round as many groups as the slots hold; each group's context is prefilled once
// into the slot of its first member (the last position's logits score every member's first
// continuation token) and copied to its other members' slots; then the continuations' tokens
// (but each one's last) run in packed steps, each row's logits scoring the token after it.
void score_shared_contexts(EvalModel& m, const std::vector<std::vector<int32_t>>& seqs,
                           const std::vector<size_t>& ctx,
                           const std::vector<std::vector<size_t>>& groups, Entries& out) {
  Decoder& d = m.decoder;
  const size_t V = m.loaded.config.vocab_size;
  const size_t rows_per_step = std::min(d.options.max_tokens, decoder_logit_rows(d));
  std::vector<StepToken> step;
  struct Target {
    size_t request, entry;
  };
  std::vector<Target> targets;
  auto flush = [&] {
    if (step.empty()) return;
    decoder_step(d, step);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < targets.size(); ++r) {
      const Target& tg = targets[r];
      const int32_t y = seqs[tg.request][ctx[tg.request] + tg.entry];
      bool best = false;
      out.logprob[tg.request][tg.entry] = token_logprob(d.logits + r * V, V, y, &best);
      out.is_argmax[tg.request][tg.entry] = best;
    }
    step.clear();
    targets.clear();
  };
  for (size_t g = 0; g < groups.size();) {
    std::vector<size_t> round, first_slot;
    std::vector<std::vector<int32_t>> contexts;
    for (size_t slots = 0; g < groups.size() && slots + groups[g].size() <= m.batch_size; ++g) {
      const size_t lead = groups[g][0];
      round.push_back(g);
      first_slot.push_back(slots);
      contexts.emplace_back(seqs[lead].begin(), seqs[lead].begin() + long(ctx[lead]));
      slots += groups[g].size();
    }
    decoder_reset_all(d);
    decoder_prefill(d, first_slot, contexts);
    for (size_t k = 0; k < round.size(); ++k) {
      const std::vector<size_t>& members = groups[round[k]];
      for (size_t j = 0; j < members.size(); ++j) {
        const size_t i = members[j];
        bool best = false;
        out.logprob[i][0] = token_logprob(d.logits + k * V, V, seqs[i][ctx[i]], &best);
        out.is_argmax[i][0] = best;
        if (j > 0) decoder_copy_sequence(d, first_slot[k], first_slot[k] + j);
      }
    }
    for (size_t k = 0; k < round.size(); ++k) {
      const std::vector<size_t>& members = groups[round[k]];
      for (size_t j = 0; j < members.size(); ++j) {
        const size_t i = members[j];
        for (size_t t = ctx[i]; t + 1 < seqs[i].size(); ++t) {
          step.push_back({int32_t(first_slot[k] + j), seqs[i][t], true});
          targets.push_back({i, t + 1 - ctx[i]});
          if (step.size() == rows_per_step) flush();
        }
      }
    }
    flush();
  }
  decoder_reset_all(d);
}

}  // namespace

std::vector<LoglikelihoodResult> score_loglikelihood(
    EvalModel& m, const std::vector<LoglikelihoodRequest>& reqs) {
  const size_t V = m.loaded.config.vocab_size;
  const size_t window = m.max_length;
  // Each request as one token sequence (context + continuation, the left cut to window + 1).
  std::vector<std::vector<int32_t>> seqs(reqs.size());
  std::vector<size_t> ctx(reqs.size());
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
    ctx[i] = all.size() - r.continuation.size();
  }
  Entries entries;
  entries.logprob.resize(reqs.size());
  entries.is_argmax.resize(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    entries.logprob[i].assign(reqs[i].continuation.size(), 0.0);
    entries.is_argmax[i].assign(reqs[i].continuation.size(), 0);
  }
  // Requests with the same context tokens share its computation (when the slots allow two
  // sequences); the others are scored whole, packed by sequence_logprobs.  Either way an entry
  // has the bits of scoring its whole sequence alone.
  std::map<std::vector<int32_t>, size_t> group_of;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto [it, fresh] = group_of.try_emplace(
        std::vector<int32_t>(seqs[i].begin(), seqs[i].begin() + long(ctx[i])), groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<size_t> whole;
  std::vector<std::vector<size_t>> shared;
  for (const std::vector<size_t>& g : groups) {
    if (g.size() == 1 || m.batch_size == 1) {
      whole.insert(whole.end(), g.begin(), g.end());
      continue;
    }
    for (size_t at = 0; at < g.size(); at += m.batch_size)
      shared.emplace_back(g.begin() + long(at),
                          g.begin() + long(std::min(g.size(), at + m.batch_size)));
  }
  if (!whole.empty()) {
    std::vector<std::vector<int32_t>> whole_seqs;
    for (size_t i : whole) whole_seqs.push_back(seqs[i]);
    std::vector<std::vector<uint8_t>> is_argmax;
    const std::vector<std::vector<double>> lp =
        sequence_logprobs(m.decoder, whole_seqs, &is_argmax);
    for (size_t w = 0; w < whole.size(); ++w) {
      const size_t i = whole[w];
      for (size_t e = 0; e < entries.logprob[i].size(); ++e) {
        entries.logprob[i][e] = lp[w][ctx[i] + e];
        entries.is_argmax[i][e] = is_argmax[w][ctx[i] + e];
      }
    }
  }
  score_shared_contexts(m, seqs, ctx, shared, entries);
  std::vector<LoglikelihoodResult> results(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    LoglikelihoodResult& r = results[i];
    r.tokens = entries.logprob[i].size();
    r.greedy = true;
    for (size_t e = 0; e < r.tokens; ++e) {  // in position order, as the whole sequence's entries
      r.logprob += entries.logprob[i][e];
      r.greedy = r.greedy && entries.is_argmax[i][e] != 0;
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

std::vector<std::string> generate_greedy(EvalModel& m, const std::vector<GreedyRequest>& reqs,
                                         const GreedyOptions& options) {
  const TextTokenizer& tok = *m.tokenizer;
  GenerateOptions base;  // sampling {}: greedy
  if (options.stop_token) base.stop_tokens.push_back(*options.stop_token);
  if (options.stop_at_eos)
    if (std::optional<int32_t> eos = tok.eos_id()) base.stop_tokens.push_back(*eos);
  // A token whose text begins with a stop string ends the answer right there (the text before it
  // is complete, and the answer is cut there anyway), so generation can stop on it.  A stop string
  // inside a token's text is found by cutting the decoded answer.
  for (size_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string piece = tok.decode({int32_t(id)}, true);
    for (const std::string& s : options.stop)
      if (!s.empty() && piece.compare(0, s.size(), s) == 0) {
        base.stop_tokens.push_back(int32_t(id));
        break;
      }
  }
  // Requests of equal max_new_tokens share batches (answers do not depend on the batch).
  std::vector<size_t> order(reqs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reqs[a].max_new_tokens < reqs[b].max_new_tokens;
  });
  std::vector<std::string> answers(reqs.size());
  for (size_t start = 0; start < order.size();) {
    const size_t max_new = reqs[order[start]].max_new_tokens;
    check(max_new > 0 && max_new < m.max_length, "generate_greedy: " + std::to_string(max_new) +
                                                     " new tokens do not fit a window of " +
                                                     std::to_string(m.max_length));
    const size_t keep = m.max_length - max_new;
    std::vector<std::vector<int32_t>> batch;
    size_t end = start;
    for (; end < order.size() && end - start < m.batch_size &&
           reqs[order[end]].max_new_tokens == max_new;
         ++end) {
      const std::vector<int32_t>& p = reqs[order[end]].prompt;
      check(!p.empty(), "generate_greedy: empty prompt " + std::to_string(order[end]));
      batch.emplace_back(p.size() > keep ? p.end() - long(keep) : p.begin(), p.end());
    }
    GenerateOptions o = base;
    o.max_new_tokens = max_new;
    const std::vector<std::vector<int32_t>> outs = generate(m.decoder, batch, o);
    for (size_t k = 0; k < outs.size(); ++k) {
      std::string text = tok.decode(outs[k], options.skip_special_tokens);
      if (options.clean_up_tokenization_spaces) text = clean_up_tokenization(std::move(text));
      answers[order[start + k]] = cut_at_stop(text, options.stop);
    }
    start = end;
  }
  return answers;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kReplacements[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kReplacements) {
    // str.replace: left to right, non-overlapping, the result not rescanned
    std::string out;
    const std::string_view f(from);
    size_t at = 0;
    for (size_t hit; (hit = text.find(f, at)) != std::string::npos; at = hit + f.size())
      out.append(text, at, hit - at).append(to);
    out.append(text, at);
    text = std::move(out);
  }
  return text;
}

LoglikelihoodRequest encode_request(const TextTokenizer& tok, const std::string& context,
                                    const std::string& continuation, RequestEncoding encoding) {
  if (encoding == RequestEncoding::whole) return encode_pair(tok, context, continuation);
  LoglikelihoodRequest r;
  if (context.empty()) {
    std::optional<int32_t> eos = tok.eos_id();
    check(eos.has_value(), "encode_request: an empty context needs the tokenizer's EOS");
    r.context = {*eos};
  } else {
    r.context = tok.encode(context, false);
  }
  r.continuation = tok.encode(continuation, false);
  check(!r.context.empty(), "encode_request: the context encodes to no tokens");
  check(!r.continuation.empty(),
        "encode_request: the continuation \"" + continuation + "\" encodes to no tokens");
  return r;
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
