// eval/report.cpp — JSON and Markdown renderings of task results.
#include "eval/report.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace hibari {

namespace {

bool is_perplexity(const MetricResult& m) {
  return m.metric.ends_with("_perplexity") || m.metric == "bits_per_byte";
}

// JSQuAD's metrics are on the harness's 0-100 scale; averages take every metric as 0-1.
double unit_scale(const MetricResult& m) {
  const bool percent = m.metric == "exact_match" || m.metric == "f1" || m.metric == "char_f1";
  return percent ? m.value / 100 : m.value;
}

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string fixed4(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

}  // namespace

double language_average(const std::vector<TaskResult>& results, const std::string& language) {
  double sum = 0;
  size_t n = 0;
  for (const TaskResult& r : results) {
    if (r.language != language || r.metrics.empty() || is_perplexity(r.metrics[0])) continue;
    sum += unit_scale(r.metrics[0]);
    ++n;
  }
  return n == 0 ? NAN : sum / double(n);
}

std::string results_json(const std::vector<TaskResult>& results, const ReportInfo& info) {
  nlohmann::json j;
  j["model"] = info.model;
  j["seed"] = info.seed;
  j["limit"] = info.limit;
  j["num_fewshot"] = nlohmann::json::object();
  j["results"] = nlohmann::json::array();
  for (const TaskResult& r : results) {
    j["num_fewshot"][r.task] = r.num_fewshot;
    for (const MetricResult& m : r.metrics) {
      j["results"].push_back({{"task", r.task},
                              {"language", r.language},
                              {"metric", m.metric},
                              {"value", number_or_null(m.value)},
                              {"stderr", number_or_null(m.stderr_of_mean)},
                              {"n", r.n},
                              {"num_fewshot", r.num_fewshot},
                              {"prompt_version", r.prompt_version},
                              {"model", r.model}});
    }
  }
  j["averages"] = {{"ja", number_or_null(language_average(results, "ja"))},
                   {"en", number_or_null(language_average(results, "en"))}};
  return j.dump(2) + "\n";
}

std::string results_markdown(const std::vector<TaskResult>& results, const ReportInfo& info) {
  std::string head = "| Model |", rule = "|---|", row = "| " + info.model + " |";
  for (const char* language : {"ja", "en"}) {
    bool any = false;
    for (const TaskResult& r : results) {
      if (r.language != language || r.metrics.empty()) continue;
      any = true;
      head += " " + r.task + " (" + r.metrics[0].metric + ") |";
      rule += "---:|";
      row += " " + fixed4(r.metrics[0].value) + " |";
    }
    if (!any) continue;
    head += std::string(" ") + (std::string(language) == "ja" ? "Ja avg" : "En avg") + " |";
    rule += "---:|";
    row += " " + fixed4(language_average(results, language)) + " |";
  }
  std::string md = head + "\n" + rule + "\n" + row + "\n\n";
  md += "| Task | Lang | Metric | Value | ± Stderr | n | Shots | Prompt |\n";
  md += "|---|---|---|---:|---:|---:|---:|---|\n";
  for (const TaskResult& r : results) {
    for (const MetricResult& m : r.metrics) {
      md += "| " + r.task + " | " + r.language + " | " + m.metric + " | " + fixed4(m.value) +
            " | " + fixed4(m.stderr_of_mean) + " | " + std::to_string(r.n) + " | " +
            std::to_string(r.num_fewshot) + " | " + r.prompt_version + " |\n";
    }
  }
  return md;
}

}  // namespace hibari
