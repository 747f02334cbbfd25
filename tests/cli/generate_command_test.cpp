// `hibari generate` end to end: on the checkpoints of a tiny `hibari train` run (a step directory
// and the checkpoint root), and on the Hugging Face directory `hibari convert` makes of it: greedy
// output is the same from all three, the same whether a prompt runs alone or batched, and a seed
// repeats a sampled run; prompts files; one-line errors for a missing or invalid model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;
using hibari::test::CommandResult;
using hibari::test::expect_one_line_error;
using hibari::test::run_hibari;

const char* kModel = R"({"model_type": "llama", "vocab_size": 264, "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5})";

const char* kRun = R"([model]
config = "config.json"
[data]
prefixes = ["text"]
split = "80,20"
[train]
seq_length = 16
micro_batch_size = 2
global_batch_size = 2
steps = 3
[checkpoint]
every = 1
keep = 2
[run]
dir = "RUNDIR"
)";

// A byte-level BPE tokenizer.json without merges: token id = byte value (GPT-2's byte-to-unicode
// alphabet), plus one special token; ids fit the model's 264 rows.
void write_byte_tokenizer(const fs::path& path) {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  for (int b = 0, n = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < bs.size(); ++i) {
    const int c = cs[i];
    std::string utf8 = c < 0x80 ? std::string(1, char(c))
                                : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    vocab[utf8] = bs[i];
  }
  nlohmann::json byte_level = {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", true},
                               {"use_regex", true}};
  nlohmann::json j = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens",
                       {{{"id", 256},
                         {"content", "<|end|>"},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}}}},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", byte_level},
                      {"post_processor", nullptr},
                      {"decoder", byte_level},
                      {"model",
                       {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"vocab", vocab},
                        {"merges", nlohmann::json::array()}}}};
  std::ofstream(path) << j.dump();
}

void write_text_dataset(const fs::path& dir) {
  const std::string text = "日本語と English のテキスト。 some text to train on, long enough.\n";
  hibari::IndexedDatasetWriter writer((dir / "text").string(), hibari::TokenDtype::u16);
  for (int d = 0; d < 12; ++d) {
    std::vector<int32_t> ids;
    for (size_t i = size_t(d); i < text.size(); ++i) ids.push_back(int32_t(uint8_t(text[i])));
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// One tiny trained run for every test: its checkpoint root and newest step directory.
class GenerateCommand : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new hibari::test::ScratchDir("generate_command");
    const fs::path d = dir_->path;
    std::ofstream(d / "config.json") << kModel;
    write_text_dataset(d);
    std::ofstream(d / "run.toml") << replace(kRun, "RUNDIR", (d / "run").string());
    const CommandResult r = run_hibari(d, "train --config " + (d / "run.toml").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto& e : fs::recursive_directory_iterator(d / "run"))
      if (e.path().filename() == "manifest.json") {
        const fs::path step = e.path().parent_path();
        if (step_.empty() || step.filename() > fs::path(step_).filename()) step_ = step.string();
      }
    ASSERT_FALSE(step_.empty()) << "the run wrote no checkpoint";
    root_ = fs::path(step_).parent_path().string();
    // the tokenizer lives in the run directory, above the checkpoints
    write_byte_tokenizer(fs::path(root_).parent_path() / "tokenizer.json");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  CommandResult generate(const std::string& args) {
    return run_hibari(dir_->path, "generate " + args);
  }

  static hibari::test::ScratchDir* dir_;
  static std::string step_, root_;
};

hibari::test::ScratchDir* GenerateCommand::dir_ = nullptr;
std::string GenerateCommand::step_, GenerateCommand::root_;

TEST_F(GenerateCommand, GreedyFromStepRootAndHuggingFaceAgree) {
  const std::string args = " --prompt 'some text' --max-new-tokens 12";
  const CommandResult step = generate("--model " + step_ + args);
  ASSERT_EQ(step.exit_code, 0) << step.err;
  EXPECT_FALSE(step.out.empty());
  EXPECT_NE(step.err.find("prompt tokens, 12 generated tokens; prefill "), std::string::npos)
      << step.err;
  EXPECT_NE(step.err.find("decode "), std::string::npos) << step.err;
  const CommandResult root = generate("--model " + root_ + args);
  ASSERT_EQ(root.exit_code, 0) << root.err;
  EXPECT_EQ(root.out, step.out);

  // the Hugging Face directory made by hibari convert (bf16 would round: keep f32)
  const std::string hf = (dir_->path / "hf").string();
  fs::remove_all(hf);
  const CommandResult conv = run_hibari(dir_->path, "convert --from " + step_ + " --output " + hf);
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  const std::string tokenizer = (fs::path(root_).parent_path() / "tokenizer.json").string();
  const CommandResult from_hf = generate("--model " + hf + " --tokenizer " + tokenizer + args);
  ASSERT_EQ(from_hf.exit_code, 0) << from_hf.err;
  EXPECT_EQ(from_hf.out, step.out);

  // batched with other prompts (printed in order as each ends): prompt 1's text is unchanged
  const CommandResult batch =
      generate("--model " + step_ + args + " --prompt '日本語' --prompt 'x'");
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  const size_t one = batch.out.find("--- 1 ---\n"), two = batch.out.find("--- 2 ---\n"),
               three = batch.out.find("--- 3 ---\n");
  ASSERT_TRUE(one != std::string::npos && two != std::string::npos && three != std::string::npos)
      << batch.out;
  EXPECT_LT(one, two);
  EXPECT_LT(two, three);
  EXPECT_EQ(batch.out.substr(one + 10, two - one - 10), step.out);
}

TEST_F(GenerateCommand, SeedsRepeatAndPromptsFiles) {
  const std::string sampled =
      "--model " + step_ + " --max-new-tokens 16 --temperature 1.0 --top-p 0.9 --top-k 50";
  const CommandResult a = generate(sampled + " --seed 7 --prompt a");
  const CommandResult b = generate(sampled + " --seed 7 --prompt a");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const std::string file = (dir_->path / "prompts.jsonl").string();
  std::ofstream(file) << "{\"prompt\": \"a\"}\n{\"prompt\": \"日本\"}\n";
  const CommandResult f = generate(sampled + " --seed 7 --prompts-file " + file);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.out.find("--- 2 ---"), std::string::npos) << f.out;
  // --chat without a template: the plain default renders and runs
  const CommandResult chat =
      generate("--model " + step_ + " --chat --system hi --prompt a --max-new-tokens 8");
  EXPECT_EQ(chat.exit_code, 0) << chat.err;
}

TEST_F(GenerateCommand, OneLineErrors) {
  const std::string missing = (dir_->path / "nowhere").string();
  expect_one_line_error(generate("--model " + missing + " --prompt a"), missing);
  const fs::path empty = dir_->path / "empty";
  fs::create_directories(empty);
  expect_one_line_error(generate("--model " + empty.string() + " --prompt a"),
                        (empty / "config.json").string());
  const fs::path broken = dir_->path / "broken";
  fs::create_directories(broken);
  std::ofstream(broken / "config.json") << kModel;
  expect_one_line_error(generate("--model " + broken.string() + " --prompt a"), broken.string());
  expect_one_line_error(generate("--model " + step_ + " --prompt a --max-new-tokens 100"),
                        "max_position_embeddings");
  expect_one_line_error(generate("--model " + step_), "no prompt");
}

}  // namespace
