// eval/evaluate.cpp — prompts, few-shot draws and the three scoring methods of a task.
#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "eval/metrics.h"

namespace hibari {

std::vector<size_t> draw_fewshot(size_t pool, size_t k, uint64_t seed, size_t doc_index) {
  check(k <= pool,
        "draw_fewshot: " + std::to_string(k) + " examples from a pool of " + std::to_string(pool));
  std::vector<size_t> idx(pool);
  std::iota(idx.begin(), idx.end(), 0);
  for (size_t j = 0; j < k; ++j) {
    const uint64_t n = uint64_t(doc_index) * pool + j;
    const size_t r = j + random_below(seed, 0, n, uint32_t(pool - j));
    std::swap(idx[j], idx[r]);
  }
  idx.resize(k);
  return idx;
}

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

namespace {

// Documents are scored in chunks of this many, so progress moves and memory for requests stays
// bounded.
constexpr size_t kChunkDocs = 64;

TaskResult evaluate_multiple_choice(EvalModel& model, const TaskSpec& task,
                                    const std::vector<EvalDoc>& docs,
                                    const std::vector<EvalDoc>& pool, const EvalOptions& o,
                                    TaskResult r) {
  std::vector<double> acc, acc_norm;
  for (size_t begin = 0; begin < docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(docs.size(), begin + kChunkDocs);
    std::vector<LoglikelihoodRequest> reqs;
    for (size_t i = begin; i < end; ++i) {
      std::vector<const EvalDoc*> shots;
      for (size_t s : draw_fewshot(pool.size(), o.num_fewshot, o.seed, i))
        shots.push_back(&pool[s]);
      const std::string ctx = build_context(task, docs[i], shots);
      for (const std::string& choice : docs[i].choices)
        reqs.push_back(encode_pair(*model.tokenizer, ctx, task.target_delimiter + choice));
    }
    std::vector<LoglikelihoodResult> res = score_loglikelihood(model, reqs);
    size_t at = 0;
    for (size_t i = begin; i < end; ++i) {
      std::vector<double> lls;
      for (size_t c = 0; c < docs[i].choices.size(); ++c) lls.push_back(res[at++].logprob);
      acc.push_back(argmax_choice(lls) == docs[i].gold ? 1.0 : 0.0);
      acc_norm.push_back(argmax_choice_normalized(lls, docs[i].choices) == docs[i].gold ? 1.0
                                                                                        : 0.0);
    }
    if (o.progress) o.progress(task.name, end, docs.size());
  }
  for (const std::string& metric : task.metrics) {
    MeanStderr ms = mean_stderr(metric == "acc" ? acc : acc_norm);
    r.metrics.push_back({metric, ms.mean, ms.stderr_of_mean});
  }
  return r;
}

TaskResult evaluate_generation(EvalModel& model, const TaskSpec& task,
                               const std::vector<EvalDoc>& docs, const std::vector<EvalDoc>& pool,
                               const EvalOptions& o, TaskResult r) {
  std::vector<double> em, f1;
  for (size_t begin = 0; begin < docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(docs.size(), begin + kChunkDocs);
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = begin; i < end; ++i) {
      std::vector<const EvalDoc*> shots;
      for (size_t s : draw_fewshot(pool.size(), o.num_fewshot, o.seed, i))
        shots.push_back(&pool[s]);
      // A prompt past the window loses its beginning (generate_greedy keeps the last tokens).
      prompts.push_back(model.tokenizer->encode(build_context(task, docs[i], shots), true));
    }
    const std::vector<std::string> answers =
        generate_greedy(model, prompts, task.max_new_tokens, task.stop);
    for (size_t i = begin; i < end; ++i) {
      em.push_back(exact_match(answers[i - begin], docs[i].answers));
      f1.push_back(char_f1(answers[i - begin], docs[i].answers));
    }
    if (o.progress) o.progress(task.name, end, docs.size());
  }
  for (const std::string& metric : task.metrics) {
    MeanStderr ms = mean_stderr(metric == "exact_match" ? em : f1);
    r.metrics.push_back({metric, ms.mean, ms.stderr_of_mean});
  }
  return r;
}

TaskResult evaluate_perplexity(EvalModel& model, const TaskSpec& task,
                               const std::vector<EvalDoc>& docs, const EvalOptions& o,
                               TaskResult r) {
  const TextTokenizer& tok = *model.tokenizer;
  std::optional<int32_t> prefix = tok.bos_id();
  if (!prefix) prefix = tok.eos_id();
  double logprob = 0;
  size_t tokens = 0, chars = 0, bytes = 0;
  for (size_t begin = 0; begin < docs.size(); begin += kChunkDocs) {
    const size_t end = std::min(docs.size(), begin + kChunkDocs);
    std::vector<LoglikelihoodRequest> reqs;
    for (size_t i = begin; i < end; ++i) {
      std::vector<int32_t> ids = tok.encode(docs[i].text, false);
      if (prefix) ids.insert(ids.begin(), *prefix);
      chars += utf8_length(docs[i].text);
      bytes += docs[i].text.size();
      // Predict ids[1..]; window w predicts ids[s, e) given ids[s - 1].
      for (size_t s = 1; s < ids.size(); s += model.max_length) {
        const size_t e = std::min(ids.size(), s + model.max_length);
        LoglikelihoodRequest q;
        q.context = {ids[s - 1]};
        q.continuation.assign(ids.begin() + long(s), ids.begin() + long(e));
        reqs.push_back(std::move(q));
      }
    }
    for (const LoglikelihoodResult& res : score_loglikelihood(model, reqs)) {
      logprob += res.logprob;
      tokens += res.tokens;
    }
    if (o.progress) o.progress(task.name, end, docs.size());
  }
  check(tokens > 0, task.name + ": no tokens to predict");
  for (const std::string& metric : task.metrics) {
    double v = metric == "token_perplexity"  ? std::exp(-logprob / double(tokens))
               : metric == "char_perplexity" ? std::exp(-logprob / double(chars))
                                             : -logprob / (double(bytes) * std::log(2.0));
    r.metrics.push_back({metric, v, NAN});
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
  if (o.limit > 0 && docs.size() > o.limit) docs.resize(o.limit);
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
      return evaluate_multiple_choice(model, task, t.docs, t.pool, o, r);
    case TaskMethod::generation:
      return evaluate_generation(model, task, t.docs, t.pool, o, r);
    case TaskMethod::perplexity:
      return evaluate_perplexity(model, task, t.docs, o, r);
  }
  return r;
}

TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const EvalOptions& o) {
  return evaluate_task(model, task, load_task_docs(task, o), o);
}

}  // namespace hibari
