// tests/cli/eval_command_test.cpp — `hibari eval` end to end on the tiny random model and the
// sample data: the JSON result file, the Markdown table, the progress line, results that do not
// change with --batch-size, and one-line errors (data files are read before the model loads).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"
#include "tests/cli/run_hibari.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

const std::string kExamples = std::string(HIBARI_SOURCE_DIR) + "/examples/eval";

// The tiny model of tests/eval/tiny_model.h (same config, tokenizer, seed and std).
std::string write_model(const fs::path& dir) {
  const fs::path src = fs::path(kExamples) / "tiny_model";
  ModelConfig config = load_model_config((src / "config.json").string());
  ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params(layout.total);
  llama_init_parameters(params.data(), layout, 0.5, 7);
  save_hf_weights(layout, params.data(), config, dir.string(), {});
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(src / f, dir / f);
  return dir.string();
}

TEST(EvalCommand, WritesJsonAndMarkdownForEveryTask) {
  test::ScratchDir dir("eval_command");
  const std::string model = write_model(dir.path / "tiny");
  const std::string out = (dir.path / "results.json").string();
  const std::string md = (dir.path / "results.md").string();
  const std::string samples = (dir.path / "samples.jsonl").string();
  test::CommandResult r = test::run_hibari(
      dir.path, "eval --model " + model +
                    " --tasks jcommonsenseqa-1.1-0.2.1,jnli-1.3-0.2,marc_ja-1.1-0.2,jsquad-1.1-0.2,"
                    "arc_easy,ppl_ja --num-fewshot "
                    "2,3,1,1,2,0 --data-dir " +
                    kExamples + "/data --batch-size 3 --threads 2 " + "--output " + out +
                    " --markdown " + md + " --log-samples " + samples);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[6/6] ppl_ja: 3/3 documents"), std::string::npos) << r.err;

  std::ifstream in(out);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["results"].size(), 2u + 5 + 5 + 3 + 2 + 5);
  const nlohmann::json& first = j["results"][0];
  EXPECT_EQ(first["task"], "jcommonsenseqa-1.1-0.2.1");
  EXPECT_EQ(first["metric"], "acc");
  EXPECT_DOUBLE_EQ(first["value"].get<double>(), 0.4);  // as tests/eval SampleTaskScores
  EXPECT_NEAR(first["stderr"].get<double>(), std::sqrt(0.3 / 5), 1e-12);  // var 0.3 over 5
  EXPECT_EQ(first["n"], 5);
  EXPECT_EQ(first["num_fewshot"], 2);
  EXPECT_EQ(first["prompt_version"], "jcommonsenseqa-1.1-0.2.1");
  EXPECT_EQ(first["model"], "tiny");
  EXPECT_EQ(j["num_fewshot"]["jnli-1.3-0.2"], 3);
  EXPECT_TRUE(j["results"].back()["stderr"].is_null());  // perplexity: no stderr
  // Ja average of the first metrics (acc 0.4, 0, 0.6; exact_match 0 of 100), perplexity left out.
  EXPECT_NEAR(j["averages"]["ja"].get<double>(), (0.4 + 0.0 + 0.6 + 0.0) / 4, 1e-12);
  EXPECT_NEAR(j["averages"]["en"].get<double>(), 0.0, 1e-12);

  const std::string table = test::read_file(md);
  EXPECT_NE(table.find("| Model | jcommonsenseqa-1.1-0.2.1 (acc) | jnli-1.3-0.2 (acc) | "
                       "marc_ja-1.1-0.2 (acc) | jsquad-1.1-0.2 (exact_match) | ppl_ja "
                       "(char_perplexity) | Ja avg | arc_easy (acc) | En avg |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("| tiny | 0.4000 | 0.0000 | 0.6000 | 0.0000 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 0.2500 | 0.0000 | 0.0000 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| marc_ja-1.1-0.2 | ja | macro_f1 | 0.3750 |"), std::string::npos) << table;

  // --log-samples: one line per document of every task, in evaluation order.
  std::ifstream log(samples);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 5u + 4 + 5 + 3 + 4 + 3);
  EXPECT_EQ(lines[0]["task"], "jcommonsenseqa-1.1-0.2.1");
  EXPECT_EQ(lines[0]["loglikelihoods"].size(), 5u);
  EXPECT_EQ(lines[5]["task"], "jnli-1.3-0.2");
  EXPECT_EQ(lines[5]["choices"], (std::vector<std::string>{"含意", "矛盾", "中立"}));
  EXPECT_EQ(lines[14]["task"], "jsquad-1.1-0.2");
  EXPECT_TRUE(lines[14]["prediction"].is_string());
  EXPECT_TRUE(lines[14]["metrics"].contains("f1"));
  EXPECT_EQ(lines.back()["task"], "ppl_ja");
}

TEST(EvalCommand, ResultsDoNotDependOnBatchSize) {
  test::ScratchDir dir("eval_command_batch");
  const std::string model = write_model(dir.path / "tiny");
  nlohmann::json results[2];
  const char* batch[2] = {"1", "5"};
  for (int i = 0; i < 2; ++i) {
    const std::string out = (dir.path / ("results" + std::string(batch[i]) + ".json")).string();
    test::CommandResult r = test::run_hibari(
        dir.path, "eval --model " + model +
                      " --tasks jcommonsenseqa-1.1-0.2.1,jsquad-1.1-0.2,ppl_ja,ppl_en " +
                      "--num-fewshot 2,1,0,0 --data-dir " + kExamples + "/data --batch-size " +
                      batch[i] + " --threads 1 --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(out);
    results[i] = nlohmann::json::parse(in)["results"];
  }
  ASSERT_EQ(results[0].size(), 2u + 3 + 5 + 5);
  // Perplexities carry every bit of the summed log-likelihoods: equal, not close.
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0][5]["task"], "ppl_ja");
  EXPECT_NEAR(results[0][5]["value"].get<double>(), 875442.83212317468, 10);  // as SampleTaskScores
}

TEST(EvalCommand, ErrorsAreOneLine) {
  test::ScratchDir dir("eval_command_errors");
  const std::string model = write_model(dir.path / "tiny");
  test::expect_one_line_error(
      test::run_hibari(
          dir.path,
          "eval --model " + model + " --tasks jnli-1.3-0.2,nope --data-dir " + kExamples + "/data"),
      "no task \"nope\"");
  test::expect_one_line_error(
      test::run_hibari(dir.path, "eval --model " + model +
                                     " --tasks jnli-1.3-0.2,marc_ja-1.1-0.2 "
                                     "--num-fewshot "
                                     "1,2,3 --data-dir " +
                                     kExamples + "/data"),
      "--num-fewshot 1,2,3: 3 counts for 2 tasks");
  // A corrupt data file: the error names its file and line.
  fs::create_directories(dir.path / "data/jnli-v1.3");
  std::ofstream(dir.path / "data/jnli-v1.3/valid-v1.3.json")
      << R"({"sentence1": "a", "sentence2": "b", "label": "neutral"})"
         "\n{broken\n";
  test::expect_one_line_error(
      test::run_hibari(dir.path, "eval --model " + model + " --tasks jnli-1.3-0.2 --data-dir " +
                                     (dir.path / "data").string()),
      "data/jnli-v1.3/valid-v1.3.json:2: invalid JSON");
  // A missing MeCab dictionary (JSQuAD's f1) fails before the model loads, naming the directory.
  test::expect_one_line_error(
      test::run_hibari(dir.path, "eval --model " + model +
                                     " --tasks jsquad-1.1-0.2 --mecab-dict /nonexistent/unidic "
                                     "--data-dir " +
                                     kExamples + "/data"),
      "/nonexistent/unidic");
  // A bare JGLUE name: the JP harness means another prompt by it; the error names hibari's.
  test::expect_one_line_error(
      test::run_hibari(dir.path, "eval --model " + model + " --tasks jnli --data-dir " +
                                     (dir.path / "data").string()),
      "did you mean jnli-1.3-0.2?");
  // A good data file and no train file: 2-shot names the missing few-shot file's task.
  std::ofstream(dir.path / "data/jnli-v1.3/valid-v1.3.json")
      << R"({"sentence_pair_id": "0", "yjcaptions_id": "x", "sentence1": "a", "sentence2": "b", )"
         R"("label": "neutral"})"
         "\n";
  test::expect_one_line_error(
      test::run_hibari(dir.path, "eval --model " + model +
                                     " --tasks jnli-1.3-0.2 --num-fewshot 2 --data-dir " +
                                     (dir.path / "data").string()),
      "jnli-1.3-0.2: no data file");
}

}  // namespace
}  // namespace hibari
