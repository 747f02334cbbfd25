// eval/dataset.cpp — loaders for JGLUE, lm-evaluation-harness JSON Lines and plain text.
#include "eval/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_fields.h"
#include "data/jsonl_reader.h"
#include "eval/python_text.h"

namespace hibari {

namespace {

using nlohmann::json;

[[noreturn]] void fail_line(const std::string& path, size_t line, const std::string& problem) {
  fail_file(path + ":" + std::to_string(line), problem);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open the data file");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string string_field(const json& j, const char* key, const std::string& path, size_t line) {
  auto it = j.find(key);
  if (it == j.end()) fail_line(path, line, std::string("no \"") + key + "\"");
  if (!it->is_string()) fail_line(path, line, std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

// The index of a label given as a name from `labels` or as an index into it.
size_t label_index(const json& j, const std::vector<std::string>& labels, const std::string& path,
                   size_t line) {
  auto it = j.find("label");
  if (it == j.end()) fail_line(path, line, "no \"label\"");
  if (it->is_number_integer()) {
    long long v = it->get<long long>();
    if (v < 0 || size_t(v) >= labels.size())
      fail_line(path, line,
                "label " + std::to_string(v) + " is not 0.." + std::to_string(labels.size() - 1));
    return size_t(v);
  }
  if (!it->is_string()) fail_line(path, line, "\"label\" is neither a name nor an index");
  std::string name = it->get<std::string>();
  auto found = std::find(labels.begin(), labels.end(), name);
  if (found == labels.end()) {
    std::string list;
    for (const std::string& l : labels) list += (list.empty() ? "" : ", ") + l;
    fail_line(path, line, "label \"" + name + "\" is not one of " + list);
  }
  return size_t(found - labels.begin());
}

EvalDoc jcommonsenseqa_doc(const json& j, const std::string& path, size_t line) {
  EvalDoc d;
  d.fields.emplace_back("question", string_field(j, "question", path, line));
  for (int i = 0; i < 5; ++i) {
    std::string key = "choice" + std::to_string(i);
    std::string choice = string_field(j, key.c_str(), path, line);
    d.fields.emplace_back(key, choice);
    d.choices.push_back(choice);
  }
  auto it = j.find("label");
  if (it == j.end()) fail_line(path, line, "no \"label\"");
  if (!it->is_number_integer() || it->get<long long>() < 0 || it->get<long long>() > 4)
    fail_line(path, line, "\"label\" is not an integer 0-4");
  d.gold = size_t(it->get<long long>());
  return d;
}

EvalDoc lm_eval_mc_doc(const json& j, const std::string& path, size_t line) {
  EvalDoc d;
  const char* key = j.contains("query") ? "query" : "question";
  if (!j.contains(key)) fail_line(path, line, "no \"query\" or \"question\"");
  std::string query = string_field(j, key, path, line);
  d.fields.emplace_back("query", query);
  d.fields.emplace_back("question", query);
  auto c = j.find("choices");
  if (c == j.end() || !c->is_array() || c->size() < 2)
    fail_line(path, line, "\"choices\" is not a list of at least two strings");
  for (const json& v : *c) {
    if (!v.is_string()) fail_line(path, line, "\"choices\" is not a list of strings");
    d.choices.push_back(v.get<std::string>());
  }
  auto g = j.find("gold");
  if (g == j.end()) fail_line(path, line, "no \"gold\"");
  if (!g->is_number_integer() || g->get<long long>() < 0 ||
      size_t(g->get<long long>()) >= d.choices.size())
    fail_line(path, line, "\"gold\" is not an index into \"choices\"");
  d.gold = size_t(g->get<long long>());
  return d;
}

EvalDoc json_line_doc(const TaskSpec& task, const json& j, const std::string& path, size_t line) {
  switch (task.format) {
    case TaskFormat::jglue_jcommonsenseqa:
      return jcommonsenseqa_doc(j, path, line);
    case TaskFormat::jglue_jnli: {
      EvalDoc d;
      d.fields.emplace_back("sentence1", string_field(j, "sentence1", path, line));
      d.fields.emplace_back("sentence2", string_field(j, "sentence2", path, line));
      d.choices = task.choices;
      d.gold = label_index(j, task.labels, path, line);
      return d;
    }
    case TaskFormat::jglue_marc_ja: {
      EvalDoc d;
      d.fields.emplace_back("sentence", string_field(j, "sentence", path, line));
      d.choices = task.choices;
      d.gold = label_index(j, task.labels, path, line);
      return d;
    }
    case TaskFormat::lm_eval_jsonl_mc:
      return lm_eval_mc_doc(j, path, line);
    case TaskFormat::text: {
      EvalDoc d;
      d.text = string_field(j, "text", path, line);
      d.fields.emplace_back("text", d.text);
      return d;
    }
    case TaskFormat::jglue_jsquad:
      break;
  }
  fail("json_line_doc: not a JSON Lines format");
}

std::vector<EvalDoc> load_json_lines(const TaskSpec& task, const std::string& path) {
  std::string all = read_all(path);
  std::vector<EvalDoc> docs;
  size_t line = 0, begin = 0;
  while (begin < all.size()) {
    size_t end = all.find('\n', begin);
    if (end == std::string::npos) end = all.size();
    std::string_view text(all.data() + begin, end - begin);
    ++line;
    begin = end + 1;
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {  // every kind: 1e309 is out_of_range
      fail_line(path, line, "invalid JSON (" + json_exception_text(e) + ")");
    }
    if (!j.is_object()) fail_line(path, line, "not a JSON object");
    EvalDoc d = json_line_doc(task, j, path, line);
    d.line = line;
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<EvalDoc> load_jsquad(const std::string& path) {
  json j;
  try {
    j = json::parse(read_all(path));
  } catch (const json::exception& e) {
    fail_file(path, "invalid JSON (" + json_exception_text(e) + ")");
  }
  auto where = [&](const std::string& at, const std::string& problem) -> void {
    fail_file(path, at + ": " + problem);
  };
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
    fail_file(path, "no \"data\" list (a JSQuAD file is SQuAD-layout JSON)");
  std::vector<EvalDoc> docs;
  const json& data = j["data"];
  for (size_t a = 0; a < data.size(); ++a) {
    const std::string at_a = "data[" + std::to_string(a) + "]";
    const json& article = data[a];
    if (!article.is_object()) where(at_a, "not an object");
    std::string title;
    if (article.contains("title")) {
      if (!article["title"].is_string()) where(at_a, "\"title\" is not a string");
      title = article["title"].get<std::string>();
    }
    if (!article.contains("paragraphs") || !article["paragraphs"].is_array())
      where(at_a, "no \"paragraphs\" list");
    const json& paragraphs = article["paragraphs"];
    for (size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string at_p = at_a + ".paragraphs[" + std::to_string(p) + "]";
      const json& para = paragraphs[p];
      if (!para.is_object() || !para.contains("context") || !para["context"].is_string())
        where(at_p, "no \"context\" string");
      std::string context = para["context"].get<std::string>();
      size_t sep = context.rfind("[SEP]");
      // context.split("[SEP]")[-1].strip() with Python's whitespace (U+3000 included).
      std::string paragraph =
          python_strip(sep == std::string::npos ? std::string_view(context)
                                                : std::string_view(context).substr(sep + 5));
      if (!para.contains("qas") || !para["qas"].is_array()) where(at_p, "no \"qas\" list");
      const json& qas = para["qas"];
      for (size_t q = 0; q < qas.size(); ++q) {
        const std::string at_q = at_p + ".qas[" + std::to_string(q) + "]";
        const json& qa = qas[q];
        if (!qa.is_object() || !qa.contains("question") || !qa["question"].is_string())
          where(at_q, "no \"question\" string");
        EvalDoc d;
        d.line = docs.size() + 1;
        std::string id;
        if (qa.contains("id") && qa["id"].is_string()) id = qa["id"].get<std::string>();
        d.fields = {{"title", title},
                    {"context", paragraph},
                    {"question", qa["question"].get<std::string>()},
                    {"id", id}};
        if (!qa.contains("answers") || !qa["answers"].is_array() || qa["answers"].empty())
          where(at_q, "no \"answers\" (JSQuAD has no unanswerable questions)");
        for (const json& ans : qa["answers"]) {
          if (!ans.is_object() || !ans.contains("text") || !ans["text"].is_string())
            where(at_q, "an answer without a \"text\" string");
          d.answers.push_back(ans["text"].get<std::string>());
        }
        docs.push_back(std::move(d));
      }
    }
  }
  return docs;
}

std::vector<EvalDoc> load_plain_text(const std::string& path) {
  std::string all = read_all(path);
  std::vector<EvalDoc> docs;
  size_t line = 0, begin = 0;
  while (begin < all.size()) {
    size_t end = all.find('\n', begin);
    if (end == std::string::npos) end = all.size();
    std::string text = all.substr(begin, end - begin);
    ++line;
    begin = end + 1;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    // Checked here so the error names this file and line, not the tokenizer that would refuse it.
    if (!is_valid_utf8(text)) fail_line(path, line, "not valid UTF-8");
    EvalDoc d;
    d.line = line;
    d.text = text;
    d.fields.emplace_back("text", text);
    docs.push_back(std::move(d));
  }
  return docs;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<EvalDoc> load_eval_docs(const TaskSpec& task, const std::string& path) {
  std::vector<EvalDoc> docs;
  if (task.format == TaskFormat::jglue_jsquad) {
    docs = load_jsquad(path);
  } else if (task.format == TaskFormat::text && !ends_with(path, ".jsonl") &&
             !ends_with(path, ".json")) {
    docs = load_plain_text(path);
  } else {
    docs = load_json_lines(task, path);
  }
  if (docs.empty()) fail_file(path, "no documents");
  return docs;
}

std::string resolve_data_file(const std::string& data_dir, const std::string& pattern,
                              const std::string& task) {
  namespace fs = std::filesystem;
  fs::path full = fs::path(data_dir) / pattern;
  std::string name = full.filename().string();
  size_t star = name.find('*');
  if (star == std::string::npos) {
    if (!fs::is_regular_file(full))
      fail(task + ": no data file " + full.string() + " (--data-dir " + data_dir + ")");
    return full.string();
  }
  const std::string prefix = name.substr(0, star), suffix = name.substr(star + 1);
  std::vector<std::string> matches;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(full.parent_path(), ec)) {
    std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.size() >= prefix.size() + suffix.size() && n.starts_with(prefix) &&
        ends_with(n, suffix))
      matches.push_back(e.path().string());
  }
  if (matches.empty())
    fail(task + ": no data file matches " + full.string() + " (--data-dir " + data_dir + ")");
  std::sort(matches.begin(), matches.end());
  return matches.front();
}

}  // namespace hibari
