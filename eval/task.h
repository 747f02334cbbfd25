// eval/task.h — an evaluation task as a data file: one JSON object per task (eval/tasks/*.json
// ships with hibari; --task-dir adds more).  A task names its data file inside the user's data
// directory, the format that file is in, the prompt (instruction, per-example template, few-shot
// separator, target delimiter), the prompt version the numbers are reported under, and metrics.
//
//   {"name": "jnli", "language": "ja", "format": "jglue-jnli",
//    "data_file": "jnli-v1.3/valid-v1.3.json", "fewshot_file": "jnli-v1.3/train-v1.3.json",
//    "prompt_version": "jnli-1.3-0.2", "description": "前提と仮説の関係を...\n\n",
//    "template": "前提:{sentence1}\n仮説:{sentence2}\n関係:", "target_delimiter": "",
//    "fewshot_separator": "\n\n", "labels": ["entailment", "contradiction", "neutral"],
//    "choices": ["含意", "矛盾", "中立"], "fewshot_stratified": true,
//    "metrics": ["acc", "acc_norm", "balanced_acc", "mcc", "macro_f1"]}
//
// The prompt of one example (the lm-evaluation-harness layout, which the Japanese fork keeps):
//   description + shot_1 + fewshot_separator + ... + shot_k + fewshot_separator + template(doc)
// where shot_i = template(shot) + target_delimiter + target(shot).  A multiple-choice
// continuation is target_delimiter + choice.  `{field}` in the template is the document's field
// (eval/dataset.h lists them per format); `{{` and `}}` are literal braces.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace hibari {

enum class TaskFormat {
  jglue_jcommonsenseqa,  // "jglue-jcommonsenseqa": JSON Lines, question, choice0..4, label 0-4
  jglue_jnli,            // "jglue-jnli": JSON Lines, sentence1, sentence2, label (a label name)
  jglue_marc_ja,         // "jglue-marc-ja": JSON Lines, sentence, label positive/negative
  jglue_jsquad,          // "jglue-jsquad": one JSON document, data[].paragraphs[].qas[]
  lm_eval_jsonl_mc,      // "lm-eval-jsonl-mc": JSON Lines, query|question, choices[], gold
  text,                  // "text": plain text (a document per non-empty line) or JSON Lines "text"
};

// How a format is scored: log-likelihood of each choice, greedy generation, or perplexity.
enum class TaskMethod { multiple_choice, generation, perplexity };

// How a (context, continuation) pair becomes tokens.
//   separate  the JP LM Evaluation Harness's hf-causal model (and lm-evaluation-harness before
//             0.4): encode(context) and encode(continuation) apart, without special tokens (no
//             BOS; a SentencePiece-style continuation gets its own leading "\u2581"); an empty
//             context is [EOS].  Generation prompts and perplexity documents are encoded the
//             same way.  The default.
//   whole     BOS + encode(context + continuation) split after encode(context)'s length
//             (lm-evaluation-harness 0.4's _encode_pair); generation prompts start with BOS.
enum class RequestEncoding { separate, whole };

struct TaskSpec {
  std::string name;      // what --tasks selects
  std::string language;  // "ja" or "en": the Markdown table's averages group by it
  TaskFormat format = TaskFormat::text;
  std::string data_file;     // path inside --data-dir; '*' in the file name matches any text
  std::string fewshot_file;  // few-shot pool (train split); empty: the data file's first part
  size_t fewshot_pool = 0;   // without fewshot_file: the first this many documents are the pool
  std::string prompt_version;
  std::string description;           // once, before the few-shot examples
  std::string prompt_template;       // "template" in the file
  std::string fewshot_separator;     // after each few-shot example
  std::string target_delimiter;      // between a prompt and its answer
  std::vector<std::string> labels;   // label names in the data (jnli, marc-ja), by choice index
  std::vector<std::string> choices;  // continuations for those labels; empty: the document's own
  std::vector<std::string> metrics;  // the first is the one the summary table shows
  RequestEncoding encoding = RequestEncoding::separate;  // "encoding": "separate" | "whole"
  // Few-shot examples drawn per label in proportion to the pool (the harness's stratified draw,
  // which its JNLI task uses); "fewshot_stratified": true.
  bool fewshot_stratified = false;
  // Generation: at most this many new tokens; 0 (the default): as many as the longest gold
  // answer has (the harness's DYNAMIC_MAX_LENGTH, on by default there).
  size_t max_new_tokens = 0;
  // Generation stops when the last token of encode(stop[0]) is produced (the harness's
  // primary_until; EOS does not stop it) and the answer is cut before the first of these strings.
  // Default "\n".
  std::vector<std::string> stop;
  std::string source;  // the task file, for errors
};

TaskMethod task_method(TaskFormat format);
// "jglue-jnli" -> TaskFormat::jglue_jnli and back.  An unknown name is an Error listing the known.
TaskFormat parse_task_format(const std::string& name);
const char* task_format_name(TaskFormat format);
// The metrics a method can compute:
//   multiple choice  acc, acc_norm, balanced_acc, mcc, macro_f1
//   generation       exact_match, f1 (the JP harness's JSQuAD metric, 0-100), char_f1 (0-100)
//   perplexity       token_perplexity, char_perplexity, word_perplexity, byte_perplexity,
//                    bits_per_byte
// (eval/metrics.h defines each.)
std::vector<std::string> method_metrics(TaskMethod method);

// Reads and checks one task file: unknown keys, a missing field, a metric the method cannot give
// or labels without choices are one-line errors naming the file.
TaskSpec load_task_spec(const std::string& path);
// Parses a task from JSON text; `source` names it in errors.
TaskSpec parse_task_spec(const std::string& text, const std::string& source);

// The task file for `name`: DIR/NAME.json in each of `task_dirs` in order, then in the directory
// shipped with hibari (builtin_task_dir()).  Error listing where it looked when none has it, and
// the built-in tasks whose names start with `name` + "-" (the JP harness's versioned names:
// "jnli" alone means another prompt there, so hibari has no bare "jnli").
std::string find_task_file(const std::string& name, const std::vector<std::string>& task_dirs);
const char* builtin_task_dir();

// The template with every {field} replaced by fields[field]; an unknown field is an Error naming
// the task and field.  `{{` / `}}` give literal braces.
using DocFields = std::vector<std::pair<std::string, std::string>>;  // (name, value)
std::string render_template(const std::string& tmpl, const DocFields& fields,
                            const std::string& task);

}  // namespace hibari
