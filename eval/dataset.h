// eval/dataset.h — the public benchmark files, read as distributed, into EvalDocs.
//
// Formats (TaskFormat) and the template fields each document offers:
//   jglue-jcommonsenseqa  JSON Lines {"q_id", "question", "choice0".."choice4", "label": 0-4}
//                         fields question, choice0..choice4; choices = the five; gold = label
//   jglue-jnli            JSON Lines {"sentence_pair_id", "sentence1", "sentence2",
//                         "label": "entailment"|"contradiction"|"neutral"} (or an int, as the
//                         Hugging Face copy stores it); fields sentence1, sentence2
//   jglue-marc-ja         JSON Lines {"sentence", "label": "positive"|"negative", "review_id"}
//                         fields sentence
//   jglue-jsquad          one JSON document {"data": [{"title", "paragraphs": [{"context",
//                         "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}
//                         with context = title + " [SEP] " + paragraph; fields title, context (the
//                         paragraph: the text after "[SEP]", trimmed, as the JP harness passes it),
//                         question, id; answers = every answer text
//   lm-eval-jsonl-mc      JSON Lines {"query" or "question", "choices": [...], "gold": int}
//                         fields query (also under "question"); choices, gold as given
//   text                  JSON Lines ({"text": ...}; files ending .jsonl / .json) or plain text
//                         with one document per non-empty line
// Labels of jnli / marc-ja map to choices through the task's "labels" list.  Any malformed line is
// a one-line Error "FILE:LINE: problem" (JSQuAD: "FILE: data[i].paragraphs[j].qas[k]: problem",
// or the parser's line and column).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "eval/task.h"

namespace hibari {

struct EvalDoc {
  size_t line = 0;                   // 1-based line (JSON Lines), or the item's index + 1
  DocFields fields;                  // what the template may use
  std::vector<std::string> choices;  // multiple choice: the continuations (before the delimiter)
  size_t gold = 0;                   // index of the right choice
  std::vector<std::string> answers;  // generation: the gold answers (the first is the few-shot
                                     // target)
  std::string text;                  // perplexity: the document
};

// Reads `path` in the task's format.  An empty file is an Error (a task with nothing to score).
std::vector<EvalDoc> load_eval_docs(const TaskSpec& task, const std::string& path);

// The file the task's pattern names inside `data_dir`: the path itself, or, when its file name
// holds '*', the first match in sorted order.  Error naming the pattern and directory when none.
std::string resolve_data_file(const std::string& data_dir, const std::string& pattern,
                              const std::string& task);

}  // namespace hibari
