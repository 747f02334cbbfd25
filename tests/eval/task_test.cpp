// tests/eval/task_test.cpp — task files, the loaders on the sample data (examples/eval/data) and on
// corrupted copies, templates, few-shot draws and the exact prompt text.
#include "eval/task.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/dataset.h"
#include "eval/evaluate.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(HIBARI_SOURCE_DIR) + "/examples/eval/data";

TaskSpec builtin(const std::string& name) { return load_task_spec(find_task_file(name, {})); }

std::vector<EvalDoc> sample_docs(const std::string& name) {
  TaskSpec t = builtin(name);
  return load_eval_docs(t, resolve_data_file(kData, t.data_file, t.name));
}

using test::error_of;

TEST(EvalTask, EveryBuiltinTaskLoads) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(builtin_task_dir())) {
    TaskSpec t = load_task_spec(e.path().string());
    EXPECT_EQ(t.name + ".json", e.path().filename().string());
    EXPECT_FALSE(t.prompt_version.empty());
    EXPECT_FALSE(t.metrics.empty());
    ++n;
  }
  EXPECT_GE(n, 8u);
  TaskSpec jcqa = builtin("jcommonsenseqa-1.1-0.2.1");
  EXPECT_EQ(jcqa.format, TaskFormat::jglue_jcommonsenseqa);
  EXPECT_EQ(jcqa.target_delimiter, "");
  EXPECT_EQ(jcqa.fewshot_separator, "\n\n");
  EXPECT_EQ(jcqa.metrics, (std::vector<std::string>{"acc", "acc_norm"}));
  EXPECT_EQ(builtin("jsquad-1.1-0.2").stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(task_method(builtin("ppl_en").format), TaskMethod::perplexity);
  TaskSpec jnli = builtin("jnli-1.3-0.2");
  EXPECT_TRUE(jnli.fewshot_stratified);
  EXPECT_EQ(jnli.encoding, RequestEncoding::separate);
  EXPECT_EQ(jnli.metrics,
            (std::vector<std::string>{"acc", "acc_norm", "balanced_acc", "mcc", "macro_f1"}));
  EXPECT_EQ(builtin("jsquad-1.1-0.2").max_new_tokens, 0u);  // the longest gold answer
  // A bare name means another prompt version in the JP harness: hibari has none, and says which
  // versioned names it has.
  EXPECT_EQ(error_of([] { find_task_file("jsquad", {}); }),
            "no task \"jsquad\" (looked for jsquad.json in " + std::string(builtin_task_dir()) +
                "); did you mean jsquad-1.1-0.2 or jsquad-1.2-0.2?");
}

TEST(EvalTask, BadTaskFilesAreOneLineErrors) {
  const std::string base =
      R"("name": "t", "language": "ja", "data_file": "x.json", "prompt_version": "1")";
  EXPECT_EQ(error_of([&] {
              parse_task_spec(
                  "{" + base + R"(, "format": "jglue-jnli", "template": "{sentence1}"})", "t.json");
            }),
            "t.json: format jglue-jnli needs \"labels\" (the data's label names) and as many "
            "\"choices\"");
  EXPECT_EQ(error_of([&] {
              parse_task_spec("{" + base + R"(, "format": "text", "colour": 1})", "t.json");
            }),
            "t.json: unknown key \"colour\"");
  EXPECT_EQ(error_of([&] {
              parse_task_spec("{" + base + R"(, "format": "text", "metrics": ["acc"]})", "t.json");
            }),
            "t.json: metric \"acc\" is not one format text gives (token_perplexity, "
            "char_perplexity, word_perplexity, byte_perplexity, bits_per_byte)");
  EXPECT_EQ(error_of([&] {
              parse_task_spec("{" + base + R"(, "format": "text", "encoding": "bos"})", "t.json");
            }),
            "t.json: encoding is \"bos\"; expected \"separate\" or \"whole\"");
  EXPECT_EQ(error_of([&] {
              parse_task_spec("{" + base + R"(, "format": "text", "fewshot_stratified": 1})",
                              "t.json");
            }),
            "t.json: \"fewshot_stratified\" is not true or false");
  // The unknown format names the task file (issue 13), and every JSON error kind does too.
  EXPECT_TRUE(test::one_line_error(
      error_of([&] { parse_task_spec("{" + base + R"(, "format": "squad"})", "t.json"); }),
      "t.json", "unknown task format \"squad\""));
  EXPECT_TRUE(test::one_line_error(
      error_of([&] { parse_task_spec("{" + base + R"(, "max_new_tokens": 1e309})", "t.json"); }),
      "t.json", "invalid JSON: number overflow"));
  EXPECT_NE(error_of([] {
              find_task_file("no_such_task", {"/nonexistent"});
            }).find("no task \"no_such_task\" (looked for no_such_task.json in /nonexistent, "),
            std::string::npos);
}

TEST(EvalTask, TemplatesSubstituteFields) {
  DocFields f = {{"q", "なぜ"}, {"a", "x"}};
  EXPECT_EQ(render_template("質問:{q}\n{{a}}={a}", f, "t"), "質問:なぜ\n{a}=x");
  EXPECT_EQ(error_of([&] { render_template("{question}", f, "t"); }),
            "t: template field {question} is not in the document (it has q, a)");
  EXPECT_EQ(error_of([&] { render_template("{q", f, "t"); }),
            "t: template has a '{' without its '}'");
}

TEST(EvalTask, SampleFilesLoadInTheirFormats) {
  std::vector<EvalDoc> jcqa = sample_docs("jcommonsenseqa-1.1-0.2.1");
  ASSERT_EQ(jcqa.size(), 5u);
  EXPECT_EQ(jcqa[0].gold, 2u);
  EXPECT_EQ(jcqa[0].choices[2], "マザーボード");
  EXPECT_EQ(jcqa[4].gold, 4u);
  EXPECT_EQ(jcqa[4].line, 5u);

  std::vector<EvalDoc> jnli = sample_docs("jnli-1.3-0.2");
  ASSERT_EQ(jnli.size(), 4u);
  EXPECT_EQ(jnli[0].gold, 2u);  // neutral
  EXPECT_EQ(jnli[1].gold, 0u);  // entailment
  EXPECT_EQ(jnli[2].gold, 1u);  // contradiction
  EXPECT_EQ(jnli[0].choices, (std::vector<std::string>{"含意", "矛盾", "中立"}));

  std::vector<EvalDoc> marc = sample_docs("marc_ja-1.1-0.2");
  ASSERT_EQ(marc.size(), 5u);
  EXPECT_EQ(marc[0].gold, 0u);
  EXPECT_EQ(marc[4].gold, 1u);

  std::vector<EvalDoc> jsquad = sample_docs("jsquad-1.1-0.2");
  ASSERT_EQ(jsquad.size(), 3u);
  const DocFields& f = jsquad[0].fields;
  EXPECT_EQ(f[0], (std::pair<std::string, std::string>{"title", "ジェイ・キャスト"}));
  EXPECT_EQ(f[1].second,
            "株式会社ジェイ・キャスト（英語：J-CAST, "
            "Inc.）は、東京都にあるニュースサイトの運営会社である。");
  EXPECT_EQ(jsquad[0].answers,
            (std::vector<std::string>{"株式会社ジェイ・キャスト", "ジェイ・キャスト"}));
  EXPECT_EQ(jsquad[2].answers, std::vector<std::string>{"滋賀県"});

  std::vector<EvalDoc> arc = sample_docs("arc_easy");
  ASSERT_EQ(arc.size(), 4u);
  EXPECT_EQ(arc[1].fields[0].second,
            "What is the main gas that people breathe out?");  // "question"
  EXPECT_EQ(arc[1].gold, 2u);
  EXPECT_EQ(arc[3].choices.size(), 4u);

  std::vector<EvalDoc> ppl = sample_docs("ppl_ja");
  ASSERT_EQ(ppl.size(), 3u);  // the blank line is no document
  EXPECT_EQ(ppl[2].line, 4u);
}

// `text` in a scratch file, loaded as the format's built-in task: the error it gives.
std::string load_error(const test::ScratchDir& dir, const std::string& format,
                       const std::string& text) {
  const fs::path path = dir.path / (format + ".json");
  std::ofstream(path) << text;
  const std::string task = format == "jcommonsenseqa" ? "jcommonsenseqa-1.1-0.2.1"
                           : format == "jnli"         ? "jnli-1.3-0.2"
                           : format == "marc_ja"      ? "marc_ja-1.1-0.2"
                           : format == "jsquad"       ? "jsquad-1.1-0.2"
                                                      : format;
  return error_of([&] { load_eval_docs(builtin(task), path.string()); });
}

TEST(EvalTask, CorruptFilesNameFileAndLine) {
  test::ScratchDir dir("eval_corrupt");
  const std::string jcqa_line =
      R"({"q_id": 0, "question": "q", "choice0": "a", "choice1": "b", "choice2": "c", "choice3": "d", "choice4": "e", "label": 1})";
  auto path = [&](const std::string& task) { return (dir.path / (task + ".json")).string(); };
  struct Case {
    std::string task, text, where, phrase;
  };
  const std::vector<Case> cases = {
      {"jcommonsenseqa", jcqa_line + "\n{\"q_id\": 1, \"question\": \n", ":2", "invalid JSON"},
      {"jcommonsenseqa", jcqa_line + "\n\n[1, 2]\n", ":3", "not a JSON object"},
      {"jcommonsenseqa", R"({"question": "q", "choice0": "a", "label": 0})", ":1",
       "no \"choice1\""},
      {"jcommonsenseqa",
       jcqa_line + "\n" +
           R"({"question": "q", "choice0": "a", "choice1": "b", "choice2": "c", "choice3": "d", "choice4": "e", "label": 5})",
       ":2", "\"label\" is not an integer 0-4"},
      {"jnli",
       R"({"sentence1": "a", "sentence2": "b", "label": "entailment"})"
       "\n"
       R"({"sentence1": "a", "sentence2": "b", "label": "maybe"})",
       ":2", "label \"maybe\" is not one of entailment, contradiction, neutral"},
      {"jnli", R"({"sentence1": "a", "sentence2": 3, "label": 0})", ":1",
       "\"sentence2\" is not a string"},
      {"marc_ja", R"({"sentence": "良い", "review_id": "R1"})", ":1", "no \"label\""},
      {"arc_easy", R"({"query": "q", "choices": ["a", "b"], "gold": 2})", ":1",
       "\"gold\" is not an index into \"choices\""},
      {"arc_easy", R"({"query": "q", "choices": "a b", "gold": 0})", ":1",
       "\"choices\" is not a list of at least two strings"},
      {"jsquad",
       R"({"data": [{"title": "t", "paragraphs": [{"context": "t [SEP] c", "qas": [{"question": "q", "answers": [{"text": "c"}]}, {"answers": []}]}]}]})",
       "", "data[0].paragraphs[0].qas[1]: no \"question\" string"},
      {"jsquad",
       R"({"data": [{"title": "t", "paragraphs": [{"context": "t [SEP] c", "qas": [{"question": "q", "answers": []}]}]}]})",
       "", "data[0].paragraphs[0].qas[0]: no \"answers\""},
      {"jsquad", "{\"data\": [\n{\"title\": ", "", "invalid JSON"},
      {"jsquad", R"({"version": 1})", "", "no \"data\" list"},
      // nlohmann's out_of_range (a number past double) is an invalid line too (issue 13).
      {"jcommonsenseqa", jcqa_line + "\n{\"q_id\": 1e309}\n", ":2", "invalid JSON"},
      {"jsquad", R"({"version": 1e309})", "", "invalid JSON"},
  };
  for (const Case& c : cases) {
    const std::string msg = load_error(dir, c.task, c.text);
    EXPECT_TRUE(test::one_line_error(msg, path(c.task) + c.where, c.phrase)) << c.task;
  }
  EXPECT_TRUE(test::one_line_error(load_error(dir, "jnli", "\n\n"), path("jnli"), "no documents"));
  // Perplexity text that is not UTF-8: this file and line, not the tokenizer (issue 13).
  const std::string text_path = (dir.path / "ppl.txt").string();
  std::ofstream(text_path) << "fine\nbad \xff byte\n";
  EXPECT_TRUE(test::one_line_error(error_of([&] { load_eval_docs(builtin("ppl_ja"), text_path); }),
                                   text_path + ":2", "not valid UTF-8"));
}

TEST(EvalTask, MissingDataFileNamesTaskAndDirectory) {
  EXPECT_EQ(
      error_of([] { resolve_data_file("/nonexistent", "jnli-v1.3/valid-v1.3.json", "jnli"); }),
      "jnli: no data file /nonexistent/jnli-v1.3/valid-v1.3.json (--data-dir /nonexistent)");
  // '*' in the file name: the first match in sorted order.
  EXPECT_EQ(resolve_data_file(kData, "jcommonsenseqa-v1.3/*-v1.3.json", "t"),
            kData + "/jcommonsenseqa-v1.3/train-v1.3.json");
}

TEST(EvalTask, PromptTextIsTheHarnessLayout) {
  TaskSpec t = builtin("jnli-1.3-0.2");
  std::vector<EvalDoc> pool = load_eval_docs(t, kData + "/jnli-v1.3/train-v1.3.json");
  std::vector<EvalDoc> docs = sample_docs("jnli-1.3-0.2");
  const std::string ctx = build_context(t, docs[1], {&pool[0], &pool[1]});
  EXPECT_EQ(ctx,
            t.description +
                "前提:男性が公園でギターを弾いています。\n仮説:男性が楽器を演奏しています。\n関係:"
                "含意\n\n"
                "前提:猫がソファの上で寝ています。\n仮説:猫が外を走り回っています。\n関係:"
                "矛盾\n\n"
                "前提:女性が台所で料理をしています。\n仮説:女性が食事を作っています。\n関係:");
  TaskSpec q = builtin("jcommonsenseqa-1.1-0.2.1");
  std::vector<EvalDoc> jcqa = sample_docs("jcommonsenseqa-1.1-0.2.1");
  EXPECT_EQ(build_context(q, jcqa[1], {}),
            "与えられた選択肢の中から、最適な答えを選んでください。 \n\n"
            "質問：冬に体を温めるために着るものは？\n選択肢：\n- 水着\n- コート\n- サンダル\n- "
            "麦わら帽子\n- うちわ\n回答：");
  TaskSpec s = builtin("jsquad-1.1-0.2");
  std::vector<EvalDoc> sq = sample_docs("jsquad-1.1-0.2");
  EXPECT_EQ(fewshot_target(s, sq[0]), "株式会社ジェイ・キャスト");
}

}  // namespace
}  // namespace hibari
