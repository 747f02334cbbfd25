// eval/evaluate.h — one task over one model: load the documents, put them in the JP harness's
// order, draw the few-shot examples, build the prompts, score, aggregate.
//
// Order and few-shot draws follow the JP LM Evaluation Harness (Stability-AI/lm-evaluation-harness,
// jp-stable, commit effdbeaf742e74ea1787871e99272c12146ba346, lm_eval/evaluator.py and base.py)
// with CPython's generator (eval/python_random.h): per task one random.Random(seed) (42 there,
// --seed here) shuffles the evaluation documents; --limit keeps the first N of that order; then
// each document in order draws its shots from the same generator: sample(pool, k), or the
// stratified draw for tasks with "fewshot_stratified" (JNLI); nothing when k is 0.  The pool is
// the task's fewshot_file (the train split), or else the data file's first fewshot_pool documents,
// which are then never evaluated (whatever K, so n does not change with K).
//
// Prompt: description + shot_1 + sep + ... + shot_k + sep + template(doc), shot = template(shot) +
// target_delimiter + target (eval/task.h).
//
// Perplexity (the harness's loglikelihood_rolling): a document's tokens (encode without special
// tokens) are predicted in windows of max_length tokens: the first conditioned on EOS, each next
// one on the token before it, and the last, partial window on the max_length - (its length) + 1
// tokens before it, so every window but the first feeds max_length tokens
// (utils.get_rolling_token_windows + make_disjoint_window, context_len 1).  "whole" encoding
// starts documents with BOS instead of EOS.  Over the whole task (sums in document order):
//   token_perplexity = exp(-sum ll / tokens predicted)
//   char_perplexity  = exp(-sum ll / Unicode code points)
//   word_perplexity  = exp(-sum ll / words), words = len(re.split(r"\s+", doc)) per document
//   byte_perplexity  = exp(-sum ll / UTF-8 bytes)
//   bits_per_byte    = -sum ll / (UTF-8 bytes * ln 2)
// with no standard error (NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/jsquad_metric.h"
#include "eval/scorer.h"
#include "eval/task.h"

namespace hibari {

struct EvalOptions {
  std::string data_dir;
  size_t num_fewshot = 0;
  size_t limit = 0;    // evaluate the first this many documents of the shuffled order (0: all)
  uint64_t seed = 42;  // the harness's random.Random seed: document order and few-shot draws
  std::optional<RequestEncoding> encoding;           // overrides the task's (eval/task.h)
  std::string mecab_dictionary = kDefaultUnidicDir;  // JSQuAD's f1 tokenizer (eval/jsquad_metric.h)
  // Called after each scored chunk: (task, documents done, documents in all).
  std::function<void(const std::string&, size_t, size_t)> progress;
  // Called with one JSON object (one line, no newline) per document, in evaluation order:
  //   {"task", "doc_id" (position in the shuffled order), "line" (in the data file), "prompt",
  //    then multiple choice: "choices", "loglikelihoods", "prediction" (index), "gold" (index);
  //    generation: "prediction" (text), "gold" (answers); perplexity: "loglikelihood", "tokens",
  //    "words", "bytes", "chars"; and "metrics": {name: value} for the per-document metrics}
  std::function<void(const std::string&)> log_sample;
};

struct MetricResult {
  std::string metric;
  double value = 0;
  double stderr_of_mean = 0;  // NaN when not defined
};

struct TaskResult {
  std::string task;
  std::string language;
  std::string prompt_version;
  std::string model;
  size_t n = 0;  // documents scored
  size_t num_fewshot = 0;
  std::vector<MetricResult> metrics;  // in the task's metric order
};

// The context of `doc` (description, shots, the doc's own template) and, for few-shot examples,
// the target a shot ends with.
std::string fewshot_target(const TaskSpec& task, const EvalDoc& doc);
std::string build_context(const TaskSpec& task, const EvalDoc& doc,
                          const std::vector<const EvalDoc*>& shots);

// The perplexity windows of `tokens` (see above): the harness's get_rolling_token_windows(tokens,
// prefix, max_len, context_len = 1) after make_disjoint_window, as (context, predicted) pairs that
// predict every token once.
std::vector<LoglikelihoodRequest> harness_rolling_windows(const std::vector<int32_t>& tokens,
                                                          int32_t prefix, size_t max_len);

// A task's documents: those to score (after the few-shot pool is set aside, shuffled, --limit
// applied), the few-shot pool, and each document's shots (indices into pool), drawn in order.
// Reading them checks the data files (one-line errors naming file and line), so a command can
// read every task's data before it loads a model.
struct TaskDocs {
  std::vector<EvalDoc> docs;
  std::vector<EvalDoc> pool;
  std::vector<std::vector<size_t>> shots;  // shots[i]: document i's few-shot examples
};
TaskDocs load_task_docs(const TaskSpec& task, const EvalOptions& options);

TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const TaskDocs& docs,
                         const EvalOptions& options);
// load_task_docs, then the above.
TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const EvalOptions& options);

}  // namespace hibari
