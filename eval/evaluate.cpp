// eval/evaluate.cpp — document order, few-shot draws, prompts and the three scoring methods.
#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/python_random.h"
#include "eval/python_text.h"

namespace hibari {

std::string fewshot_target(const TaskSpec& task, const EvalDoc& doc) {
  if (task_method(task.format) == TaskMethod::generation) return doc.answers.at(0);
  return doc.choices.at(doc.gold);
}

std::string build_context(const TaskSpec& task, const EvalDoc& doc,
                          const std::vector<const EvalDoc*>& shots) {
  std::string ctx = task.description;
  for (const EvalDoc* shot : shots) {
    ctx += render_template(task.prompt_template, shot->fields, task.name);
    ctx += task.target_delimiter + fewshot_target(task, *shot) + task.fewshot_separator;
  }
  ctx += render_template(task.prompt_template, doc.fields, task.name);
  return ctx;
}

std::vector<LoglikelihoodRequest> harness_rolling_windows(const std::vector<int32_t>& tokens,
                                                          int32_t prefix, size_t max_len) {
  std::vector<LoglikelihoodRequest> out;
  if (tokens.empty()) return out;
  const size_t first = std::min(max_len, tokens.size());
  out.push_back({{prefix}, {tokens.begin(), tokens.begin() + long(first)}});
  for (size_t predicted = first; predicted < tokens.size();) {
    const size_t len = std::min(tokens.size() - predicted, max_len);
    const size_t end = predicted + len;
    // input tokens[end - max_len - 1, end - 1), of which the first max_len - len + 1 are context
    const size_t ctx_begin = end - max_len - 1;
    const size_t ctx_end = ctx_begin + (max_len - len + 1);
    out.push_back({{tokens.begin() + long(ctx_begin), tokens.begin() + long(ctx_end)},
                   {tokens.begin() + long(predicted), tokens.begin() + long(end)}});
    predicted = end;
  }
  return out;
}

namespace {

// Documents are scored in chunks of this many, so progress moves and memory for requests stays
// bounded.
constexpr size_t kChunkDocs = 64;

RequestEncoding encoding_of(const TaskSpec& task, const EvalOptions& o) {
  return o.encoding.value_or(task.encoding);
}

std::string context_of(const TaskSpec& task, const TaskDocs& t, size_t i) {
  std::vector<const EvalDoc*> shots;
  for (size_t s : t.shots[i]) shots.push_back(&t.pool[s]);
  return build_context(task, t.docs[i], shots);
}

// One sample-log line: the fields every method shares, then the method's own.
nlohmann::json sample_head(const TaskSpec& task, size_t doc_id, const EvalDoc& doc) {
  return {{"task", task.name}, {"doc_id", doc_id}, {"line", doc.line}};
}

void add_metric(TaskResult& r, const std::string& metric, double value, double stderr_of_mean) {
  r.metrics.push_back({metric, value, stderr_of_mean});
}

TaskResult evaluate_multiple_choice(EvalModel& model, const TaskSpec& task, const TaskDocs& t,
                                    const EvalOptions& o, TaskResult r) {
  const RequestEncoding encoding = encoding_of(task, o);
  std::vector<double> acc, acc_norm;
  std::vector<size_t> gold, pred;
  for (size_t begin = 0; begin < t.docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(t.docs.size(), begin + kChunkDocs);
    std::vector<LoglikelihoodRequest> reqs;
    std::vector<std::string> contexts;
    for (size_t i = begin; i < end; ++i) {
      contexts.push_back(context_of(task, t, i));
      for (const std::string& choice : t.docs[i].choices)
        reqs.push_back(encode_request(*model.tokenizer, contexts.back(),
                                      task.target_delimiter + choice, encoding));
    }
    std::vector<LoglikelihoodResult> res = score_loglikelihood(model, reqs);
    size_t at = 0;
    for (size_t i = begin; i < end; ++i) {
      const EvalDoc& doc = t.docs[i];
      std::vector<double> lls;
      for (size_t c = 0; c < doc.choices.size(); ++c) lls.push_back(res[at++].logprob);
      const size_t p = argmax_choice(lls);
      acc.push_back(p == doc.gold ? 1.0 : 0.0);
      acc_norm.push_back(argmax_choice_normalized(lls, doc.choices) == doc.gold ? 1.0 : 0.0);
      gold.push_back(doc.gold);
      pred.push_back(p);
      if (o.log_sample) {
        nlohmann::json j = sample_head(task, i, doc);
        j["prompt"] = contexts[i - begin];
        j["choices"] = doc.choices;
        j["loglikelihoods"] = lls;
        j["prediction"] = p;
        j["gold"] = doc.gold;
        j["metrics"] = {{"acc", acc.back()}, {"acc_norm", acc_norm.back()}};
        o.log_sample(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
    if (o.progress) o.progress(task.name, end, t.docs.size());
  }
  for (const std::string& metric : task.metrics) {
    if (metric == "acc" || metric == "acc_norm") {
      MeanStderr ms = mean_stderr(metric == "acc" ? acc : acc_norm);
      add_metric(r, metric, ms.mean, ms.stderr_of_mean);
    } else if (metric == "balanced_acc") {
      add_metric(r, metric, balanced_accuracy(gold, pred), NAN);
    } else if (metric == "mcc") {
      add_metric(r, metric, matthews_corrcoef(gold, pred), NAN);
    } else if (metric == "macro_f1") {
      add_metric(r, metric, macro_f1(gold, pred), NAN);
    }
  }
  return r;
}

// The longest gold answer's token count (the harness's DYNAMIC_MAX_LENGTH), at least 1.
size_t longest_answer_tokens(const TextTokenizer& tok, const EvalDoc& doc) {
  size_t longest = 1;
  for (const std::string& a : doc.answers) longest = std::max(longest, tok.encode(a, false).size());
  return longest;
}

TaskResult evaluate_generation(EvalModel& model, const TaskSpec& task, const TaskDocs& t,
                               const EvalOptions& o, TaskResult r) {
  const TextTokenizer& tok = *model.tokenizer;
  const RequestEncoding encoding = encoding_of(task, o);
  GreedyOptions greedy;
  greedy.stop = task.stop;
  if (encoding == RequestEncoding::separate) {
    // The harness's greedy_until: generation ends at the last token of encode(stop[0]) (EOS when
    // that is empty), not at EOS; the answer is decoded with special tokens kept.
    std::vector<int32_t> until;
    if (!task.stop.empty()) until = tok.encode(task.stop[0], false);
    if (!until.empty()) {
      greedy.stop_token = until.back();
    } else {
      greedy.stop_token = tok.eos_id();
    }
    greedy.clean_up_tokenization_spaces = model.clean_up_tokenization_spaces;
  } else {
    greedy.stop_at_eos = true;
    greedy.skip_special_tokens = true;
  }
  std::unique_ptr<MecabWakati> tagger;
  if (std::find(task.metrics.begin(), task.metrics.end(), "f1") != task.metrics.end())
    tagger = std::make_unique<MecabWakati>(o.mecab_dictionary);
  JsquadAggregate harness;
  std::vector<double> em, f1, cf1;
  for (size_t begin = 0; begin < t.docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(t.docs.size(), begin + kChunkDocs);
    std::vector<GreedyRequest> reqs;
    std::vector<std::string> contexts;
    for (size_t i = begin; i < end; ++i) {
      contexts.push_back(context_of(task, t, i));
      GreedyRequest q;
      q.prompt = tok.encode(contexts.back(), encoding == RequestEncoding::whole);
      q.max_new_tokens =
          task.max_new_tokens > 0 ? task.max_new_tokens : longest_answer_tokens(tok, t.docs[i]);
      reqs.push_back(std::move(q));
    }
    const std::vector<std::string> answers = generate_greedy(model, reqs, greedy);
    for (size_t i = begin; i < end; ++i) {
      const EvalDoc& doc = t.docs[i];
      const std::string& answer = answers[i - begin];
      em.push_back(harness_jsquad_exact_match(answer, doc.answers));
      f1.push_back(tagger ? harness_jsquad_f1(answer, doc.answers, *tagger) : 0.0);
      cf1.push_back(char_f1(answer, doc.answers));
      harness.add(em.back(), f1.back());
      if (o.log_sample) {
        nlohmann::json j = sample_head(task, i, doc);
        j["prompt"] = contexts[i - begin];
        j["prediction"] = answer;
        j["gold"] = doc.answers;
        j["max_new_tokens"] = reqs[i - begin].max_new_tokens;
        nlohmann::json m = {{"exact_match", em.back()}, {"char_f1", cf1.back()}};
        if (tagger) m["f1"] = f1.back();
        j["metrics"] = m;
        o.log_sample(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
    if (o.progress) o.progress(task.name, end, t.docs.size());
  }
  // On the harness's 0-100 scale; the standard errors are of those means.
  auto scaled = [](const std::vector<double>& v) {
    MeanStderr ms = mean_stderr(v);
    return MeanStderr{100 * ms.mean, 100 * ms.stderr_of_mean};
  };
  for (const std::string& metric : task.metrics) {
    if (metric == "exact_match") {
      add_metric(r, metric, harness.exact_match(), scaled(em).stderr_of_mean);
    } else if (metric == "f1") {
      add_metric(r, metric, harness.f1(), scaled(f1).stderr_of_mean);
    } else if (metric == "char_f1") {
      MeanStderr ms = scaled(cf1);
      add_metric(r, metric, ms.mean, ms.stderr_of_mean);
    }
  }
  return r;
}

TaskResult evaluate_perplexity(EvalModel& model, const TaskSpec& task, const TaskDocs& t,
                               const EvalOptions& o, TaskResult r) {
  const TextTokenizer& tok = *model.tokenizer;
  const bool whole = encoding_of(task, o) == RequestEncoding::whole;
  std::optional<int32_t> prefix = whole && tok.bos_id() ? tok.bos_id() : tok.eos_id();
  if (!prefix) prefix = tok.bos_id();
  check(prefix.has_value(), task.name + ": perplexity needs the tokenizer's EOS (or BOS)");
  double logprob = 0;
  size_t tokens = 0, chars = 0, bytes = 0, words = 0;
  for (size_t begin = 0; begin < t.docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(t.docs.size(), begin + kChunkDocs);
    std::vector<LoglikelihoodRequest> reqs;
    std::vector<size_t> first_window;  // per document, its first request
    for (size_t i = begin; i < end; ++i) {
      first_window.push_back(reqs.size());
      for (LoglikelihoodRequest& q :
           harness_rolling_windows(tok.encode(t.docs[i].text, false), *prefix, model.max_length))
        reqs.push_back(std::move(q));
    }
    first_window.push_back(reqs.size());
    const std::vector<LoglikelihoodResult> res = score_loglikelihood(model, reqs);
    for (size_t i = begin; i < end; ++i) {
      const EvalDoc& doc = t.docs[i];
      double doc_logprob = 0;
      size_t doc_tokens = 0;
      for (size_t w = first_window[i - begin]; w < first_window[i - begin + 1]; ++w) {
        doc_logprob += res[w].logprob;
        doc_tokens += res[w].tokens;
      }
      const size_t doc_chars = utf8_length(doc.text),
                   doc_words = python_regex_split_count(doc.text);
      logprob += doc_logprob;
      tokens += doc_tokens;
      chars += doc_chars;
      bytes += doc.text.size();
      words += doc_words;
      if (o.log_sample) {
        nlohmann::json j = sample_head(task, i, doc);
        j["loglikelihood"] = doc_logprob;
        j["tokens"] = doc_tokens;
        j["words"] = doc_words;
        j["bytes"] = doc.text.size();
        j["chars"] = doc_chars;
        o.log_sample(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
    if (o.progress) o.progress(task.name, end, t.docs.size());
  }
  check(tokens > 0, task.name + ": no tokens to predict");
  for (const std::string& metric : task.metrics) {
    const double v = metric == "token_perplexity"  ? std::exp(-logprob / double(tokens))
                     : metric == "char_perplexity" ? std::exp(-logprob / double(chars))
                     : metric == "word_perplexity" ? std::exp(-logprob / double(words))
                     : metric == "byte_perplexity" ? std::exp(-logprob / double(bytes))
                                                   : -logprob / double(bytes) / std::log(2.0);
    add_metric(r, metric, v, NAN);
  }
  return r;
}

}  // namespace

TaskDocs load_task_docs(const TaskSpec& task, const EvalOptions& o) {
  const TaskMethod method = task_method(task.format);
  const std::string data_path = resolve_data_file(o.data_dir, task.data_file, task.name);
  TaskDocs t;
  std::vector<EvalDoc>& docs = t.docs;
  std::vector<EvalDoc>& pool = t.pool;
  docs = load_eval_docs(task, data_path);
  if (method != TaskMethod::perplexity) {
    if (!task.fewshot_file.empty()) {
      if (o.num_fewshot > 0)
        pool = load_eval_docs(task, resolve_data_file(o.data_dir, task.fewshot_file, task.name));
    } else if (task.fewshot_pool > 0) {
      check(docs.size() > task.fewshot_pool,
            data_path + ": " + std::to_string(docs.size()) +
                " documents, not more than the task's fewshot_pool of " +
                std::to_string(task.fewshot_pool));
      pool.assign(docs.begin(), docs.begin() + long(task.fewshot_pool));
      docs.erase(docs.begin(), docs.begin() + long(task.fewshot_pool));
    }
    check(o.num_fewshot <= pool.size(),
          task.name + ": " + std::to_string(o.num_fewshot) + "-shot needs that many examples; " +
              (task.fewshot_file.empty() && task.fewshot_pool == 0
                   ? std::string("the task names no fewshot_file or fewshot_pool")
                   : "the few-shot pool has " + std::to_string(pool.size())));
  }
  // The harness's order: one generator per task shuffles the documents, --limit keeps the first
  // N, and the same generator then draws each kept document's shots in turn.
  PythonRandom rnd = python_random_with_seed(o.seed);
  python_shuffle(rnd, docs);
  if (o.limit > 0 && docs.size() > o.limit) docs.resize(o.limit);
  std::vector<std::string> targets;
  if (task.fewshot_stratified)
    for (const EvalDoc& p : pool) targets.push_back(fewshot_target(task, p));
  t.shots.resize(docs.size());
  for (size_t i = 0; i < docs.size(); ++i)
    t.shots[i] = harness_fewshot_indices(rnd, pool.size(), o.num_fewshot,
                                         task.fewshot_stratified ? &targets : nullptr);
  return t;
}

TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const TaskDocs& t,
                         const EvalOptions& o) {
  const TaskMethod method = task_method(task.format);
  TaskResult r;
  r.task = task.name;
  r.language = task.language;
  r.prompt_version = task.prompt_version;
  r.model = model.name;
  r.n = t.docs.size();
  r.num_fewshot = method == TaskMethod::perplexity ? 0 : o.num_fewshot;
  switch (method) {
    case TaskMethod::multiple_choice:
      return evaluate_multiple_choice(model, task, t, o, r);
    case TaskMethod::generation:
      return evaluate_generation(model, task, t, o, r);
    case TaskMethod::perplexity:
      return evaluate_perplexity(model, task, t, o, r);
  }
  return r;
}

TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const EvalOptions& o) {
  return evaluate_task(model, task, load_task_docs(task, o), o);
}

}  // namespace hibari
