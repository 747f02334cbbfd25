// `hibari tokenizer train`, and `hibari tokenizer encode|decode` / `hibari data tokenize` with the
// SentencePiece tokenizers it writes, run as a user runs them: the directory's files, the ids
// against SentencePieceTokenizer, the dataset's documents, one-line errors and no partial output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/sentencepiece_tokenizer.h"
#include "tests/cli/run_hibari.h"
#include "tests/scratch_dir.h"

namespace {

namespace fs = std::filesystem;
using hibari::test::CommandResult;
using hibari::test::expect_one_line_error;
using hibari::test::ScratchDir;

// Runs `hibari ARGS` with its output files in dir.
CommandResult run_hibari(const ScratchDir& dir, const std::string& args,
                         const fs::path& stdin_file = {}) {
  return hibari::test::run_hibari(dir.path, args, stdin_file);
}

// The demo corpus, as `make demo` trains its tokenizer on it.
const std::string demo_ja = std::string(HIBARI_SOURCE_DIR) + "/examples/demo/ja.jsonl";
const std::string demo_en = std::string(HIBARI_SOURCE_DIR) + "/examples/demo/en.jsonl";

std::string train_args(const ScratchDir& dir, const std::string& type, const std::string& out) {
  return "tokenizer train --input " + demo_ja + " --input " + demo_en + " --model-type " + type +
         " --vocab-size 2000 --threads 2 --output " + dir.file(out);
}

const std::vector<std::string> texts = {
    "吾輩は猫である。名前はまだ無い。",
    "The kernel presents these technologies from the point of view of 2024 systems.",
    "日本語と English が混ざった文章 with numbers 12345 and 絵文字 😀",
    "  leading spaces, a <s> and a </s> in the text",
};

void write_texts(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  for (const std::string& t : texts) out << nlohmann::json{{"text", t}}.dump() << "\n";
}

std::vector<std::vector<int32_t>> ids_of(const std::string& out) {
  std::vector<std::vector<int32_t>> ids;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    ids.push_back(nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>());
  }
  return ids;
}

TEST(TokenizerCommand, TrainBpeWritesATransformersDirectory) {
  ScratchDir dir("tokenizer_command");
  CommandResult r =
      run_hibari(dir, train_args(dir, "bpe", "tok") + " --user-defined-symbols '<|a|>,<|b|>'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("trained a bpe tokenizer of 2000 pieces from "), std::string::npos) << r.err;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path / "tok"))
    files.push_back(e.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"special_tokens_map.json", "tokenizer.json",
                                             "tokenizer.model", "tokenizer_config.json"}));
  for (const auto& e : fs::directory_iterator(dir.path)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
  auto config =
      nlohmann::json::parse(hibari::test::read_file(dir.path / "tok/tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(config["add_bos_token"], true);
  EXPECT_EQ(config["added_tokens_decoder"]["3"]["content"], "<|a|>");
  EXPECT_EQ(config["added_tokens_decoder"]["3"]["special"], false);
  auto json = nlohmann::json::parse(hibari::test::read_file(dir.path / "tok/tokenizer.json"));
  EXPECT_EQ(json["model"]["type"], "BPE");
  EXPECT_EQ(json["model"]["byte_fallback"], true);
  EXPECT_EQ(json["model"]["vocab"].size(), 2000u);

  // Encoding through the directory (its tokenizer.json) gives the .model's ids.
  hibari::SentencePieceTokenizer sp(dir.file("tok/tokenizer.model"));
  write_texts(dir.file("texts.jsonl"));
  CommandResult enc = run_hibari(
      dir, "tokenizer encode --special-tokens-in-text ignore --tokenizer " + dir.file("tok"),
      dir.file("texts.jsonl"));
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  std::vector<std::vector<int32_t>> ids = ids_of(enc.out);
  ASSERT_EQ(ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(ids[i], sp.encode(texts[i], false)) << i;

  // Training again replaces the directory.
  CommandResult again = run_hibari(dir, train_args(dir, "bpe", "tok"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  config = nlohmann::json::parse(hibari::test::read_file(dir.path / "tok/tokenizer_config.json"));
  EXPECT_FALSE(config["added_tokens_decoder"].contains("3"));
}

TEST(TokenizerCommand, SentencePieceModelWorksForEncodeDecodeAndDataTokenize) {
  ScratchDir dir("tokenizer_command");
  CommandResult r = run_hibari(dir, train_args(dir, "unigram", "uni"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir.path / "uni/tokenizer.json"));  // unigram: the .model only
  hibari::SentencePieceTokenizer sp(dir.file("uni/tokenizer.model"));
  write_texts(dir.file("texts.jsonl"));

  for (const std::string& tok : {dir.file("uni"), dir.file("uni/tokenizer.model")}) {
    CommandResult enc = run_hibari(dir, "tokenizer encode --add-special-tokens --tokenizer " + tok,
                                   dir.file("texts.jsonl"));
    ASSERT_EQ(enc.exit_code, 0) << enc.err;
    std::vector<std::vector<int32_t>> ids = ids_of(enc.out);
    ASSERT_EQ(ids.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(ids[i], sp.encode(texts[i], true)) << i;
    hibari::test::write_file(dir.file("ids.jsonl"), enc.out);
    CommandResult dec = run_hibari(dir, "tokenizer decode --skip-special-tokens --tokenizer " + tok,
                                   dir.file("ids.jsonl"));
    ASSERT_EQ(dec.exit_code, 0) << dec.err;
    std::istringstream lines(dec.out);
    size_t n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
      ASSERT_LT(n, texts.size());
      EXPECT_EQ(nlohmann::json::parse(line).at("text"), texts[n]);
    }
    EXPECT_EQ(n, texts.size());
  }

  // data tokenize: the model adds BOS, so BOS + ids + EOS per document, and no warning.
  CommandResult data =
      run_hibari(dir, "data tokenize --input " + dir.file("texts.jsonl") + " --tokenizer " +
                          dir.file("uni") + " --output-prefix " + dir.file("ds") + " --workers 2");
  ASSERT_EQ(data.exit_code, 0) << data.err;
  EXPECT_EQ(data.err.find("WARNING"), std::string::npos) << data.err;
  hibari::IndexedDataset ds = hibari::IndexedDataset::open(dir.file("ds"));
  EXPECT_EQ(ds.dtype(), hibari::TokenDtype::u16);
  ASSERT_EQ(ds.document_count(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = sp.encode(texts[i], true);
    want.push_back(sp.eos_id());
    EXPECT_EQ(ds.sequence(i), want) << i;
  }
}

TEST(TokenizerCommand, BadInputIsOneLineAndLeavesNoDirectory) {
  ScratchDir dir("tokenizer_command");
  CommandResult missing =
      run_hibari(dir, "tokenizer train --input " + dir.file("absent.jsonl") +
                          " --model-type bpe --vocab-size 300 --output " + dir.file("tok"));
  expect_one_line_error(missing, dir.file("absent.jsonl") + ": cannot open");
  EXPECT_FALSE(fs::exists(dir.path / "tok"));

  hibari::test::write_file(dir.file("bad.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \"broken\n");
  CommandResult bad =
      run_hibari(dir, "tokenizer train --input " + dir.file("bad.jsonl") +
                          " --model-type bpe --vocab-size 300 --output " + dir.file("tok"));
  expect_one_line_error(bad, dir.file("bad.jsonl") + ":2: invalid JSON");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"bad.jsonl", "stderr.txt", "stdout.txt"}));

  // Too small a vocabulary for the characters: the library's complaint, naming the directory.
  CommandResult small =
      run_hibari(dir, "tokenizer train --input " + demo_ja +
                          " --model-type bpe --vocab-size 50 --output " + dir.file("tok"));
  expect_one_line_error(small, dir.file("tok") + ": training failed");
  EXPECT_FALSE(fs::exists(dir.path / "tok"));

  // A file that is no tokenizer, given as one.
  hibari::test::write_file(dir.file("notes.txt"), "hello\n");
  CommandResult foreign =
      run_hibari(dir, "tokenizer encode --tokenizer " + dir.file("notes.txt"), demo_ja);
  expect_one_line_error(foreign, dir.file("notes.txt") + ": not a tokenizer");
  CommandResult empty_dir =
      run_hibari(dir, "data tokenize --input " + demo_ja + " --tokenizer " + dir.path.string() +
                          " --output-prefix " + dir.file("ds"));
  expect_one_line_error(empty_dir, dir.path.string() + ": a directory holding neither");
  EXPECT_FALSE(fs::exists(dir.path / "ds.bin"));
}

}  // namespace
