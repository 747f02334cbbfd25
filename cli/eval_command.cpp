// cli/eval_command.cpp — `hibari eval`: score a model on Japanese and English tasks (eval/) and
// write the results as JSON and a Markdown table.  A progress line goes to stderr.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/threads.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "eval/task.h"

namespace hibari::cli {

namespace {

struct EvalArgs {
  std::string model, tokenizer, tasks, num_fewshot = "0", data_dir, output, markdown;
  std::string encoding, log_samples, mecab_dict = kDefaultUnidicDir;
  std::vector<std::string> task_dirs;
  size_t limit = 0, batch_size = 8, max_length = 0;
  uint64_t seed = 42;
  int threads = 0;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// "--num-fewshot 3" for every task, or "2,3,3,3" one per task (as the JP harness's scripts pass).
std::vector<size_t> parse_fewshot(const std::string& text, size_t tasks) {
  std::vector<size_t> out;
  for (const std::string& item : split_commas(text)) {
    size_t used = 0;
    unsigned long v = 0;
    try {
      v = std::stoul(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item[0] == '-')
      fail("--num-fewshot " + text + ": expected a count or one count per task");
    out.push_back(v);
  }
  if (out.size() == 1) out.assign(tasks, out[0]);
  if (out.size() != tasks)
    fail("--num-fewshot " + text + ": " + std::to_string(out.size()) + " counts for " +
         std::to_string(tasks) + " tasks");
  return out;
}

void write_file(const std::string& path, const std::string& text) { write_file_atomic(path, text); }

void run_eval(const EvalArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  const std::vector<std::string> names = split_commas(a.tasks);
  if (names.empty()) fail("--tasks: no task named");
  const std::vector<size_t> shots = parse_fewshot(a.num_fewshot, names.size());
  // Every task file is read and checked before the model loads: a typo fails in a second.
  std::vector<TaskSpec> specs;
  for (const std::string& name : names)
    specs.push_back(load_task_spec(find_task_file(name, a.task_dirs)));
  // So is every data file: errors stay one line, before any output.
  std::optional<RequestEncoding> encoding;
  if (a.encoding == "separate") encoding = RequestEncoding::separate;
  if (a.encoding == "whole") encoding = RequestEncoding::whole;
  std::string samples;  // --log-samples: JSON Lines, written once every task has run
  std::vector<EvalOptions> options(specs.size());
  std::vector<TaskDocs> docs;
  for (size_t i = 0; i < specs.size(); ++i) {
    options[i].data_dir = a.data_dir;
    options[i].num_fewshot = shots[i];
    options[i].limit = a.limit;
    options[i].seed = a.seed;
    options[i].encoding = encoding;
    options[i].mecab_dictionary = a.mecab_dict;
    if (!a.log_samples.empty())
      options[i].log_sample = [&samples](const std::string& line) { samples += line + "\n"; };
    docs.push_back(load_task_docs(specs[i], options[i]));
  }

  // JSQuAD's f1 needs the MeCab dictionary: a missing one fails now, not after the model loads.
  for (const TaskSpec& t : specs)
    if (std::find(t.metrics.begin(), t.metrics.end(), "f1") != t.metrics.end()) {
      MecabWakati probe(a.mecab_dict);
      break;
    }

  EvalModel model;
  load_eval_model(model, a.model, a.tokenizer, a.batch_size, a.max_length);
  std::fprintf(stderr, "hibari eval: %s (window %zu tokens, batch %zu, %d threads)\n",
               model.name.c_str(), model.max_length, model.batch_size, num_threads());

  std::vector<TaskResult> results;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    EvalOptions& o = options[i];
    o.progress = [&](const std::string& task, size_t done, size_t total) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r[%zu/%zu] %s: %zu/%zu documents, %.1f s", i + 1, specs.size(),
                   task.c_str(), done, total, s);
      std::fflush(stderr);
    };
    results.push_back(evaluate_task(model, specs[i], docs[i], o));
    std::fprintf(stderr, "\n");
    const TaskResult& r = results.back();
    for (const MetricResult& m : r.metrics)
      std::printf("%s %s %.4f (n %zu, %zu-shot)\n", r.task.c_str(), m.metric.c_str(), m.value, r.n,
                  r.num_fewshot);
  }
  ReportInfo info{.model = model.name, .seed = a.seed, .limit = a.limit};
  if (!a.log_samples.empty()) write_file(a.log_samples, samples);
  if (!a.output.empty()) write_file(a.output, results_json(results, info));
  const std::string md = results_markdown(results, info);
  if (!a.markdown.empty()) write_file(a.markdown, md);
  std::printf("\n%s", md.c_str());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  EvalArgs& a = *args;
  CLI::App* cmd = app.add_subcommand(
      "eval", "score a model on Japanese and English benchmarks (JGLUE, lm-eval-style tasks)");
  cmd->add_option("--model", a.model,
                  "Hugging Face model directory or hibari checkpoint (step directory or root)")
      ->required();
  cmd->add_option("--tokenizer", a.tokenizer,
                  "tokenizer.json / .model or a directory holding one (default: the model's)");
  cmd->add_option("--tasks", a.tasks,
                  "comma-separated task names, as the JP harness names them "
                  "(jcommonsenseqa-1.1-0.2.1,jnli-1.3-0.2,marc_ja-1.1-0.2,jsquad-1.1-0.2,...)")
      ->required();
  cmd->add_option("--num-fewshot", a.num_fewshot,
                  "few-shot examples: one count, or one per task (2,3,3,3)")
      ->capture_default_str();
  cmd->add_option("--data-dir", a.data_dir,
                  "directory holding the tasks' data files (JGLUE's datasets/ layout)")
      ->required();
  cmd->add_option("--task-dir", a.task_dirs,
                  "directory of task files NAME.json, searched before the built-in ones");
  cmd->add_option("--limit", a.limit,
                  "score the first this many documents of each task's shuffled order (0: all)")
      ->capture_default_str();
  cmd->add_option("--batch-size", a.batch_size, "sequences per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a.max_length,
                  "the window: tokens fed per sequence (0: max_position_embeddings)")
      ->capture_default_str();
  cmd->add_option("--seed", a.seed,
                  "seed of the document order and few-shot draws (the JP harness's is 42)")
      ->capture_default_str();
  cmd->add_option("--encoding", a.encoding,
                  "how requests become tokens, for every task: separate (the JP harness: context "
                  "and continuation encoded apart, no BOS) or whole (BOS + one encoding split "
                  "after the context; lm-evaluation-harness 0.4). Default: each task's own")
      ->check(CLI::IsMember({"separate", "whole"}));
  cmd->add_option("--log-samples", a.log_samples,
                  "write one JSON line per document here: prompt, log-likelihoods or generated "
                  "text, prediction, gold answer, metrics");
  cmd->add_option("--mecab-dict", a.mecab_dict,
                  "MeCab dictionary directory for JSQuAD's f1 (Debian's unidic-mecab)")
      ->capture_default_str();
  cmd->add_option("--output", a.output, "write the results as JSON here");
  cmd->add_option("--markdown", a.markdown, "write the Markdown table here");
  cmd->add_option("--threads", a.threads, "CPU threads (0: all)")->capture_default_str();
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace hibari::cli
