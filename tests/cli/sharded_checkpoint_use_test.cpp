// A parallel run's sharded checkpoints (version 2) used by `hibari generate` and `hibari convert`:
// `mpirun -np 2 hibari train` (ZeRO-1, so tensors are cut into flat ranges over two shard files),
// then greedy generate on the checkpoint root equals generate on the Hugging Face directory
// convert makes of it, whose tensors equal the shards' exactly; the tokenizer is carried over.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_checkpoint.h"
#include "data/indexed_dataset.h"
#include "tests/cli/byte_level_fixtures.h"
#include "tests/cli/run_hibari.h"
#include "tests/scratch_dir.h"

namespace {

namespace fs = std::filesystem;
using hibari::test::CommandResult;
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
micro_batch_size = 1
global_batch_size = 2
steps = 4
threads = 1
[checkpoint]
background = false
every = 2
keep = 0
[parallel]
zero_stage = 1
)";

TEST(ShardedCheckpointUse, GenerateAndConvertReadAParallelRunsCheckpoint) {
  hibari::test::ScratchDir dir("sharded_checkpoint_use");
  const fs::path d = dir.path;
  std::ofstream(d / "config.json") << kModel;
  write_text_dataset(d);
  std::ofstream(d / "run.toml") << kRun << "[run]\ndir = \"" << (d / "run").string() << "\"\n";
  const std::string command = std::string(HIBARI_MPIRUN_COMMAND) + " -np 2 " + HIBARI_EXE +
                              " train --config " + (d / "run.toml").string() + " >" +
                              (d / "train.out").string() + " 2>" + (d / "train.err").string();
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << hibari::test::read_file(d / "train.err");

  // The newest step, sharded.
  std::string step;
  for (const auto& e : fs::recursive_directory_iterator(d / "run"))
    if (e.path().filename() == "manifest.json") {
      const fs::path s = e.path().parent_path();
      if (step.empty() || s.filename() > fs::path(step).filename()) step = s.string();
    }
  ASSERT_FALSE(step.empty()) << "the run wrote no checkpoint";
  ASSERT_EQ(hibari::checkpoint_manifest_version(step), hibari::kShardedCheckpointVersion) << step;
  const std::string root = fs::path(step).parent_path().string();
  ASSERT_TRUE(fs::exists(fs::path(step) / hibari::shard_file_name(1)));
  write_byte_tokenizer(fs::path(root).parent_path() / "tokenizer.json");

  const std::string args = " --prompt 'some text' --max-new-tokens 12";
  const CommandResult from_root = run_hibari(d, "generate --model " + root + args);
  ASSERT_EQ(from_root.exit_code, 0) << from_root.err;
  EXPECT_FALSE(from_root.out.empty());
  const CommandResult from_step = run_hibari(d, "generate --model " + step + args);
  ASSERT_EQ(from_step.exit_code, 0) << from_step.err;
  EXPECT_EQ(from_step.out, from_root.out);

  // convert of the root (its newest step), f32 so that nothing rounds
  const std::string hf = (d / "hf").string();
  const CommandResult conv = run_hibari(d, "convert --from " + root + " --output " + hf);
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  EXPECT_EQ(hibari::test::read_file(fs::path(hf) / "tokenizer.json"),
            hibari::test::read_file(fs::path(root).parent_path() / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(fs::path(hf) / "config.json"));
  const CommandResult from_hf = run_hibari(d, "generate --model " + hf + args);
  ASSERT_EQ(from_hf.exit_code, 0) << from_hf.err;
  EXPECT_EQ(from_hf.out, from_root.out);

  // every model tensor, exactly; no optimizer tensor
  hibari::ShardedCheckpoint c = hibari::sharded_open(step);
  const hibari::SafeTensorsFile out =
      hibari::safetensors_read((fs::path(hf) / "model.safetensors").string());
  size_t model_tensors = 0;
  for (const auto& [name, t] : c.tensors) {
    if (name.rfind("exp_avg", 0) == 0) continue;
    ++model_tensors;
    std::vector<float> shards(size_t(t.rows * t.cols));
    hibari::sharded_read(c, name, hibari::whole_slice(t.shape), shards.data());
    EXPECT_EQ(out.read_f32(name), shards) << name;
  }
  EXPECT_EQ(out.tensors.size(), model_tensors);

  // --resize-vocab goes through the whole model
  const std::string grown = (d / "grown").string();
  const CommandResult resized =
      run_hibari(d, "convert --from " + step + " --output " + grown + " --resize-vocab 272");
  ASSERT_EQ(resized.exit_code, 0) << resized.err;
  const hibari::SafeTensorsFile g =
      hibari::safetensors_read((fs::path(grown) / "model.safetensors").string());
  const std::vector<float> embed = g.read_f32("model.embed_tokens.weight");
  ASSERT_EQ(embed.size(), size_t(272 * 32));
  std::vector<float> old(size_t(264 * 32));
  hibari::sharded_read(c, "model.embed_tokens.weight",
                       hibari::whole_slice(c.tensor("model.embed_tokens.weight").shape),
                       old.data());
  EXPECT_TRUE(std::equal(old.begin(), old.end(), embed.begin()));
}

}  // namespace
