// Sharded checkpoints end to end (issue 13 item 8), with parallel_train_test.cpp's tiny model and
// data: a parallel run's final parameters assembled from its shards equal one process's, and
// checkpoints move between one process (one file set) and four (shards) in both directions.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_checkpoint.h"
#include "data/indexed_dataset.h"
#include "parallel/rank_status.h"
#include "tests/cli/run_hibari.h"

namespace {

namespace fs = std::filesystem;

// 8 heads and 4 kv heads, 256 tokens, 4 layers: divisible by tp 4 and pp 4.
const char* model_json = R"({"model_type": "llama", "vocab_size": 256, "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 8,
  "num_key_value_heads": 4, "max_position_embeddings": 64, "rms_norm_eps": 1e-5})";

// global batch 8 = dp 4 x 2 sequences, or 2 to 4 micro-batches per rank at smaller dp.
const char* run_toml = R"([model]
config = "config.json"
[data]
prefixes = ["ja", "en"]
weights = [0.6, 0.4]
split = "90,10,0"
[train]
seq_length = 16
micro_batch_size = 2
global_batch_size = 8
steps = 10
eval_every = 5
eval_batches = 4
threads = 1
peak_flops = 1e9
[optimizer]
lr = 3e-3
min_lr = 3e-4
[schedule]
warmup_steps = 2
[checkpoint]
background = false
every = 5
keep = 0
)";

// UTF-8 bytes of some text as token ids, documents of varying length.
void write_dataset(const fs::path& prefix, const std::string& text) {
  hibari::IndexedDatasetWriter writer(prefix.string(), hibari::TokenDtype::u16);
  for (int d = 0; d < 40; ++d) {
    std::vector<int32_t> ids;
    for (size_t i = size_t(d) % 7; i < text.size(); ++i) ids.push_back(int32_t(uint8_t(text[i])));
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
}

// Each test its own folder (ctest runs them as separate processes, side by side), with its own
// one-process reference run.
fs::path suite_dir() {
  return fs::path(HIBARI_BINARY_DIR) / "test_tmp" / "sharded_checkpoint_cli" /
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// A run file for `name` with `parallel` lines in its [parallel] section.
fs::path write_run(const std::string& name, const std::string& parallel,
                   const std::string& extra = "") {
  fs::path file = suite_dir() / (name + ".toml");
  std::ofstream(file) << run_toml << extra << "[run]\ndir = \"" << (suite_dir() / name).string()
                      << "\"\n[parallel]\n"
                      << parallel;
  return file;
}

hibari::test::CommandResult train(const std::string& name, int np) {
  fs::path dir = suite_dir() / (name + ".out");
  fs::create_directories(dir);
  std::string args = "train --config " + (suite_dir() / (name + ".toml")).string();
  if (np == 1) return hibari::test::run_hibari(dir, args);
  std::string command = std::string(HIBARI_MPIRUN_COMMAND) + " -np " + std::to_string(np) + " " +
                        HIBARI_EXE + " " + args + " >" + (dir / "stdout.txt").string() + " 2>" +
                        (dir / "stderr.txt").string();
  int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, hibari::test::read_file(dir / "stdout.txt"),
          hibari::test::read_file(dir / "stderr.txt")};
}

std::vector<double> losses(const std::string& name) {
  std::ifstream in(suite_dir() / name / "metrics.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find("\"loss\": ");
    if (at != std::string::npos) out.push_back(std::stod(line.substr(at + 8)));
  }
  return out;
}

// The parameters of step 10: one file set (one process) or assembled from a parallel run's shards.
std::map<std::string, std::vector<float>> final_params(const std::string& name) {
  const fs::path step = suite_dir() / name / "ckpt" / "step_000010";
  std::map<std::string, std::vector<float>> out;
  if (hibari::checkpoint_manifest_version(step.string()) == hibari::kShardedCheckpointVersion) {
    hibari::ShardedCheckpoint c = hibari::sharded_open(step.string());
    for (const auto& [tensor, t] : c.tensors) {
      if (tensor.rfind("exp_avg", 0) == 0) continue;
      std::vector<float>& x = out[tensor];
      x.resize(size_t(t.rows * t.cols));
      hibari::sharded_read(c, tensor, hibari::whole_slice(t.shape), x.data());
    }
    return out;
  }
  hibari::SafeTensorsFile f = hibari::safetensors_read((step / "model.safetensors").string());
  for (const hibari::SafeTensorInfo& t : f.tensors) out[t.name] = f.read_f32(t.name);
  return out;
}

class ShardedCheckpointCli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(suite_dir());
    fs::create_directories(suite_dir());
    std::ofstream(suite_dir() / "config.json") << model_json;
    write_dataset(suite_dir() / "ja",
                  "日本語のテキストです。学習に使う文章を少し長めに書いておきます。\n");
    write_dataset(suite_dir() / "en", "Some English text to train on, long enough for samples.\n");
    write_run("one", "");
    hibari::test::CommandResult r = train("one", 1);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // Runs `name` on np processes and compares it with the one-process run.
  static void expect_same_as_one_process(const std::string& name, int np,
                                         const std::string& parallel, double loss_tolerance = 1e-5,
                                         double param_tolerance = 1e-5) {
    write_run(name, parallel);
    hibari::test::CommandResult r = train(name, np);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("layout  " + std::to_string(np) + " processes"), std::string::npos)
        << r.out;
    std::vector<double> want = losses("one"), got = losses(name);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], loss_tolerance * std::abs(want[i])) << "step " << i + 1;
    std::map<std::string, std::vector<float>> a = final_params("one"), b = final_params(name);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [tensor, x] : a) {
      const std::vector<float>& y = b.at(tensor);
      ASSERT_EQ(x.size(), y.size()) << tensor;
      double diff = 0, norm = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
        norm += double(x[i]) * x[i];
      }
      EXPECT_LE(std::sqrt(diff / norm), param_tolerance) << tensor;
    }
  }
};

TEST_F(ShardedCheckpointCli, Dp2Tp2Zero1FinalParametersFromShards) {
  expect_same_as_one_process("dp2_tp2_z1", 4, "tp = 2\nzero_stage = 1\n");
  EXPECT_TRUE(
      fs::exists(suite_dir() / "dp2_tp2_z1" / "ckpt" / "step_000010" / hibari::shard_file_name(3)));
}

TEST_F(ShardedCheckpointCli, Dp4Zero3FinalParametersFromShards) {
  expect_same_as_one_process("dp4_z3", 4, "zero_stage = 3\n");
}

// Old and new formats across process counts: a one-process checkpoint (one file set) resumes
// under dp 2 x tp 2, and a 4-rank sharded checkpoint resumes in one process.
TEST_F(ShardedCheckpointCli, CheckpointsMoveBetweenOneProcessAndFour) {
  for (const auto& [first, second] : {std::pair{1, 4}, std::pair{4, 1}}) {
    const std::string name = "formats" + std::to_string(first);
    write_run(name, first == 1 ? "" : "tp = 2\nzero_stage = 2\n");
    hibari::test::CommandResult r = train(name, first);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const fs::path ckpt = suite_dir() / name / "ckpt";
    EXPECT_EQ(fs::exists(ckpt / "step_000005" / "model.safetensors"), first == 1);
    EXPECT_EQ(fs::exists(ckpt / "step_000005" / hibari::shard_file_name(3)), first == 4);
    fs::remove_all(ckpt / "step_000010");
    std::ofstream(ckpt / "latest") << "step_000005\n";
    write_run(name, second == 1 ? "" : "tp = 2\nzero_stage = 1\n");
    r = train(name, second);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("step 5)"), std::string::npos) << r.out;
    std::vector<double> want = losses("one"), got = losses(name);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << name << " step " << i + 1;
  }
}

}  // namespace
