// eval/evaluate.h — one task over one model: load the documents, draw the few-shot examples, build
// the prompts, score, aggregate.
//
// Few-shot examples come from the task's fewshot_file (the train split) when it names one, else
// from the data file's first fewshot_pool documents, which are then never evaluated (whatever K,
// so n does not change with K).  Document i's K examples are drawn without replacement by a
// partial Fisher-Yates shuffle fed by the counter-based RNG (seed, stream 0, i * pool + j): they
// depend on the seed and i only, not on --limit or the order tasks run in.
//
// Perplexity: each document is [BOS] + encode(text); its tokens after the first are predicted in
// disjoint windows of max_length tokens, each window conditioned on the token before it
// (lm-evaluation-harness's rolling windows with context length 1).  Reported as
//   token_perplexity = exp(-sum log p / tokens predicted)
//   char_perplexity  = exp(-sum log p / characters)       (Unicode code points of the texts)
//   bits_per_byte    = -sum log p / (UTF-8 bytes * ln 2)
// over the whole task (corpus-level); their standard error is not computed (NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/scorer.h"
#include "eval/task.h"

namespace hibari {

struct EvalOptions {
  std::string data_dir;
  size_t num_fewshot = 0;
  size_t limit = 0;  // evaluate at most this many documents (0: all)
  uint64_t seed = 1234;
  // Called after each scored chunk: (task, documents done, documents in all).
  std::function<void(const std::string&, size_t, size_t)> progress;
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

// Indices into a pool of `pool` items of document `doc_index`'s k few-shot examples.
std::vector<size_t> draw_fewshot(size_t pool, size_t k, uint64_t seed, size_t doc_index);

// The context of `doc` (description, shots, the doc's own template) and, for few-shot examples,
// the target a shot ends with.
std::string fewshot_target(const TaskSpec& task, const EvalDoc& doc);
std::string build_context(const TaskSpec& task, const EvalDoc& doc,
                          const std::vector<const EvalDoc*>& shots);

// A task's documents: those to score (after the few-shot pool is set aside and --limit applied)
// and the few-shot pool.  Reading them checks the data files (one-line errors naming file and
// line), so a command can read every task's data before it loads a model.
struct TaskDocs {
  std::vector<EvalDoc> docs;
  std::vector<EvalDoc> pool;
};
TaskDocs load_task_docs(const TaskSpec& task, const EvalOptions& options);

TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const TaskDocs& docs,
                         const EvalOptions& options);
// load_task_docs, then the above.
TaskResult evaluate_task(EvalModel& model, const TaskSpec& task, const EvalOptions& options);

}  // namespace hibari
