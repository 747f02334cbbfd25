// Checkpoint folders and weights the commands that read a model must refuse (issue 13, item 4), run
// as a user runs them: a checkpoint step whose manifest.json was deleted is refused by convert,
// generate and eval (it was read as an unverified Hugging Face directory), and a model whose
// weights hold a NaN is refused by generate and eval naming the file and tensor (eval scored it
// accuracy 0 without a word); and resuming a run whose config.json changed hidden_size names every
// differing key, hidden_size first (it named only head_dim, the first in alphabetical order).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "data/indexed_dataset.h"
#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"
#include "tests/cli/run_hibari.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

const std::string kExamples = std::string(HIBARI_SOURCE_DIR) + "/examples/eval";
const char* const kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                       "special_tokens_map.json"};

struct TinyModel {
  ModelConfig config;
  ParameterLayout layout;
  std::vector<float> params;
};

// The tiny model of examples/eval (its config and tokenizer), random weights.
TinyModel tiny_model() {
  TinyModel m;
  m.config = load_model_config(kExamples + "/tiny_model/config.json");
  m.layout = llama_parameter_layout(m.config);
  m.params.resize(m.layout.total);
  llama_init_parameters(m.params.data(), m.layout, 0.5, 7);
  return m;
}

void copy_tokenizer(const fs::path& dir) {
  for (const char* f : kTokenizerFiles)
    fs::copy_file(fs::path(kExamples) / "tiny_model" / f, dir / f);
}

// Two commands per model folder: generate, and eval (perplexity on the sample data).
test::CommandResult generate(const fs::path& dir, const std::string& model) {
  return test::run_hibari(
      dir, "generate --model " + model + " --prompt 'こんにちは' --max-new-tokens 2");
}
test::CommandResult eval(const fs::path& dir, const std::string& model) {
  return test::run_hibari(dir, "eval --model " + model + " --tasks ppl_ja --data-dir " + kExamples +
                                   "/data --output " + (dir / "results.json").string());
}

TEST(CheckpointFolders, StepWithoutManifestIsRefused) {
  test::ScratchDir dir("checkpoint_folders");
  const TinyModel m = tiny_model();
  // A checkpoint as the trainer writes it (train/train_checkpoint.h), its tokenizer in the root.
  CheckpointContent content;
  content.step = 2;
  std::vector<CheckpointTensor>& tensors = content.tensor_files["model"];
  for (const ParamInfo& p : m.layout.params) {
    std::vector<int64_t> shape = {int64_t(p.shape[0])};
    if (p.ndim == 2) shape.push_back(int64_t(p.shape[1]));
    tensors.push_back({p.name, shape, m.params.data() + p.offset});
  }
  content.text_files["config.json"] = model_config_to_json(m.config).dump(2) + "\n";
  content.text_files["state.json"] = "{\"step\": 2}\n";
  const fs::path root = dir.path / "ckpt";
  write_checkpoint(root.string(), content, 0);
  copy_tokenizer(root);
  const std::string step = (root / "step_000002").string();
  // Intact, every command reads it.
  test::CommandResult r = generate(dir.path, step);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = eval(dir.path, step);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_hibari(dir.path,
                       "convert --from " + step + " --output " + (dir.path / "hf").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;

  fs::remove(root / "step_000002" / "manifest.json");
  const std::string expected = step +
                               ": a hibari checkpoint step without manifest.json (incomplete or "
                               "damaged: its files cannot be verified); pass the checkpoint root " +
                               root.string() + " to use its newest intact step";
  test::expect_one_line_error(generate(dir.path, step), expected);
  test::expect_one_line_error(eval(dir.path, step), expected);
  test::expect_one_line_error(test::run_hibari(dir.path, "convert --from " + step + " --output " +
                                                             (dir.path / "hf2").string()),
                              expected);
  EXPECT_FALSE(fs::exists(dir.path / "hf2"));
}

TEST(CheckpointFolders, NanWeightsAreRefusedNamingTheTensor) {
  test::ScratchDir dir("checkpoint_folders");
  TinyModel m = tiny_model();
  const std::string tensor = "model.layers.0.self_attn.o_proj.weight";
  for (const ParamInfo& p : m.layout.params)
    if (p.name == tensor) m.params[p.offset + 3] = std::numeric_limits<float>::quiet_NaN();
  const fs::path model = dir.path / "tiny";
  save_hf_weights(m.layout, m.params.data(), m.config, model.string(), {});
  copy_tokenizer(model);
  const std::string expected =
      (model / "model.safetensors").string() + ": tensor " + tensor + " holds NaN at element 3";
  test::expect_one_line_error(generate(dir.path, model.string()), expected);
  test::expect_one_line_error(eval(dir.path, model.string()), expected);
  EXPECT_FALSE(fs::exists(dir.path / "results.json"));
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(CheckpointFolders, ResumeWithAnotherModelNamesEveryDifferingKey) {
  test::ScratchDir dir("checkpoint_folders");
  // head_dim is not given: it follows hidden_size / num_attention_heads.
  const std::string model = R"({"model_type": "llama", "vocab_size": 264, "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 64})";
  std::ofstream(dir.path / "config.json") << model;
  IndexedDatasetWriter writer((dir.path / "text").string(), TokenDtype::u16);
  for (int d = 0; d < 8; ++d) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((d * 7 + i * 3) % 256);
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
  std::ofstream(dir.path / "run.toml") << "[model]\nconfig = \"config.json\"\n[data]\nprefixes = "
                                          "[\"text\"]\nsplit = \"100,0\"\n[train]\nseq_length = "
                                          "8\nmicro_batch_size = 2\nglobal_batch_size = 2\nsteps = "
                                          "2\n[checkpoint]\nevery = 1\n[run]\ndir = \""
                                       << (dir.path / "run").string() << "\"\n";
  const std::string train = "train --config " + (dir.path / "run.toml").string();
  test::CommandResult r = test::run_hibari(dir.path, train);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir.path / "config.json")
      << replace(model, "\"hidden_size\": 32", "\"hidden_size\": 64");
  r = test::run_hibari(dir.path, train);
  test::expect_one_line_error(
      r,
      "step_000002/config.json: a checkpoint of another model: hidden_size is 32 there, 64 in "
      "this run's model; head_dim is 8 there, 16 in this run's model");
}

}  // namespace
}  // namespace hibari
