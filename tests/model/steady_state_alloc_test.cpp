// The steady-state training step allocates nothing: after a warm-up step (which may size
// per-thread scratch), forward, backward, clipping and AdamW make no heap allocation through
// operator new.  Counted by replacing the global operator new in this test executable.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/rng.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "tests/model/tiny_config.h"

namespace {
std::atomic<long> allocations{0};
}

// The replacements pair malloc with free, as the standard requires of a replaced operator new and
// delete; GCC cannot see that they are the replacements and warns when it inlines both.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace hibari {
namespace {

TEST(SteadyState, TrainingStepAllocatesNothing) {
  ModelConfig c = test::tiny_llama({300, 64, 96, 2, 4, 2, 16, 128});
  const size_t B = 2, T = 70;
  Llama model;
  llama_create(model, c, B, T);
  llama_init_parameters(model.params, model.layout, 0.02, 7);
  std::vector<ParamRange> ranges;
  for (const ParamInfo& p : model.layout.params)
    ranges.push_back({p.offset, p.numel, p.weight_decay});
  AdamW opt;
  adamw_create(opt, {}, ranges, model.layout.total);
  std::vector<int32_t> inputs(B * T), targets(B * T);
  for (size_t i = 0; i < B * T; ++i) {
    inputs[i] = int32_t(random_below(1, 0, i, 300));
    targets[i] = int32_t(random_below(1, 1, i, 300));
  }
  auto step = [&] {
    llama_zero_grads(model);
    float loss = llama_forward(model, inputs.data(), targets.data(), B, T, 1.0f);
    llama_backward(model);
    clip_grad_norm(model.grads, model.layout.total, 1.0);
    adamw_step(opt, model.params, model.grads, 1e-3f);
    return loss;
  };
  float first = step();  // warm-up
  long before = allocations.load();
  float second = step();
  float third = step();
  EXPECT_EQ(allocations.load() - before, 0);
  EXPECT_LT(third, first);  // and it did train
  EXPECT_NE(second, first);
}

}  // namespace
}  // namespace hibari
