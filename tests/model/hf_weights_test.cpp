// model/hf_weights: Hugging Face directories <-> the flat parameter buffer.  Round trips are
// bit-identical (F32) or exactly the bf16 rounding; every kind of mismatch is a one-line error
// naming the file; vocabulary growth keeps old rows; and a plain PyTorch Llama that loads the
// exported directory (tests/reference/hf_llama.py) computes hibari's logits.
#include "model/hf_weights.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/llama.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfig = R"({
  "model_type": "llama", "vocab_size": 40, "hidden_size": 24, "intermediate_size": 32,
  "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 8,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": [2, 3]
})";

ModelConfig config_of(const char* text, bool tied = false) {
  nlohmann::json j = nlohmann::json::parse(text);
  j["tie_word_embeddings"] = tied;
  return model_config_from_json(j, "test config");
}

using test::error_of;
using test::one_line_error;

struct Weights {
  ModelConfig config;
  ParameterLayout layout;
  std::vector<float> params;
};

Weights random_weights(bool tied = false, uint64_t seed = 5) {
  Weights w{config_of(kConfig, tied), {}, {}};
  w.layout = llama_parameter_layout(w.config);
  w.params.assign(w.layout.total, 0.0f);
  llama_init_parameters(w.params.data(), w.layout, 0.5, seed);
  // Values a careless conversion would change.
  w.params[w.layout.params[0].offset] = -0.0f;
  w.params[w.layout.params[0].offset + 1] = 1e-40f;  // subnormal
  return w;
}

// Every parameter of `layout` has the same bytes in a and b (the padding between them aside).
bool same_params(const ParameterLayout& layout, const float* a, const float* b) {
  for (const ParamInfo& p : layout.params) {
    if (std::memcmp(a + p.offset, b + p.offset, p.numel * sizeof(float)) != 0) return false;
  }
  return true;
}

// Rewrites DIR/model.safetensors through `edit` of its tensor list (values read as f32).
template <typename F>
void rewrite_single(const fs::path& dir, F&& edit) {
  const std::string path = (dir / "model.safetensors").string();
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> values;
  {
    SafeTensorsFile f = safetensors_read(path);
    for (const SafeTensorInfo& t : f.tensors) {
      names.push_back(t.name);
      shapes.push_back(t.shape);
      values.push_back(f.read_f32(t.name));
    }
  }
  edit(names, shapes, values);
  std::vector<SafeTensorOut> out;
  for (size_t i = 0; i < names.size(); ++i) {
    out.push_back({names[i], StDtype::F32, shapes[i], values[i].data()});
  }
  safetensors_write(path, out);
}

TEST(HfWeights, F32RoundTripIsBitIdentical) {
  test::ScratchDir dir("hf_weights");
  Weights w = random_weights();
  for (size_t shard : {size_t(5000000000), size_t(4000)}) {
    const std::string out = dir.file("out" + std::to_string(shard));
    save_hf_weights(w.layout, w.params.data(), w.config, out, {StDtype::F32, shard});
    std::vector<float> back(w.layout.total, 7.0f);
    load_hf_weights(w.layout, back.data(), w.config, out);
    EXPECT_TRUE(same_params(w.layout, back.data(), w.params.data()));
    EXPECT_EQ(fs::exists(fs::path(out) / "model.safetensors.index.json"), shard == 4000);
  }
  // config.json is what transformers needs and reads back as the same shape.
  const nlohmann::json cfg =
      nlohmann::json::parse(test::read_file(fs::path(dir.file("out4000")) / "config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  const nlohmann::json gen = nlohmann::json::parse(
      test::read_file(fs::path(dir.file("out4000")) / "generation_config.json"));
  EXPECT_EQ(gen["bos_token_id"], 1);
  EXPECT_EQ(gen["eos_token_id"], nlohmann::json::array({2, 3}));
}

TEST(HfWeights, Bf16SaveRoundsAndLoadsExactly) {
  test::ScratchDir dir("hf_weights");
  Weights w = random_weights();
  const std::string out = dir.file("bf16");
  save_hf_weights(w.layout, w.params.data(), w.config, out, {StDtype::BF16, 5000000000});
  EXPECT_EQ(nlohmann::json::parse(test::read_file(fs::path(out) / "config.json"))["torch_dtype"],
            "bfloat16");
  std::vector<float> back(w.layout.total);
  load_hf_weights(w.layout, back.data(), w.config, out);
  for (size_t i = 0; i < back.size(); ++i) {
    ASSERT_EQ(back[i], bf16_to_f32(f32_to_bf16(w.params[i]))) << i;
  }
}

TEST(HfWeights, ConfigOfAnotherShapeNamesFileAndField) {
  test::ScratchDir dir("hf_weights");
  Weights w = random_weights();
  const std::string out = dir.file("m");
  save_hf_weights(w.layout, w.params.data(), w.config, out, {});
  ModelConfig other = w.config;
  other.intermediate_size = 48;
  const ParameterLayout layout = llama_parameter_layout(other);
  std::vector<float> p(layout.total);
  EXPECT_TRUE(one_line_error(error_of([&] { load_hf_weights(layout, p.data(), other, out); }),
                             out + "/config.json",
                             "intermediate_size is 32 in the file but 48 in the model"));
  EXPECT_TRUE(one_line_error(
      error_of([&] { load_hf_weights(layout, p.data(), other, dir.file("nowhere")); }),
      dir.file("nowhere") + "/config.json", "missing"));
}

TEST(HfWeights, MissingWrongShapeAndUnexpectedTensors) {
  test::ScratchDir dir("hf_weights");
  Weights w = random_weights();
  const std::string out = dir.file("m");
  const std::string st = out + "/model.safetensors";
  std::vector<float> p(w.layout.total);
  auto load = [&] { load_hf_weights(w.layout, p.data(), w.config, out); };

  save_hf_weights(w.layout, w.params.data(), w.config, out, {});
  rewrite_single(out, [](auto& names, auto& shapes, auto& values) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "model.layers.1.mlp.up_proj.weight") {
        names.erase(names.begin() + long(i));
        shapes.erase(shapes.begin() + long(i));
        values.erase(values.begin() + long(i));
      }
    }
  });
  EXPECT_TRUE(one_line_error(error_of(load), st, "no tensor 'model.layers.1.mlp.up_proj.weight'"));

  fs::remove_all(out);
  save_hf_weights(w.layout, w.params.data(), w.config, out, {});
  rewrite_single(out, [](auto& names, auto& shapes, auto&) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "model.layers.0.self_attn.k_proj.weight") shapes[i] = {24, 8};
    }
  });
  EXPECT_TRUE(one_line_error(error_of(load), st,
                             "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [24, 8], "
                             "expected [8, 24]"));

  fs::remove_all(out);
  save_hf_weights(w.layout, w.params.data(), w.config, out, {});
  rewrite_single(out, [](auto& names, auto& shapes, auto& values) {
    names.push_back("model.layers.0.self_attn.rotary_emb.inv_freq");  // a buffer: ignored
    shapes.push_back({4});
    values.push_back({1, 2, 3, 4});
  });
  load();
  EXPECT_TRUE(same_params(w.layout, p.data(), w.params.data()));
  rewrite_single(out, [](auto& names, auto& shapes, auto& values) {
    names.push_back("model.layers.0.self_attn.q_proj.bias");
    shapes.push_back({24});
    values.push_back(std::vector<float>(24));
  });
  EXPECT_TRUE(one_line_error(error_of(load), st,
                             "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"));
}

TEST(HfWeights, TiedEmbeddingsWithAndWithoutHead) {
  test::ScratchDir dir("hf_weights");
  Weights w = random_weights(/*tied=*/true);
  const std::string out = dir.file("tied");
  save_hf_weights(w.layout, w.params.data(), w.config, out, {});
  EXPECT_FALSE(safetensors_read(out + "/model.safetensors").find("lm_head.weight"));
  std::vector<float> p(w.layout.total);
  load_hf_weights(w.layout, p.data(), w.config, out);
  EXPECT_TRUE(same_params(w.layout, p.data(), w.params.data()));

  // A writer that stores the tied head anyway: fine when it is the same matrix.
  const ParamInfo& embed = *w.layout.find("model.embed_tokens.weight");
  std::vector<float> head(w.params.begin() + long(embed.offset),
                          w.params.begin() + long(embed.offset + embed.numel));
  rewrite_single(out, [&](auto& names, auto& shapes, auto& values) {
    names.push_back("lm_head.weight");
    shapes.push_back({40, 24});
    values.push_back(head);
  });
  load_hf_weights(w.layout, p.data(), w.config, out);
  rewrite_single(out, [&](auto& names, auto&, auto& values) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "lm_head.weight") values[i][3] += 1.0f;
    }
  });
  EXPECT_TRUE(one_line_error(error_of([&] { load_hf_weights(w.layout, p.data(), w.config, out); }),
                             out + "/model.safetensors", "lm_head.weight differs"));
}

TEST(HfWeights, ResizeVocabKeepsOldRowsAndCentersNewOnes) {
  Weights w = random_weights();
  const size_t V = 40, N = 1040, C = 24;
  std::vector<float> grown;
  const ModelConfig config = resize_vocab(w.config, w.layout, w.params.data(), N, 11, grown);
  EXPECT_EQ(config.vocab_size, N);
  const ParameterLayout layout = llama_parameter_layout(config);
  ASSERT_EQ(grown.size(), layout.total);
  for (const ParamInfo& op : w.layout.params) {
    const ParamInfo& np = *layout.find(op.name);
    // Old values unchanged, bit for bit (the old rows of the vocabulary matrices included).
    ASSERT_EQ(std::memcmp(grown.data() + np.offset, w.params.data() + op.offset, op.numel * 4), 0)
        << op.name;
    if (np.numel == op.numel) continue;
    const float* old_rows = w.params.data() + op.offset;
    const float* new_rows = grown.data() + np.offset + V * C;
    double sum = 0, sum_sq = 0;
    for (size_t i = 0; i < V * C; ++i) {
      sum += old_rows[i];
      sum_sq += double(old_rows[i]) * old_rows[i];
    }
    const double std =
        std::sqrt(sum_sq / double(V * C) - (sum / double(V * C)) * (sum / double(V * C)));
    const double noise = kVocabResizeNoiseScale * std;
    double dev_sq = 0;
    for (size_t c = 0; c < C; ++c) {
      double old_mean = 0, new_mean = 0;
      for (size_t r = 0; r < V; ++r) old_mean += old_rows[r * C + c] / double(V);
      for (size_t r = 0; r < N - V; ++r) new_mean += new_rows[r * C + c] / double(N - V);
      // The mean of N - V noisy rows is the old mean within a few noise / sqrt(N - V).
      EXPECT_NEAR(new_mean, old_mean, 5 * noise / std::sqrt(double(N - V))) << op.name << " " << c;
      for (size_t r = 0; r < N - V; ++r) {
        dev_sq += std::pow(new_rows[r * C + c] - old_mean, 2);
      }
    }
    // The noise is really there, with the documented std.
    EXPECT_NEAR(std::sqrt(dev_sq / double((N - V) * C)), noise, 0.1 * noise) << op.name;
  }
  std::vector<float> again, other_seed;
  resize_vocab(w.config, w.layout, w.params.data(), N, 11, again);
  resize_vocab(w.config, w.layout, w.params.data(), N, 12, other_seed);
  EXPECT_EQ(again, grown);
  EXPECT_NE(other_seed, grown);
  EXPECT_NE(error_of([&] { resize_vocab(w.config, w.layout, w.params.data(), 39, 0, again); }), "");
}

TEST(HfWeights, ParseByteSize) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5000000000u);
  EXPECT_EQ(parse_byte_size("500mb", "x"), 500000000u);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), size_t(2) << 30);
  EXPECT_EQ(parse_byte_size("1234", "x"), 1234u);
  EXPECT_EQ(error_of([] { parse_byte_size("5 parsecs", "--max-shard-size"); }),
            "--max-shard-size: '5 parsecs' is not a positive size such as 5GB, 500MB or 2GiB");
  EXPECT_NE(error_of([] { parse_byte_size("0", "x"); }), "");
}

// config.json with llama3 rope scaling: lengths are integers whether or not a source is given, and
// a source's float-written length (an older hibari checkpoint's 8192.0) comes back as one.
TEST(HfWeights, ConfigTextWritesIntegersAndKeepsSourceKeys) {
  nlohmann::json j = nlohmann::json::parse(kConfig);
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  const ModelConfig config = model_config_from_json(j, "test config");
  const nlohmann::json plain = nlohmann::json::parse(hf_config_text(config, StDtype::BF16, "", ""));
  EXPECT_EQ(plain["rope_scaling"]["original_max_position_embeddings"].dump(), "8192");
  EXPECT_EQ(plain["rope_scaling"]["factor"].dump(), "8.0");
  EXPECT_EQ(plain["max_position_embeddings"].dump(), "64");
  EXPECT_EQ(plain["torch_dtype"], "bfloat16");

  j["rope_scaling"]["original_max_position_embeddings"] = 8192.0;
  j["pad_token_id"] = nullptr;
  j["dtype"] = "float32";
  j["use_cache"] = false;
  j["rope_theta"] = 10000;
  j.erase("head_dim");
  const nlohmann::json kept =
      nlohmann::json::parse(hf_config_text(config, StDtype::BF16, j.dump(), "src/config.json"));
  EXPECT_EQ(kept["rope_scaling"]["original_max_position_embeddings"].dump(), "8192");
  EXPECT_TRUE(kept.contains("pad_token_id") && kept["pad_token_id"].is_null());
  EXPECT_EQ(kept["use_cache"], false);
  EXPECT_EQ(kept["rope_theta"].dump(), "10000");  // as the source wrote it
  EXPECT_EQ(kept["dtype"], "bfloat16");
  EXPECT_EQ(kept["torch_dtype"], "bfloat16");
  EXPECT_EQ(kept["head_dim"], 8);  // the source left it to the default; hibari writes it
  EXPECT_EQ(kept["eos_token_id"], nlohmann::json::array({2, 3}));

  EXPECT_EQ(error_of([&] { hf_config_text(config, StDtype::F32, "{oops", "src/config.json"); }),
            "src/config.json: malformed JSON");
}

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A directory written by an independent writer (Python, sharded BF16) is imported, exported as
// F32, and a plain PyTorch Llama that loads the export computes the logits hibari computes.
TEST(HfWeights, ExportedWeightsGiveHibarisLogitsInPyTorch) {
  if (run(HIBARI_PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << HIBARI_PYTHON " cannot import torch";
  }
  test::ScratchDir dir("hf_weights");
  const std::string script = HIBARI_SOURCE_DIR "/tests/reference/hf_llama.py";
  test::write_file(dir.path / "config.json", kConfig);
  const std::string src = dir.file("python_bf16"), out = dir.file("export");
  ASSERT_EQ(
      run(std::string(HIBARI_PYTHON) + " " + script + " make --config " + dir.file("config.json") +
          " --out " + src + " --dtype bf16 --max-shard-bytes 3000 --std 0.3 --seed 3"),
      0);
  ASSERT_TRUE(fs::exists(fs::path(src) / "model.safetensors.index.json"));

  const ModelConfig config = load_model_config(src + "/config.json");
  const ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params(layout.total);
  load_hf_weights(layout, params.data(), config, src);
  save_hf_weights(layout, params.data(), config, out, {StDtype::F32, 5000000000});

  const size_t B = 2, T = 12;
  const std::string fixture = dir.file("logits.safetensors");
  ASSERT_EQ(run(std::string(HIBARI_PYTHON) + " " + script + " logits --model " + out + " --out " +
                fixture + " --batch 2 --seq 12 --seed 4"),
            0);
  SafeTensorsFile ref = safetensors_read(fixture);
  const std::vector<int64_t> ids = ref.read_i64("inputs");
  std::vector<int32_t> inputs(ids.begin(), ids.end());
  const SafeTensorInfo& logits_info = ref.require("logits", {2, 12, 40});
  std::vector<double> expected(logits_info.numel());
  std::memcpy(expected.data(), ref.bytes(logits_info).data(), expected.size() * sizeof(double));

  Llama model;
  llama_create(model, config, B, T);
  load_hf_weights(model.layout, model.params, model.config, out);
  llama_forward(model, inputs.data(), nullptr, B, T, 0.0f);
  std::vector<float> logits(config.vocab_size);
  double worst = 0, scale = 0;
  for (size_t b = 0; b < B; ++b) {
    for (size_t t = 0; t < T; ++t) {
      llama_logits_at(model, logits.data(), b, t);
      for (size_t v = 0; v < config.vocab_size; ++v) {
        const double e = expected[(b * T + t) * config.vocab_size + v];
        worst = std::max(worst, std::abs(double(logits[v]) - e));
        scale = std::max(scale, std::abs(e));
      }
    }
  }
  EXPECT_LT(worst, 1e-5) << "largest logit " << scale;
  std::printf("logits: max |hibari - torch| %.3g (largest |logit| %.3g)\n", worst, scale);
}

}  // namespace
}  // namespace hibari
