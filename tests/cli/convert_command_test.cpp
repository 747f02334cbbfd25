// `hibari convert --from HF_DIR --to hf --output OUT`, run as a user runs it: F32 in, F32 out is
// bit-identical tensor by tensor (sharded or not); BF16 -> F32 -> BF16 is too; --resize-vocab grows
// the vocabulary and keeps the old rows; the source's config.json keys and integer types survive;
// the tokenizer files beside the source are copied (and --resize-vocab's README says whether the
// tokenizer fits); bad input is one line on stderr naming the file, exit code 1, and nothing at
// OUT.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"
#include "tests/cli/run_hibari.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfig = R"({
  "model_type": "llama", "vocab_size": 40, "hidden_size": 24, "intermediate_size": 32,
  "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 8,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": false
})";

using test::CommandResult;
using test::run_hibari;

// A random model written by hibari's exporter (the importer is what is under test).
void write_model(const std::string& dir, StDtype dtype, size_t max_shard_bytes) {
  const ModelConfig config = model_config_from_json(nlohmann::json::parse(kConfig), "test");
  const ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params(layout.total);
  llama_init_parameters(params.data(), layout, 0.7, 9);
  save_hf_weights(layout, params.data(), config, dir, {dtype, max_shard_bytes});
}

// Both directories hold the same tensors with the same dtype, shape and bytes.
void expect_same_tensors(const std::string& a_dir, const std::string& b_dir) {
  const SafeTensorsModel a = safetensors_open_model(a_dir), b = safetensors_open_model(b_dir);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, where] : a.tensors) {
    auto it = b.tensors.find(name);
    ASSERT_NE(it, b.tensors.end()) << name;
    const SafeTensorInfo &ta = *where.second, &tb = *it->second.second;
    EXPECT_EQ(ta.dtype, tb.dtype) << name;
    EXPECT_EQ(ta.shape, tb.shape) << name;
    const auto ba = where.first->bytes(ta), bb = it->second.first->bytes(tb);
    ASSERT_EQ(ba.size(), bb.size()) << name;
    EXPECT_EQ(std::memcmp(ba.data(), bb.data(), ba.size()), 0) << name;
  }
}

TEST(ConvertCommand, F32RoundTripIsBitIdentical) {
  test::ScratchDir dir("convert_command");
  for (const char* shard : {"5GB", "3000"}) {
    const std::string in = dir.file(std::string("in_") + shard),
                      out = dir.file(std::string("out_") + shard);
    write_model(in, StDtype::F32, std::stoull(shard == std::string("5GB") ? "5000000000" : shard));
    const CommandResult r = run_hibari(dir.path, "convert --from " + in + " --to hf --output " +
                                                     out + " --max-shard-size " + shard);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_tensors(in, out);
    EXPECT_EQ(fs::exists(fs::path(out) / "model.safetensors.index.json"),
              shard == std::string("3000"));
    EXPECT_EQ(test::read_file(fs::path(in) / "config.json"),
              test::read_file(fs::path(out) / "config.json"));
  }
}

TEST(ConvertCommand, Bf16ThroughF32BackToBf16IsBitIdentical) {
  test::ScratchDir dir("convert_command");
  const std::string in = dir.file("bf16"), mid = dir.file("f32"), out = dir.file("bf16_again");
  write_model(in, StDtype::BF16, 4000);
  CommandResult r =
      run_hibari(dir.path, "convert --from " + in + " --output " + mid + " --dtype f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(safetensors_open_model(mid).files[0].tensors[0].dtype, StDtype::F32);
  r = run_hibari(dir.path, "convert --from " + mid + " --output " + out +
                               " --dtype bf16 --max-shard-size 4000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_tensors(in, out);
}

TEST(ConvertCommand, ResizeVocab) {
  test::ScratchDir dir("convert_command");
  const std::string in = dir.file("in"), out = dir.file("nested/out");  // parents are created
  write_model(in, StDtype::F32, 5000000000);
  const CommandResult r = run_hibari(
      dir.path, "convert --from " + in + " --output " + out + " --resize-vocab 48 --resize-seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json cfg = nlohmann::json::parse(test::read_file(fs::path(out) / "config.json"));
  EXPECT_EQ(cfg["vocab_size"], 48);
  const SafeTensorsFile a = safetensors_read(in + "/model.safetensors");
  const SafeTensorsFile b = safetensors_read(out + "/model.safetensors");
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    const std::vector<float> old_rows = a.read_f32(name, {40, 24});
    const std::vector<float> new_rows = b.read_f32(name, {48, 24});
    EXPECT_EQ(std::memcmp(old_rows.data(), new_rows.data(), old_rows.size() * 4), 0) << name;
  }
  // Everything else is untouched.
  for (const SafeTensorInfo& t : a.tensors) {
    if (t.shape[0] == 40) continue;
    EXPECT_EQ(a.read_f32(t.name), b.read_f32(t.name)) << t.name;
  }
}

// config.json as transformers writes a Llama 3.1-style model: keys hibari does not model, a
// rope_scaling whose lengths are integers, an integer rope_theta, the source's dtype.
TEST(ConvertCommand, KeepsConfigKeysAndIntegers) {
  test::ScratchDir dir("convert_command");
  const std::string in = dir.file("in"), out = dir.file("out");
  write_model(in, StDtype::F32, 5000000000);
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(kConfig);
  cfg["pad_token_id"] = 0;
  cfg["use_cache"] = true;
  cfg["torch_dtype"] = "bfloat16";
  cfg["transformers_version"] = "4.44.0";
  cfg["rope_theta"] = 500000;
  cfg["rope_scaling"] = {{"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64},
                         {"rope_type", "llama3"}};
  test::write_file(fs::path(in) / "config.json", cfg.dump(2));
  const CommandResult r = run_hibari(dir.path, "convert --from " + in + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = test::read_file(fs::path(out) / "config.json");
  EXPECT_NE(text.find("\"original_max_position_embeddings\": 64,"), std::string::npos) << text;
  EXPECT_EQ(text.find("64.0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rope_theta\": 500000,"), std::string::npos) << text;
  const nlohmann::ordered_json got = nlohmann::ordered_json::parse(text);
  // every source key, in the source's order and with its value, but torch_dtype: f32 was written
  cfg["torch_dtype"] = "float32";
  std::vector<std::string> keys;
  for (const auto& [key, value] : got.items()) {
    if (cfg.contains(key)) {
      keys.push_back(key);
      EXPECT_EQ(value.dump(), cfg[key].dump()) << key;
    }
  }
  std::vector<std::string> source_keys;
  for (const auto& [key, value] : cfg.items()) source_keys.push_back(key);
  EXPECT_EQ(keys, source_keys);
  EXPECT_TRUE(got["rope_scaling"]["original_max_position_embeddings"].is_number_integer());
}

// A BPE tokenizer.json of `n` single-letter tokens.
void write_letter_tokenizer(const fs::path& path, int n) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < n; ++i) vocab[std::string(1, char('0' + i))] = i;
  nlohmann::json j = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens", nlohmann::json::array()},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", nullptr},
                      {"post_processor", nullptr},
                      {"decoder", nullptr},
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
  test::write_file(path, j.dump());
}

TEST(ConvertCommand, CopiesTokenizerFiles) {
  test::ScratchDir dir("convert_command");
  const std::string in = dir.file("in"), out = dir.file("out");
  write_model(in, StDtype::F32, 5000000000);
  write_letter_tokenizer(fs::path(in) / "tokenizer.json", 40);
  const std::map<std::string, std::string> files = {
      {"tokenizer_config.json", R"({"bos_token": "<s>", "chat_template": "{{ x }}"})"},
      {"special_tokens_map.json", R"({"bos_token": "<s>"})"},
      {"generation_config.json", R"({"do_sample": true, "temperature": 0.6, "eos_token_id": 2})"},
      {"tokenizer.model", "not really a sentencepiece model"}};
  for (const auto& [name, text] : files) test::write_file(fs::path(in) / name, text);
  const CommandResult r = run_hibari(dir.path, "convert --from " + in + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [name, text] : files) EXPECT_EQ(test::read_file(fs::path(out) / name), text);
  EXPECT_EQ(test::read_file(fs::path(out) / "tokenizer.json"),
            test::read_file(fs::path(in) / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "README.md"));  // only --resize-vocab writes one
}

TEST(ConvertCommand, ResizeVocabReadmeSaysWhetherTheTokenizerFits) {
  test::ScratchDir dir("convert_command");
  const std::string in = dir.file("in");
  write_model(in, StDtype::F32, 5000000000);
  write_letter_tokenizer(fs::path(in) / "tokenizer.json", 44);
  CommandResult r = run_hibari(
      dir.path, "convert --from " + in + " --output " + dir.file("fits") + " --resize-vocab 44");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string readme = test::read_file(fs::path(dir.file("fits")) / "README.md");
  EXPECT_NE(readme.find("`tokenizer.json` (copied from `" + in +
                        "/tokenizer.json`) has 44 tokens; the embedding has 44 rows.\n\nThey "
                        "match.\n"),
            std::string::npos)
      << readme;
  EXPECT_NE(readme.find("grew from 40 to 44 rows"), std::string::npos) << readme;
  EXPECT_NE(r.err.find("the copied tokenizer.json matches the resized embedding"),
            std::string::npos)
      << r.err;

  r = run_hibari(dir.path,
                 "convert --from " + in + " --output " + dir.file("short") + " --resize-vocab 48");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  readme = test::read_file(fs::path(dir.file("short")) / "README.md");
  EXPECT_NE(readme.find("They do not match: rows 44 to 47 belong to no token"), std::string::npos)
      << readme;
  EXPECT_NE(r.err.find("the copied tokenizer.json has 44 tokens, the resized embedding 48 rows"),
            std::string::npos)
      << r.err;

  fs::remove(fs::path(in) / "tokenizer.json");
  r = run_hibari(dir.path,
                 "convert --from " + in + " --output " + dir.file("none") + " --resize-vocab 48");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  readme = test::read_file(fs::path(dir.file("none")) / "README.md");
  EXPECT_NE(readme.find("No tokenizer was found beside the source"), std::string::npos) << readme;
}

class ConvertBadInput : public testing::Test {
 protected:
  void SetUp() override { write_model(in_, StDtype::F32, 3000); }

  // Fails with exit code 1 and one stderr line naming `file` and holding `phrase`; OUT and any
  // temporary sibling are absent.
  void expect_failure(const std::string& file, const std::string& phrase) {
    const CommandResult r = run_hibari(dir_.path, "convert --from " + in_ + " --output " + out_);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("hibari: error: " + file + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    EXPECT_FALSE(fs::exists(out_));
    for (const auto& e : fs::directory_iterator(dir_.path)) {
      EXPECT_EQ(e.path().filename().string().find("out.tmp"), std::string::npos) << e.path();
    }
  }
  std::string shard(int i) const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(in_)) {
      n += e.path().filename().string().rfind("model-", 0) == 0;
    }
    char name[64];
    std::snprintf(name, sizeof name, "/model-%05d-of-%05d.safetensors", i, n);
    return in_ + name;
  }

  test::ScratchDir dir_{"convert_command"};
  std::string in_ = dir_.file("in"), out_ = dir_.file("out");
};

TEST_F(ConvertBadInput, MissingConfig) {
  fs::remove(in_ + "/config.json");
  expect_failure(in_ + "/config.json", "missing");
}

TEST_F(ConvertBadInput, TruncatedShard) {
  const std::string path = shard(2);
  const std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() - 100));
  expect_failure(path, "truncated");
}

TEST_F(ConvertBadInput, ShardMissingFromIndex) {
  const std::string path = shard(3);
  fs::remove(path);
  expect_failure(path, "missing shard");
}

TEST_F(ConvertBadInput, ConfigOfAnotherShape) {
  nlohmann::json cfg = nlohmann::json::parse(test::read_file(fs::path(in_) / "config.json"));
  cfg["intermediate_size"] = 48;
  test::write_file(fs::path(in_) / "config.json", cfg.dump());
  const SafeTensorsModel model = safetensors_open_model(in_);
  expect_failure(model.file_of("model.layers.0.mlp.gate_proj.weight")->path,
                 "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [32, 24], expected "
                 "[48, 24]");
}

TEST_F(ConvertBadInput, ExistingOutputIsNotTouched) {
  fs::create_directories(out_);
  test::write_file(fs::path(out_) / "keep.txt", "mine");
  const CommandResult r = run_hibari(dir_.path, "convert --from " + in_ + " --output " + out_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("hibari: error: " + out_ + ": already exists", 0), 0u) << r.err;
  EXPECT_EQ(test::read_file(fs::path(out_) / "keep.txt"), "mine");
}

}  // namespace
}  // namespace hibari
