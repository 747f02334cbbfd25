// The trainer's handles on the model (model/llama.h): the order in which llama_forward and
// llama_backward call the LlamaHooks, and a model without its own parameters (ZeRO-3's working
// copy) whose groups are pointed at separate buffers only when use_params asks for them, which must
// train bit for bit as the model that owns one flat buffer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "model/llama.h"
#include "tests/model/tiny_config.h"

namespace hibari {
namespace {

constexpr size_t B = 2, T = 12, N = B * T;

ModelConfig tiny(bool tied) { return test::tiny_llama({64, 32, 48, 2, 4, 2, 8, 16, tied}); }

std::vector<int32_t> tokens(uint32_t stream) {
  std::vector<int32_t> t(N);
  for (size_t i = 0; i < N; ++i) t[i] = int32_t(random_below(9, stream, i, 64));
  return t;
}

struct Recorder {
  std::vector<std::string> events;
};

TEST(LlamaHooks, CalledAroundEveryGroupInOrder) {
  for (bool tied : {false, true}) {
    Llama m;
    llama_create(m, tiny(tied), B, T);
    llama_init_parameters(m.params, m.layout, 0.1, 3);
    ASSERT_EQ(m.groups.size(), 4u);  // embedding, 2 layers, tail
    Recorder r;
    m.hooks.context = &r;
    m.hooks.use_params = [](void* c, size_t g) {
      static_cast<Recorder*>(c)->events.push_back("use " + std::to_string(g));
    };
    m.hooks.grads_done = [](void* c, size_t g) {
      static_cast<Recorder*>(c)->events.push_back("done " + std::to_string(g));
    };
    const std::vector<int32_t> in = tokens(0), tg = tokens(1);
    llama_forward(m, in.data(), tg.data(), B, T, 1.0f);
    std::vector<std::string> want = {"use 0", "use 1", "use 2", "use 3"};
    if (tied) want.push_back("use 0");  // the head reads the embedding group
    EXPECT_EQ(r.events, want) << "tied " << tied;
    r.events.clear();
    llama_backward(m);
    EXPECT_EQ(r.events, (std::vector<std::string>{"use 3", "done 3", "use 2", "done 2", "use 1",
                                                  "done 1", "use 0", "done 0"}))
        << "tied " << tied;
  }
}

// ZeRO-3 in miniature: each group's parameters and gradients live in buffers of their own, and
// the model sees them only from the group's use_params on.
struct GroupBuffers {
  Llama* model;
  std::vector<std::vector<float>> params, grads;
};

TEST(LlamaHooks, PointedGroupsTrainAsTheFlatBuffer) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny(tied);
    Llama flat;
    llama_create(flat, c, B, T);
    llama_init_parameters(flat.params, flat.layout, 0.1, 3);
    llama_zero_grads(flat);

    Llama pointed;
    llama_create(pointed, c, B, T, {}, nullptr, 1, {.own_parameters = false});
    EXPECT_EQ(pointed.params, nullptr);
    EXPECT_EQ(pointed.grads, nullptr);
    EXPECT_EQ(pointed.weights.layers[0].qkv, nullptr);
    GroupBuffers buffers{&pointed, {}, {}};
    for (const ParamGroup& g : pointed.groups) {
      buffers.params.emplace_back(flat.params + g.begin, flat.params + g.end);
      buffers.grads.emplace_back(g.end - g.begin, 0.0f);
    }
    pointed.hooks.context = &buffers;
    pointed.hooks.use_params = [](void* context, size_t g) {
      auto* b = static_cast<GroupBuffers*>(context);
      llama_point_group(*b->model, g, b->params[g].data(), b->grads[g].data());
    };

    const std::vector<int32_t> in = tokens(0), tg = tokens(1), in2 = tokens(2), tg2 = tokens(3);
    for (const auto* batch : {&in, &in2}) {
      const std::vector<int32_t>& targets = batch == &in ? tg : tg2;
      float a = llama_forward(flat, batch->data(), targets.data(), B, T, 0.5f);
      llama_backward(flat);
      float b = llama_forward(pointed, batch->data(), targets.data(), B, T, 0.5f);
      llama_backward(pointed);
      EXPECT_EQ(a, b) << "tied " << tied;
    }
    for (size_t g = 0; g < pointed.groups.size(); ++g) {
      const ParamGroup& group = pointed.groups[g];
      std::vector<float> want(flat.grads + group.begin, flat.grads + group.end);
      EXPECT_EQ(buffers.grads[g], want) << "group " << g << " tied " << tied;
    }
    // the views now point into the group buffers
    EXPECT_EQ(pointed.dweights.final_norm, buffers.grads[3].data());
    EXPECT_EQ(pointed.weights.layers[1].input_norm, buffers.params[2].data());
    EXPECT_EQ(pointed.weights.lm_head == pointed.weights.embed, tied);
  }
}

}  // namespace
}  // namespace hibari
