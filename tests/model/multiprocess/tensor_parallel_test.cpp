// The Llama model split over processes (model/shard.h) against one process, under mpirun -np 2
// and 4: tensor parallelism (tp = world size, with and without sequence parallelism), pipeline
// stages (pp = world size) passing activations forward and gradients back with send_recv, and
// tp 2 x pp 2 on 4 ranks.  Every rank computes the one-process reference itself (same seed, same
// tokens), then checks its loss (1e-5 relative) and every local gradient against the slice of the
// reference gradient (1e-5 relative to the tensor's largest magnitude), micro-batches accumulated.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/llama.h"
#include "parallel/comm.h"
#include "tests/model/tiny_config.h"

// Heap allocations through operator new, counted (the steady-state step must make none).
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

constexpr size_t B = 2, T = 16, N = B * T;
constexpr uint64_t seed = 2024;
constexpr double init_range = 0.1;  // larger than Llama's 0.02: activations well away from zero

// 4 layers: splits over 2 and 4 stages.
ModelConfig tiny(bool tied) { return test::tiny_llama({256, 64, 128, 4, 8, 4, 8, 32, tied}); }

// Micro-batch `mb`'s tokens; every 7th target is ignore_index, so the mean's count matters.
std::vector<int32_t> tokens(size_t micro, uint32_t stream, bool targets) {
  std::vector<int32_t> t(micro * N);
  for (size_t i = 0; i < t.size(); ++i) {
    t[i] = int32_t(random_below(seed, stream, i, 256));
    if (targets && i % 7 == 3) t[i] = cpu::ignore_index;
  }
  return t;
}

struct Reference {
  ParameterLayout layout;
  std::vector<float> grads;
  std::vector<float> losses;  // per micro-batch
};

// One process, the whole model: `micro` micro-batches of weight 1/micro accumulated.
Reference one_process(const ModelConfig& c, size_t micro) {
  const std::vector<int32_t> inputs = tokens(micro, 0, false), targets = tokens(micro, 1, true);
  Llama m;
  llama_create(m, c, B, T);
  llama_init_parameters(m.params, m.layout, init_range, seed);
  llama_zero_grads(m);
  Reference ref;
  for (size_t mb = 0; mb < micro; ++mb) {
    ref.losses.push_back(llama_forward(m, inputs.data() + mb * N, targets.data() + mb * N, B, T,
                                       1.0f / float(micro)));
    llama_backward(m);
  }
  ref.layout = m.layout;
  ref.grads.assign(m.grads, m.grads + m.layout.total);
  return ref;
}

// max |a - b| over a tensor <= 1e-5 * max |b|.
void expect_close(const float* got, const float* want, size_t n, const std::string& what) {
  float max_want = 0.0f, max_diff = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    max_want = std::max(max_want, std::fabs(want[i]));
    max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  }
  EXPECT_GT(max_want, 0.0f) << what;
  EXPECT_LE(max_diff, 1e-5f * max_want)
      << what << ": max |diff| " << max_diff << ", max |want| " << max_want;
}

struct Grid {
  bool tied = false;
  int tp = 1, pp = 1;
  bool sequence_parallel = false;
  size_t micro = 2;
  bool interleave = true;  // forward, backward per micro-batch (one slot); else all forwards first
};

// Runs `grid` on the world (rank = stage * tp + tp_rank) and checks it against one process.
void run_and_compare(const Grid& g) {
  // Up to 4 ranks share this machine's cores: one thread each, or OpenMP's spinning threads and
  // MPI's polling ranks starve each other (the kernels give the same bits for any thread count).
  omp_set_num_threads(1);
  Comm world = comm_world();
  ASSERT_EQ(world.size, g.tp * g.pp);
  const ModelConfig c = tiny(g.tied);
  const Reference ref = one_process(c, g.micro);
  const int stage = world.rank / g.tp, tp_rank = world.rank % g.tp;
  Comm tp_comm;
  if (g.tp > 1) tp_comm = comm_split(world, stage, world.rank, "tp");
  ModelShard shard = pipeline_stage(c, stage, g.pp);
  shard.tp_size = g.tp;
  shard.tp_rank = tp_rank;
  shard.sequence_parallel = g.sequence_parallel;

  Llama m;
  llama_create(m, c, B, T, shard, g.tp > 1 ? &tp_comm : nullptr, g.interleave ? 1 : g.micro);
  llama_init_parameters(m.params, m.layout, init_range, seed, shard);
  llama_zero_grads(m);
  const std::vector<int32_t> inputs = tokens(g.micro, 0, false), targets = tokens(g.micro, 1, true);
  const size_t floats = llama_stage_floats(m);
  const int prev = shard.first_stage ? -1 : world.rank - g.tp;
  const int next = shard.last_stage ? -1 : world.rank + g.tp;
  std::vector<float> losses;
  auto forward = [&](size_t mb, size_t slot) {
    if (prev >= 0) send_recv(world, {}, -1, {llama_stage_input(m, slot), floats}, prev);
    float loss = llama_forward(m, shard.first_stage ? inputs.data() + mb * N : nullptr,
                               shard.last_stage ? targets.data() + mb * N : nullptr, B, T,
                               1.0f / float(g.micro), slot);
    losses.push_back(loss);
    if (next >= 0) send_recv(world, {llama_stage_output(m, slot), floats}, next, {}, -1);
  };
  auto backward = [&](size_t slot) {
    if (next >= 0) send_recv(world, {}, -1, {llama_stage_doutput(m), floats}, next);
    llama_backward(m, slot);
    if (prev >= 0) send_recv(world, {llama_stage_dinput(m), floats}, prev, {}, -1);
  };
  auto step = [&] {
    if (g.interleave) {
      for (size_t mb = 0; mb < g.micro; ++mb) forward(mb, 0), backward(0);
    } else {
      for (size_t mb = 0; mb < g.micro; ++mb) forward(mb, mb);
      for (size_t mb = g.micro; mb-- > 0;) backward(mb);
    }
  };
  // A first step warms up (per-thread scratch, MPI's buffers); the second allocates nothing and
  // gives the same losses.  Gradients are compared after the second step alone.
  losses.reserve(2 * g.micro);
  step();
  const std::vector<float> first_losses = losses;
  losses.clear();
  llama_zero_grads(m);
  const long before = allocations.load();
  step();
  EXPECT_EQ(allocations.load() - before, 0) << "heap allocations in a steady-state step";
  EXPECT_EQ(losses, first_losses);

  if (shard.last_stage) {
    for (size_t mb = 0; mb < g.micro; ++mb)
      EXPECT_NEAR(losses[mb], ref.losses[mb], 1e-5 * std::fabs(ref.losses[mb])) << "mb " << mb;
    if (g.tp > 1) {  // every tp rank returns the same loss, bit for bit
      std::vector<float> all(size_t(g.tp) * g.micro);
      all_gather(tp_comm, all, losses);
      for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], losses[i % g.micro]);
    }
  } else {
    for (float loss : losses) EXPECT_EQ(loss, 0.0f);
  }

  // Tied over several stages: the two embedding copies' gradients sum to the whole gradient.
  const ParamInfo* embed = m.layout.find("model.embed_tokens.weight");
  const bool split_tie = g.tied && g.pp > 1 && embed != nullptr;
  const int last_peer = world.rank + (g.pp - 1) * g.tp, first_peer = world.rank - (g.pp - 1) * g.tp;
  std::vector<float> embed_grad;
  if (split_tie) {
    embed_grad.assign(m.grads + embed->offset, m.grads + embed->offset + embed->numel);
    if (shard.last_stage) send_recv(world, embed_grad, first_peer, {}, -1);
    if (shard.first_stage) {
      std::vector<float> other(embed->numel);
      send_recv(world, {}, -1, other, last_peer);
      for (size_t i = 0; i < other.size(); ++i) embed_grad[i] += other[i];
    }
  }

  std::vector<float> want(m.layout.total, 0.0f);
  llama_shard_extract(ref.layout, ref.grads.data(), m.layout, want.data(), shard);
  for (const ParamInfo& p : m.layout.params) {
    const std::string what = p.name + " (rank " + std::to_string(world.rank) + ")";
    if (split_tie && p.name == "model.embed_tokens.weight") {
      if (shard.first_stage) expect_close(embed_grad.data(), want.data() + p.offset, p.numel, what);
      continue;
    }
    expect_close(m.grads + p.offset, want.data() + p.offset, p.numel, what);
  }
  // Replicated parameters: the same complete gradient on every tp rank, bit for bit.
  if (g.tp > 1 && shard.last_stage) {
    const ParamInfo* norm = m.layout.find("model.norm.weight");
    std::vector<float> all(size_t(g.tp) * norm->numel);
    all_gather(tp_comm, all, {m.grads + norm->offset, norm->numel});
    for (size_t i = 0; i < all.size(); ++i)
      EXPECT_EQ(all[i], m.grads[norm->offset + i % norm->numel]);
  }
  if (g.tp > 1) {
    // what the tp group carried: all-reduces without SP, reduce-scatter / all-gather pairs with it
    if (g.sequence_parallel) {
      EXPECT_GT(tp_comm.bytes.reduce_scatter, 0u);
      EXPECT_GT(tp_comm.bytes.all_gather, 0u);
    } else {
      EXPECT_GT(tp_comm.bytes.all_reduce, 0u);
      EXPECT_EQ(tp_comm.bytes.reduce_scatter, 0u);
    }
    comm_free(tp_comm);
  }
}

TEST(TensorParallel, Untied) { run_and_compare({.tied = false, .tp = comm_world().size}); }
TEST(TensorParallel, Tied) { run_and_compare({.tied = true, .tp = comm_world().size}); }
TEST(TensorParallel, UntiedSequenceParallel) {
  run_and_compare({.tied = false, .tp = comm_world().size, .sequence_parallel = true});
}
TEST(TensorParallel, TiedSequenceParallel) {
  run_and_compare({.tied = true, .tp = comm_world().size, .sequence_parallel = true});
}
TEST(TensorParallel, SequenceParallelSlotsInFlight) {
  run_and_compare(
      {.tp = comm_world().size, .sequence_parallel = true, .micro = 3, .interleave = false});
}

TEST(Pipeline, UntiedStagesWithMicroBatchesInFlight) {
  run_and_compare({.tied = false, .pp = comm_world().size, .micro = 3, .interleave = false});
}
TEST(Pipeline, TiedStagesSumTheEmbeddingCopies) {
  run_and_compare({.tied = true, .pp = comm_world().size, .micro = 3, .interleave = false});
}
TEST(Pipeline, OneMicroBatchAtATime) {
  run_and_compare({.tied = false, .pp = comm_world().size, .micro = 2, .interleave = true});
}

TEST(TensorAndPipeline, TwoByTwo) {
  if (comm_world().size != 4) GTEST_SKIP() << "needs 4 ranks";
  run_and_compare({.tied = false, .tp = 2, .pp = 2, .micro = 3, .interleave = false});
  run_and_compare({.tied = true, .tp = 2, .pp = 2, .micro = 3, .interleave = false});
}
TEST(TensorAndPipeline, TwoByTwoSequenceParallel) {
  if (comm_world().size != 4) GTEST_SKIP() << "needs 4 ranks";
  run_and_compare(
      {.tied = true, .tp = 2, .pp = 2, .sequence_parallel = true, .micro = 3, .interleave = false});
}

}  // namespace
}  // namespace hibari
