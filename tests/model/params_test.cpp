// The parameter registry: Hugging Face names and shapes, stacked projections contiguous, aligned
// starts, named pointers that agree with the registry, and seed-determined initialization.
#include "model/params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/error_matchers.h"
#include "tests/model/tiny_config.h"

namespace hibari {
namespace {

using test::error_of;

ModelConfig tiny(bool tied) { return test::tiny_llama({50, 24, 40, 2, 4, 2, 6, 32, tied}); }

TEST(ParameterLayout, NamesShapesAndOrderAsHuggingFace) {
  ModelConfig c = tiny(false);
  ParameterLayout layout = llama_parameter_layout(c);
  ASSERT_EQ(layout.params.size(), 1 + 9 * 2 + 2u);
  EXPECT_EQ(layout.params.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(layout.params.back().name, "lm_head.weight");
  const ParamInfo* k = layout.find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape[0], 12u);  // NKV * HD
  EXPECT_EQ(k->shape[1], 24u);
  EXPECT_TRUE(k->weight_decay);
  EXPECT_FALSE(layout.find("model.norm.weight")->weight_decay);
  EXPECT_EQ(layout.find("model.layers.0.input_layernorm.weight")->ndim, 1);
  std::set<std::string> names;
  for (const ParamInfo& p : layout.params) names.insert(p.name);
  EXPECT_EQ(names.size(), layout.params.size());
  EXPECT_EQ(parameter_count(c), [&] {
    size_t n = 0;
    for (const ParamInfo& p : layout.params) n += p.numel;
    return n;
  }());
}

TEST(ParameterLayout, StackedProjectionsAreContiguousAndOthersAligned) {
  ParameterLayout layout = llama_parameter_layout(tiny(false));
  for (size_t l = 0; l < 2; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    const ParamInfo* q = layout.find(p + "self_attn.q_proj.weight");
    const ParamInfo* k = layout.find(p + "self_attn.k_proj.weight");
    const ParamInfo* v = layout.find(p + "self_attn.v_proj.weight");
    const ParamInfo* gate = layout.find(p + "mlp.gate_proj.weight");
    const ParamInfo* up = layout.find(p + "mlp.up_proj.weight");
    EXPECT_EQ(k->offset, q->offset + q->numel);
    EXPECT_EQ(v->offset, k->offset + k->numel);
    EXPECT_EQ(up->offset, gate->offset + gate->numel);
    EXPECT_EQ(q->offset % 16, 0u);
    EXPECT_EQ(gate->offset % 16, 0u);
  }
  for (size_t i = 1; i < layout.params.size(); ++i)
    EXPECT_GE(layout.params[i].offset, layout.params[i - 1].offset + layout.params[i - 1].numel);
  EXPECT_GE(layout.total, layout.params.back().offset + layout.params.back().numel);
}

TEST(ParameterLayout, NamedPointersAndViewsAgreeWithTheRegistry) {
  ModelConfig c = tiny(true);
  ParameterLayout layout = llama_parameter_layout(c);
  EXPECT_EQ(layout.find("lm_head.weight"), nullptr);
  std::vector<float> buffer(layout.total);
  LlamaWeights w = llama_weights(c, layout, buffer.data());
  EXPECT_EQ(w.lm_head, w.embed);  // tied
  EXPECT_EQ(w.layers[1].down,
            buffer.data() + layout.find("model.layers.1.mlp.down_proj.weight")->offset);
  EXPECT_EQ(w.layers[0].qkv,
            buffer.data() + layout.find("model.layers.0.self_attn.q_proj.weight")->offset);
  Tensor t = param_view(buffer.data(), *layout.find("model.layers.0.self_attn.o_proj.weight"));
  EXPECT_EQ(t.data, w.layers[0].o_proj);
  EXPECT_EQ(t.ndim, 2);
  EXPECT_EQ(t.shape[0], 24);
  EXPECT_EQ(t.shape[1], 24);
  EXPECT_TRUE(t.is_contiguous());
}

TEST(ParameterInit, NormsOneMatricesNormalAndSeedDetermined) {
  ModelConfig c = tiny(false);
  ParameterLayout layout = llama_parameter_layout(c);
  std::vector<float> a(layout.total), b(layout.total), other(layout.total);
  llama_init_parameters(a.data(), layout, 0.02, 11);
  llama_init_parameters(b.data(), layout, 0.02, 11);
  llama_init_parameters(other.data(), layout, 0.02, 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  const ParamInfo* norm = layout.find("model.layers.1.post_attention_layernorm.weight");
  for (size_t i = 0; i < norm->numel; ++i) EXPECT_EQ(a[norm->offset + i], 1.0f);
  const ParamInfo* embed = layout.find("model.embed_tokens.weight");
  double sum = 0, sum_sq = 0;
  for (size_t i = 0; i < embed->numel; ++i) {
    sum += a[embed->offset + i];
    sum_sq += double(a[embed->offset + i]) * a[embed->offset + i];
  }
  double mean = sum / double(embed->numel),
         stddev = std::sqrt(sum_sq / double(embed->numel) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(stddev, 0.02, 0.002);
}

// Sizes whose products wrap size_t are an Error, never a small layout the initializer writes
// past (issue 13: vocab_size 2^62, or intermediate_size 2^61 with hidden 16, crashed with 139).
TEST(ParameterLayout, SizesThatWrapAreAnError) {
  ModelConfig vocab = test::tiny_llama({.vocab = size_t{1} << 62,
                                        .hidden = 16,
                                        .intermediate = 32,
                                        .layers = 1,
                                        .heads = 2,
                                        .kv_heads = 2,
                                        .head_dim = 8,
                                        .max_positions = 16});
  EXPECT_NE(error_of([&] { llama_parameter_layout(vocab); }).find("size overflows"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parameter_count(vocab); }).find("size overflows"), std::string::npos);
  ModelConfig ffn = test::tiny_llama({.vocab = 64,
                                      .hidden = 16,
                                      .intermediate = size_t{1} << 61,
                                      .layers = 1,
                                      .heads = 2,
                                      .kv_heads = 2,
                                      .head_dim = 8,
                                      .max_positions = 16});
  EXPECT_NE(error_of([&] { llama_parameter_layout(ffn); }).find("size overflows"),
            std::string::npos);
}

// config.json bounds every size at load, naming the file and the key, and the parameter total.
TEST(ModelConfigBounds, HugeSizesAreRefusedNamingTheKey) {
  auto config = [](const std::string& extra) {
    return nlohmann::json::parse(R"({"model_type": "llama", "vocab_size": 64, "hidden_size": 16,
      "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
      "max_position_embeddings": 16)" +
                                 extra + "}");
  };
  EXPECT_EQ(model_config_from_json(config(""), "c.json").source, "c.json");
  struct Case {
    std::string extra, phrase;
  };
  const Case cases[] = {
      {R"(, "vocab_size": 4611686018427387904)", "\"vocab_size\" must be a positive integer up to"},
      {R"(, "intermediate_size": 2305843009213693952)", "\"intermediate_size\" must be a positive"},
      {R"(, "num_hidden_layers": 18446744073709551615)",
       "\"num_hidden_layers\" must be a positive"},
      {R"(, "head_dim": 1.5)", "\"head_dim\" must be a positive integer"},
      {R"(, "vocab_size": 2147483648, "hidden_size": 1048576, "num_attention_heads": 1024)",
       "over the limit of 2^40"},
      {R"(, "tie_word_embeddings": "false")",
       "field \"tie_word_embeddings\" must be true or false"},
      {R"(, "mlp_bias": 0)", "field \"mlp_bias\" must be true or false"},
      {R"(, "rope_scaling": {"type": 3})", "field \"type\" must be a string"},
      {R"(, "rope_theta": "1e4")", "field \"rope_theta\" must be a number"},
      {R"(, "bos_token_id": 1099511627776)", "\"bos_token_id\" (a token id) must be an integer"},
  };
  for (const Case& c : cases) {
    // Applied by parsing: a later duplicate key wins in nlohmann, so extra overrides the base.
    EXPECT_TRUE(test::one_line_error(
        error_of([&] { model_config_from_json(config(c.extra), "c.json"); }), "c.json", c.phrase))
        << c.extra;
  }
}

}  // namespace
}  // namespace hibari
