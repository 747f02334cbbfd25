// `hibari train` with Megatron's blend_per_split: [data] train_prefixes, valid_prefixes and
// test_prefixes (Megatron's --train-data-path, --valid-data-path, --test-data-path), each split
// from datasets of its own, read whole.  A run logs valid_loss from the validation datasets at
// every eval_every and once more after training (as Megatron's pretrain does), then test_loss; bad
// run files end in one line naming the file and the keys.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;

const char* model_json = R"({"model_type": "llama", "vocab_size": 264, "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
  "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5})";

// PREFIX.bin/.idx: `documents` documents of `text`'s UTF-8 bytes as token ids, each a suffix of it.
void write_dataset(const fs::path& prefix, const std::string& text, int documents) {
  hibari::IndexedDatasetWriter writer(prefix.string(), hibari::TokenDtype::u16);
  for (int d = 0; d < documents; ++d) {
    std::vector<int32_t> ids;
    for (size_t i = size_t(d); i < text.size(); ++i) ids.push_back(int32_t(uint8_t(text[i])));
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
}

struct PerSplitRun {
  fs::path dir;
  explicit PerSplitRun(const std::string& name)
      : dir(fs::path(HIBARI_BINARY_DIR) / "test_tmp" / (name + "." + std::to_string(getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << model_json;
    write_dataset(dir / "train_text", "日本語と English のテキスト。 some text to train on.\n", 12);
    write_dataset(dir / "valid_a", "検証用の文章です。 validation text, a little longer.\n", 6);
    write_dataset(dir / "valid_b", "another validation set, in English only, for the blend.\n", 5);
    write_dataset(dir / "test_text", "テスト用の文章。 held-out test text for the last pass.\n", 6);
    write_dataset(dir / "short", "tiny", 1);
  }
  ~PerSplitRun() { fs::remove_all(dir); }
  hibari::test::CommandResult train(const std::string& data, const std::string& train_keys) {
    std::ofstream(dir / "run.toml")
        << "[model]\nconfig = \"config.json\"\n[data]\n"
        << data
        << "\n[train]\nseq_length = 16\nmicro_batch_size = 2\n"
           "global_batch_size = 2\npeak_flops = 1e9\n"
        << train_keys << "\n[run]\ndir = \"" << (dir / "run").string() << "\"\n";
    return hibari::test::run_hibari(dir, "train --config " + (dir / "run.toml").string());
  }
};

// The values of `key` in metrics.jsonl, in order.
std::vector<double> logged(const fs::path& metrics, const std::string& key) {
  std::ifstream in(metrics);
  std::vector<double> values;
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("\"" + key + "\": ");
    if (at != std::string::npos) values.push_back(std::stod(line.substr(at + key.size() + 4)));
  }
  return values;
}

const char* per_split_data = R"(train_prefixes = ["train_text"]
valid_prefixes = ["valid_a", "valid_b"]
valid_weights = [2, 1]
test_prefixes = ["test_text"])";

// 4 steps, eval_every 2, eval_iters 1: Megatron validates at steps 2 and 4 in its loop and once
// more after training (the third of its (4 / 2 + 1) x 1 x 2 = 6 validation samples), then tests.
TEST(TrainPerSplit, LogsValidationAndTestLossesFromTheirOwnDatasets) {
  PerSplitRun r("per_split");
  const hibari::test::CommandResult result =
      r.train(per_split_data, "steps = 4\neval_every = 2\neval_iters = 1");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("train_text (" + (r.dir / "train_text").string() + "): 12 documents"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("read whole"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("valid   valid_a ("), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("valid   valid_b ("), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("test    test_text ("), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("after training: valid "), std::string::npos) << result.out;

  const fs::path metrics = r.dir / "run" / "metrics.jsonl";
  EXPECT_EQ(logged(metrics, "loss").size(), 4u);
  const std::vector<double> valid = logged(metrics, "valid_loss");
  const std::vector<double> test = logged(metrics, "test_loss");
  ASSERT_EQ(valid.size(), 3u);  // step 2, step 4, after training
  ASSERT_EQ(test.size(), 1u);
  // A model of 264 tokens starts near ln 264 = 5.58 and has barely moved after 4 steps.
  for (double v : {valid[0], valid[1], valid[2], test[0]}) {
    EXPECT_GT(v, 4.5);
    EXPECT_LT(v, 6.5);
  }
  // Step 4's two validations read different batches of the validation stream.
  EXPECT_NE(valid[1], valid[2]);
  // The after-training row: step 4, valid_loss then test_loss, and no training loss.
  const std::string text = hibari::test::read_file(metrics);
  const size_t last = text.rfind("{\"step\": 4");
  ASSERT_NE(last, std::string::npos) << text;
  EXPECT_EQ(text.find("\"loss\": ", last), std::string::npos) << text;
  EXPECT_NE(text.find("\"test_loss\": ", last), std::string::npos) << text;
  EXPECT_EQ(text.find("null"), std::string::npos) << text;
}

// steps not a multiple of eval_every: validation at step 2 in the loop, and after training at step
// 3 (the second of (3 / 2 + 1) x 1 x 2 = 4 samples); no test data: no test_loss.
TEST(TrainPerSplit, WithoutTestDataThereIsNoTestPass) {
  PerSplitRun r("per_split_no_test");
  const hibari::test::CommandResult result =
      r.train("train_prefixes = [\"train_text\"]\nvalid_prefixes = [\"valid_a\"]",
              "steps = 3\neval_every = 2\neval_iters = 1");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path metrics = r.dir / "run" / "metrics.jsonl";
  EXPECT_EQ(logged(metrics, "valid_loss").size(), 2u);
  EXPECT_TRUE(logged(metrics, "test_loss").empty());
}

struct BadCase {
  const char* name;
  std::string data;        // the [data] section
  std::string train_keys;  // more [train] keys
  const char* blamed;      // the file the error names
  const char* phrase;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class PerSplitBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(PerSplitBadInput, OneLineErrorNamingTheFileAndKeys) {
  const BadCase& c = GetParam();
  PerSplitRun r(std::string("per_split_bad_") + c.name);
  const hibari::test::CommandResult result = r.train(c.data, "steps = 2\n" + c.train_keys);
  hibari::test::expect_one_line_error(result, (r.dir / c.blamed).string());
  hibari::test::expect_one_line_error(result, c.phrase);
}

const std::string eval = "eval_every = 1\neval_iters = 1";

const BadCase bad_cases[] = {
    {"with_prefixes", std::string(per_split_data) + "\nprefixes = [\"train_text\"]", eval,
     "run.toml",
     "[data].prefixes does not go with [data].train_prefixes, valid_prefixes and test_prefixes "
     "(Megatron's blend_per_split)"},
    {"with_split", std::string(per_split_data) + "\nsplit = \"90,10\"", eval, "run.toml",
     "[data].split does not go with [data].train_prefixes"},
    {"no_train", "valid_prefixes = [\"valid_a\"]", eval, "run.toml",
     "[data].train_prefixes needs at least one dataset"},
    {"no_eval_iters", per_split_data, "eval_every = 1", "run.toml",
     "[data].valid_prefixes and test_prefixes need [train].eval_iters > 0"},
    {"valid_weights_count",
     "train_prefixes = [\"train_text\"]\nvalid_prefixes = [\"valid_a\", \"valid_b\"]\n"
     "valid_weights = [1]",
     eval, "run.toml", "[data].valid_weights needs one weight per prefix of [data].valid_prefixes"},
    {"valid_two_unweighted",
     "train_prefixes = [\"train_text\"]\nvalid_prefixes = [\"valid_a\", \"valid_b\"]", eval,
     "run.toml", "[data].valid_weights needs one weight per prefix"},
    {"valid_weights_alone", "train_prefixes = [\"train_text\"]\nvalid_weights = [1]", eval,
     "run.toml", "[data].valid_weights needs [data].valid_prefixes"},
    {"test_weight_negative",
     "train_prefixes = [\"train_text\"]\ntest_prefixes = [\"test_text\"]\ntest_weights = [-1]",
     eval, "run.toml", "[data].test_weights must be positive"},
    {"train_weights_count",
     "train_prefixes = [\"train_text\", \"valid_a\"]\ntrain_weights = [1, 2, 3]", eval, "run.toml",
     "[data].train_weights needs one weight per prefix of [data].train_prefixes"},
    {"valid_prefixes_type", "train_prefixes = [\"train_text\"]\nvalid_prefixes = \"valid_a\"", eval,
     "run.toml", "[data].valid_prefixes must be an array of strings"},
    {"valid_absent", "train_prefixes = [\"train_text\"]\nvalid_prefixes = [\"absent\"]", eval,
     "absent", "absent"},
    {"valid_too_short", "train_prefixes = [\"train_text\"]\nvalid_prefixes = [\"short\"]", eval,
     "short.idx", "the validation dataset \"short\" (1 sequences) holds no sample"},
};

INSTANTIATE_TEST_SUITE_P(Cases, PerSplitBadInput, ::testing::ValuesIn(bad_cases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
