// eval/report.h — the result file (JSON) and the summary table (Markdown).
//
// JSON: {"model": M, "num_fewshot": {task: K}, "seed": S, "limit": N,
//        "results": [{"task", "language", "metric", "value", "stderr", "n", "num_fewshot",
//                     "prompt_version", "model"}, ...],          (stderr null where undefined)
//        "averages": {"ja": x, "en": y}}                         (null when a language has none)
// Markdown, laid out as the Swallow / PLaMo papers' tables: one row for the model, a column per
// task showing its first metric, then the Japanese and English averages; below it a detail table
// with every metric, its standard error, n, shots and prompt version.  Averages are over the
// tasks' first metrics on a 0-1 scale (JSQuAD's 0-100 exact_match / f1 / char_f1 divided by 100),
// perplexity tasks left out (lower is better, another scale).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/evaluate.h"

namespace hibari {

struct ReportInfo {
  std::string model;
  uint64_t seed = 0;
  size_t limit = 0;
};

// Mean of the tasks' first metrics for `language` (NaN when it has none).
double language_average(const std::vector<TaskResult>& results, const std::string& language);

std::string results_json(const std::vector<TaskResult>& results, const ReportInfo& info);
std::string results_markdown(const std::vector<TaskResult>& results, const ReportInfo& info);

}  // namespace hibari
