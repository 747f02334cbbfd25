// Shards of the parameter registry (model/shard.h, model/params.h): local shapes and Megatron's
// splits for tp 1/2/4 and pipeline stages, parameter groups that tile the buffer, extract/insert
// that reassemble the full buffer, a sharded init equal to the slice of the one-process init, the
// even split of layers over stages, and one-line errors for shards that cannot exist.
#include "model/shard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "model/params.h"
#include "tests/error_matchers.h"
#include "tests/model/tiny_config.h"

namespace hibari {
namespace {

ModelConfig tiny(bool tied) { return test::tiny_llama({256, 64, 128, 3, 8, 4, 8, 32, tied}); }

// Every shard of a dp-free grid: tp x stages, for tp in {1, 2, 4} and stages in {1, 2, 3}.
std::vector<ModelShard> all_shards(const ModelConfig& c, int tp, int stages) {
  std::vector<ModelShard> shards;
  for (int s = 0; s < stages; ++s)
    for (int r = 0; r < tp; ++r) {
      ModelShard shard = pipeline_stage(c, s, stages);
      shard.tp_size = tp;
      shard.tp_rank = r;
      shards.push_back(shard);
    }
  return shards;
}

TEST(ShardLayout, TensorParallelShapesAndSplits) {
  const ModelConfig c = tiny(false);
  const ParameterLayout full = llama_parameter_layout(c);
  for (int tp : {1, 2, 4}) {
    ModelShard shard;
    shard.tp_size = tp;
    shard.tp_rank = tp - 1;
    const ParameterLayout layout = llama_parameter_layout(c, shard);
    ASSERT_EQ(layout.params.size(), full.params.size()) << "tp " << tp;
    const size_t t = size_t(tp);
    auto expect = [&](const std::string& name, ShardSplit split, size_t rows, size_t cols) {
      const ParamInfo* p = layout.find(name);
      ASSERT_NE(p, nullptr) << name;
      EXPECT_EQ(p->split, split) << name;
      EXPECT_EQ(p->shape[0], rows) << name << " tp " << tp;
      EXPECT_EQ(p->shape[1], cols) << name << " tp " << tp;
      EXPECT_EQ(p->numel, rows * cols) << name;
      EXPECT_EQ(p->full_shape, full.find(name)->shape) << name;
      EXPECT_EQ(p->tp_replicated, split == ShardSplit::none) << name;
      EXPECT_EQ(layout.params[p->full_index].name, name);
      EXPECT_EQ(full.params[p->full_index].name, name);
    };
    expect("model.embed_tokens.weight", ShardSplit::rows, 256 / t, 64);
    expect("model.layers.1.input_layernorm.weight", ShardSplit::none, 64, 1);
    expect("model.layers.1.self_attn.q_proj.weight", ShardSplit::rows, 64 / t, 64);
    expect("model.layers.1.self_attn.k_proj.weight", ShardSplit::rows, 32 / t, 64);
    expect("model.layers.1.self_attn.v_proj.weight", ShardSplit::rows, 32 / t, 64);
    expect("model.layers.1.self_attn.o_proj.weight", ShardSplit::cols, 64, 64 / t);
    expect("model.layers.2.post_attention_layernorm.weight", ShardSplit::none, 64, 1);
    expect("model.layers.2.mlp.gate_proj.weight", ShardSplit::rows, 128 / t, 64);
    expect("model.layers.2.mlp.up_proj.weight", ShardSplit::rows, 128 / t, 64);
    expect("model.layers.2.mlp.down_proj.weight", ShardSplit::cols, 64, 128 / t);
    expect("model.norm.weight", ShardSplit::none, 64, 1);
    expect("lm_head.weight", ShardSplit::rows, 256 / t, 64);
    // stacks stay adjacent (one GEMM each), other tensors start 16-float aligned
    for (size_t l = 0; l < 3; ++l) {
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
    EXPECT_EQ(layout.total % 16, 0u);
    // named pointers agree with the registry
    std::vector<float> buf(layout.total);
    LlamaWeights w = llama_weights(c, layout, buf.data());
    ASSERT_EQ(w.layers.size(), 3u);
    EXPECT_EQ(w.layers[2].down,
              buf.data() + layout.find("model.layers.2.mlp.down_proj.weight")->offset);
    EXPECT_EQ(w.lm_head, buf.data() + layout.find("lm_head.weight")->offset);
  }
  // The default shard is the one-process layout, bit for bit.
  const ParameterLayout again = llama_parameter_layout(c, ModelShard{});
  ASSERT_EQ(again.total, full.total);
  for (size_t i = 0; i < full.params.size(); ++i) {
    EXPECT_EQ(again.params[i].offset, full.params[i].offset);
    EXPECT_EQ(full.params[i].full_index, i);
    EXPECT_EQ(full.params[i].full_shape, full.params[i].shape);
  }
}

TEST(ShardLayout, PipelineStagesHoldTheirLayersEmbeddingAndHead) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny(tied);
    const ParameterLayout s0 = llama_parameter_layout(c, pipeline_stage(c, 0, 2));
    const ParameterLayout s1 = llama_parameter_layout(c, pipeline_stage(c, 1, 2));
    // 3 layers over 2 stages: [0, 2) and [2, 3)
    EXPECT_EQ(s0.params.front().name, "model.embed_tokens.weight");
    EXPECT_NE(s0.find("model.layers.1.mlp.down_proj.weight"), nullptr);
    EXPECT_EQ(s0.find("model.layers.2.mlp.down_proj.weight"), nullptr);
    EXPECT_EQ(s0.find("model.norm.weight"), nullptr);
    EXPECT_EQ(s0.find("lm_head.weight"), nullptr);
    EXPECT_EQ(s0.params.size(), 1 + 2 * 9u);
    EXPECT_EQ(s1.params.front().name, "model.layers.2.input_layernorm.weight");
    EXPECT_EQ(s1.params.front().offset, 0u);
    EXPECT_EQ(s1.params.front().full_index, 1 + 2 * 9u);
    EXPECT_NE(s1.find("model.norm.weight"), nullptr);
    EXPECT_EQ(s1.params.size(), 9 + 2u);
    if (tied) {
      // the last stage's own copy of the embedding, for the head, at the tail
      EXPECT_EQ(s1.params.back().name, "model.embed_tokens.weight");
      EXPECT_EQ(s1.params.back().full_index, 0u);
      std::vector<float> buf(s1.total);
      LlamaWeights w = llama_weights(c, s1, buf.data());
      EXPECT_EQ(w.embed, nullptr);
      EXPECT_EQ(w.lm_head, buf.data() + s1.params.back().offset);
    } else {
      EXPECT_EQ(s1.params.back().name, "lm_head.weight");
    }
  }
}

TEST(ShardLayout, GroupsTileTheBufferInOrder) {
  for (bool tied : {false, true})
    for (int tp : {1, 2, 4})
      for (int stages : {1, 2, 3})
        for (const ModelShard& shard : all_shards(tiny(tied), tp, stages)) {
          const ModelConfig c = tiny(tied);
          const ParameterLayout layout = llama_parameter_layout(c, shard);
          const std::vector<ParamGroup> groups = llama_param_groups(layout);
          const size_t nl = shard_layer_end(c, shard) - shard.layer_begin;
          ASSERT_EQ(groups.size(), (shard.first_stage ? 1 : 0) + nl + (shard.last_stage ? 1 : 0));
          EXPECT_EQ(groups.front().begin, 0u);
          EXPECT_EQ(groups.back().end, layout.total);
          EXPECT_EQ(groups.front().param_begin, 0u);
          EXPECT_EQ(groups.back().param_end, layout.params.size());
          for (size_t g = 0; g < groups.size(); ++g) {
            EXPECT_LT(groups[g].begin, groups[g].end);
            if (g > 0) {
              EXPECT_EQ(groups[g].begin, groups[g - 1].end);
              EXPECT_EQ(groups[g].param_begin, groups[g - 1].param_end);
            }
            for (size_t i = groups[g].param_begin; i < groups[g].param_end; ++i) {
              EXPECT_GE(layout.params[i].offset, groups[g].begin);
              EXPECT_LE(layout.params[i].offset + layout.params[i].numel, groups[g].end);
            }
          }
          // layer groups hold 9 parameters of one layer
          const size_t first_layer = shard.first_stage ? 1 : 0;
          for (size_t l = 0; l < nl; ++l) {
            const ParamGroup& g = groups[first_layer + l];
            EXPECT_EQ(g.param_end - g.param_begin, 9u);
            EXPECT_EQ(layout.params[g.param_begin].name, "model.layers." +
                                                             std::to_string(shard.layer_begin + l) +
                                                             ".input_layernorm.weight");
          }
        }
}

TEST(ShardSlicing, ExtractInsertReassemblesTheFullBuffer) {
  for (bool tied : {false, true})
    for (int tp : {1, 2, 4})
      for (int stages : {1, 3}) {
        const ModelConfig c = tiny(tied);
        const ParameterLayout full = llama_parameter_layout(c);
        std::vector<float> original(full.total, 0.0f), rebuilt(full.total, 0.0f);
        for (const ParamInfo& p : full.params)
          for (size_t i = 0; i < p.numel; ++i)
            original[p.offset + i] = float(random_normal(3, uint32_t(p.full_index), i));
        size_t local_floats = 0;
        for (const ModelShard& shard : all_shards(c, tp, stages)) {
          const ParameterLayout local = llama_parameter_layout(c, shard);
          std::vector<float> part(local.total, -1.0f);
          llama_shard_extract(full, original.data(), local, part.data(), shard);
          // a spot check of the slicing by hand: o_proj is cut by columns
          for (const ParamInfo& p : local.params) {
            if (p.split != ShardSplit::cols) continue;
            const ParamInfo& f = *full.find(p.name);
            const size_t i = p.shape[0] - 1, j = p.shape[1] - 1;
            EXPECT_EQ(part[p.offset + i * p.shape[1] + j],
                      original[f.offset + i * f.shape[1] + size_t(shard.tp_rank) * p.shape[1] + j]);
          }
          llama_shard_insert(full, rebuilt.data(), local, part.data(), shard);
          for (const ParamInfo& p : local.params) local_floats += p.numel;
        }
        EXPECT_EQ(rebuilt, original) << "tp " << tp << " stages " << stages << " tied " << tied;
        // every element held exactly once (plus the tied head's copy on a separate last stage)
        size_t full_floats = 0;
        for (const ParamInfo& p : full.params)
          full_floats += p.numel * (p.tp_replicated ? size_t(tp) : 1);
        if (tied && stages > 1) full_floats += full.params[0].numel;
        EXPECT_EQ(local_floats, full_floats);
      }
}

TEST(ShardInit, EveryElementEqualsTheOneProcessInit) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny(tied);
    const ParameterLayout full = llama_parameter_layout(c);
    std::vector<float> reference(full.total);
    llama_init_parameters(reference.data(), full, 0.02, 1234);
    for (int tp : {1, 2, 4})
      for (int stages : {1, 3})
        for (const ModelShard& shard : all_shards(c, tp, stages)) {
          const ParameterLayout local = llama_parameter_layout(c, shard);
          std::vector<float> direct(local.total, 0.0f), sliced(local.total, 0.0f);
          llama_init_parameters(direct.data(), local, 0.02, 1234, shard);
          llama_shard_extract(full, reference.data(), local, sliced.data(), shard);
          ASSERT_EQ(direct, sliced) << "tp " << tp << " rank " << shard.tp_rank << " layers ["
                                    << shard.layer_begin << ", " << shard.layer_end << ")";
        }
  }
}

TEST(PipelineStage, SplitsLayersEvenlyEarlierStagesFirst) {
  ModelConfig c = tiny(false);
  c.num_hidden_layers = 7;
  const size_t begins[] = {0, 3, 5}, ends[] = {3, 5, 7};
  for (int s = 0; s < 3; ++s) {
    ModelShard shard = pipeline_stage(c, s, 3);
    EXPECT_EQ(shard.layer_begin, begins[s]);
    EXPECT_EQ(shard.layer_end, ends[s]);
    EXPECT_EQ(shard.first_stage, s == 0);
    EXPECT_EQ(shard.last_stage, s == 2);
    EXPECT_EQ(shard.tp_size, 1);
  }
  ModelShard whole = pipeline_stage(c, 0, 1);
  EXPECT_EQ(whole.layer_end, 7u);
  EXPECT_TRUE(whole.first_stage && whole.last_stage);
  EXPECT_NE(test::error_of([&] { pipeline_stage(c, 0, 8); }).find("7 layers cannot fill 8"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { pipeline_stage(c, 3, 3); }), "");
}

TEST(ShardCheck, OneLineErrorsForShardsThatCannotExist) {
  const ModelConfig c = tiny(false);
  auto error = [&](ModelShard shard, size_t tokens = 0) {
    return test::error_of([&] { shard_check(c, shard, tokens); });
  };
  auto contains = [](const std::string& msg, const std::string& phrase) {
    return msg.find(phrase) != std::string::npos && msg.find('\n') == std::string::npos;
  };
  ModelShard ok;
  ok.tp_size = 4;
  ok.tp_rank = 3;
  EXPECT_EQ(error(ok), "");
  ModelShard three = ok;
  three.tp_size = 3;
  three.tp_rank = 0;
  EXPECT_TRUE(contains(error(three), "does not divide num_attention_heads (8)")) << error(three);
  ModelShard eight = ok;
  eight.tp_size = 8;
  EXPECT_TRUE(contains(error(eight), "num_key_value_heads (4)")) << error(eight);
  ModelConfig odd_f = c;
  odd_f.intermediate_size = 130;
  EXPECT_TRUE(contains(test::error_of([&] { shard_check(odd_f, ok); }), "intermediate_size (130)"));
  ModelConfig odd_v = c;
  odd_v.vocab_size = 250;
  EXPECT_TRUE(contains(test::error_of([&] { shard_check(odd_v, ok); }), "vocab_size (250)"));
  ModelShard sp = ok;
  sp.sequence_parallel = true;
  EXPECT_EQ(error(sp, 32), "");
  EXPECT_TRUE(contains(error(sp, 30), "the tokens of a batch, B*T (30)")) << error(sp, 30);
  ModelShard sp1;
  sp1.sequence_parallel = true;
  EXPECT_TRUE(contains(error(sp1), "sequence parallelism needs tp_size > 1"));
  ModelShard bad_rank = ok;
  bad_rank.tp_rank = 4;
  EXPECT_TRUE(contains(error(bad_rank), "outside a group of 4"));
  ModelShard inconsistent = pipeline_stage(c, 1, 3);
  inconsistent.first_stage = true;
  EXPECT_TRUE(contains(error(inconsistent), "first stage"));
  EXPECT_NE(test::error_of([&] { llama_parameter_layout(c, three); }), "");
}

}  // namespace
}  // namespace hibari
