// eval/task.cpp — task files: parsing, checking, finding by name, rendering templates.
#include "eval/task.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_fields.h"

#ifndef HIBARI_BUILTIN_TASK_DIR
#define HIBARI_BUILTIN_TASK_DIR "eval/tasks"
#endif

namespace hibari {

namespace {

struct FormatName {
  TaskFormat format;
  const char* name;
};
constexpr FormatName kFormats[] = {
    {TaskFormat::jglue_jcommonsenseqa, "jglue-jcommonsenseqa"},
    {TaskFormat::jglue_jnli, "jglue-jnli"},
    {TaskFormat::jglue_marc_ja, "jglue-marc-ja"},
    {TaskFormat::jglue_jsquad, "jglue-jsquad"},
    {TaskFormat::lm_eval_jsonl_mc, "lm-eval-jsonl-mc"},
    {TaskFormat::text, "text"},
};

std::string get_string(const nlohmann::json& j, const char* key, const std::string& source,
                       bool required, const std::string& fallback = "") {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) fail_file(source, std::string("no \"") + key + "\"");
    return fallback;
  }
  if (!it->is_string()) fail_file(source, std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

std::vector<std::string> get_strings(const nlohmann::json& j, const char* key,
                                     const std::string& source) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end()) return out;
  if (!it->is_array()) fail_file(source, std::string("\"") + key + "\" is not a list of strings");
  for (const auto& v : *it) {
    if (!v.is_string()) fail_file(source, std::string("\"") + key + "\" is not a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

TaskMethod task_method(TaskFormat format) {
  switch (format) {
    case TaskFormat::jglue_jsquad:
      return TaskMethod::generation;
    case TaskFormat::text:
      return TaskMethod::perplexity;
    default:
      return TaskMethod::multiple_choice;
  }
}

TaskFormat parse_task_format(const std::string& name) {
  std::string known;
  for (const FormatName& f : kFormats) {
    if (name == f.name) return f.format;
    known += std::string(known.empty() ? "" : ", ") + f.name;
  }
  fail("unknown task format \"" + name + "\" (known: " + known + ")");
}

const char* task_format_name(TaskFormat format) {
  for (const FormatName& f : kFormats)
    if (f.format == format) return f.name;
  return "?";
}

std::vector<std::string> method_metrics(TaskMethod method) {
  switch (method) {
    case TaskMethod::multiple_choice:
      return {"acc", "acc_norm", "balanced_acc", "mcc", "macro_f1"};
    case TaskMethod::generation:
      return {"exact_match", "f1", "char_f1"};
    case TaskMethod::perplexity:
      return {"token_perplexity", "char_perplexity", "word_perplexity", "byte_perplexity",
              "bits_per_byte"};
  }
  return {};
}

TaskSpec parse_task_spec(const std::string& text, const std::string& source) {
  const nlohmann::json j = parse_json_file(text, source, "invalid JSON");
  if (!j.is_object()) fail_file(source, "a task file is one JSON object");
  static const std::set<std::string> known = {"name",
                                              "language",
                                              "format",
                                              "data_file",
                                              "fewshot_file",
                                              "fewshot_pool",
                                              "prompt_version",
                                              "description",
                                              "template",
                                              "fewshot_separator",
                                              "target_delimiter",
                                              "labels",
                                              "choices",
                                              "metrics",
                                              "max_new_tokens",
                                              "stop",
                                              "encoding",
                                              "fewshot_stratified",
                                              "comment"};
  for (const auto& [key, value] : j.items())
    if (!known.contains(key)) fail_file(source, "unknown key \"" + key + "\"");

  TaskSpec t;
  t.source = source;
  t.name = get_string(j, "name", source, true);
  t.language = get_string(j, "language", source, true);
  if (t.language != "ja" && t.language != "en")
    fail_file(source, "language is \"" + t.language + "\"; expected \"ja\" or \"en\"");
  try {
    t.format = parse_task_format(get_string(j, "format", source, true));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(source + ": ")) throw;
    fail_file(source, e.what());  // an unknown format: name the task file
  }
  t.data_file = get_string(j, "data_file", source, true);
  t.fewshot_file = get_string(j, "fewshot_file", source, false);
  t.prompt_version = get_string(j, "prompt_version", source, true);
  t.description = get_string(j, "description", source, false);
  const TaskMethod method = task_method(t.format);
  t.prompt_template = get_string(j, "template", source, method != TaskMethod::perplexity);
  t.fewshot_separator = get_string(j, "fewshot_separator", source, false, "\n\n");
  t.target_delimiter = get_string(j, "target_delimiter", source, false, " ");
  t.labels = get_strings(j, "labels", source);
  t.choices = get_strings(j, "choices", source);
  t.metrics = get_strings(j, "metrics", source);
  t.stop = get_strings(j, "stop", source);
  if (!j.contains("stop")) t.stop = {"\n"};
  for (const char* key : {"fewshot_pool", "max_new_tokens"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number_unsigned())
      fail_file(source, std::string("\"") + key + "\" is not a non-negative integer");
  }
  t.fewshot_pool = j.value("fewshot_pool", size_t{0});
  t.max_new_tokens = j.value("max_new_tokens", size_t{0});
  const std::string encoding = get_string(j, "encoding", source, false, "separate");
  if (encoding == "whole")
    t.encoding = RequestEncoding::whole;
  else if (encoding != "separate")
    fail_file(source, "encoding is \"" + encoding + "\"; expected \"separate\" or \"whole\"");
  if (j.contains("fewshot_stratified")) {
    if (!j["fewshot_stratified"].is_boolean())
      fail_file(source, "\"fewshot_stratified\" is not true or false");
    t.fewshot_stratified = j["fewshot_stratified"].get<bool>();
  }

  const std::vector<std::string> allowed = method_metrics(method);
  if (t.metrics.empty()) t.metrics = allowed;
  for (const std::string& m : t.metrics) {
    if (std::find(allowed.begin(), allowed.end(), m) == allowed.end()) {
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail_file(source, "metric \"" + m + "\" is not one format " + task_format_name(t.format) +
                            " gives (" + list + ")");
    }
  }
  const bool labelled = t.format == TaskFormat::jglue_jnli || t.format == TaskFormat::jglue_marc_ja;
  if (labelled && (t.labels.empty() || t.labels.size() != t.choices.size()))
    fail_file(source, std::string("format ") + task_format_name(t.format) +
                          " needs \"labels\" (the data's label names) and as many \"choices\"");
  if (!labelled && !t.labels.empty())
    fail_file(source, std::string("format ") + task_format_name(t.format) + " takes no \"labels\"");
  if (t.fewshot_stratified && method != TaskMethod::multiple_choice)
    fail_file(source, "fewshot_stratified needs a multiple-choice format (it draws by label)");
  return t;
}

TaskSpec load_task_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open the task file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_task_spec(text.str(), path);
}

const char* builtin_task_dir() { return HIBARI_BUILTIN_TASK_DIR; }

std::string find_task_file(const std::string& name, const std::vector<std::string>& task_dirs) {
  namespace fs = std::filesystem;
  std::vector<std::string> dirs = task_dirs;
  dirs.push_back(builtin_task_dir());
  std::string looked;
  for (const std::string& dir : dirs) {
    fs::path p = fs::path(dir) / (name + ".json");
    if (fs::is_regular_file(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + dir;
  }
  std::vector<std::string> versioned;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(builtin_task_dir(), ec)) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() == ".json" && stem.rfind(name + "-", 0) == 0)
      versioned.push_back(stem);
  }
  std::sort(versioned.begin(), versioned.end());
  std::string hint;
  for (const std::string& v : versioned) hint += (hint.empty() ? "; did you mean " : " or ") + v;
  fail("no task \"" + name + "\" (looked for " + name + ".json in " + looked + ")" + hint +
       (hint.empty() ? "" : "?"));
}

std::string render_template(const std::string& tmpl, const DocFields& fields,
                            const std::string& task) {
  std::string out;
  out.reserve(tmpl.size() * 2);
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out += c;  // "{{" or "}}"
      ++i;
      continue;
    }
    if (c == '}') fail(task + ": template has a '}' without its '{'");
    if (c != '{') {
      out += c;
      continue;
    }
    size_t end = tmpl.find('}', i);
    if (end == std::string::npos) fail(task + ": template has a '{' without its '}'");
    std::string field = tmpl.substr(i + 1, end - i - 1);
    auto it =
        std::find_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == field; });
    if (it == fields.end()) {
      std::string list;
      for (const auto& f : fields) list += (list.empty() ? "" : ", ") + f.first;
      fail(task + ": template field {" + field + "} is not in the document (it has " + list + ")");
    }
    out += it->second;
    i = end;
  }
  return out;
}

}  // namespace hibari
