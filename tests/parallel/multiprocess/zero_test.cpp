// parallel/zero.h on 2, 3 and 4 processes: a simulated training step (hooks called in the model's
// order, 1 and 3 micro-batches) at ZeRO stages 0-3, hybrid sharding and int8-quantized gathers,
// checked against the same step computed by one process; memory per rank against zero.h's
// formulas; shard ranges, blocks and full gathers; errors every rank raises alike.
//
// Gradients are small multiples of 1/8, so every sum over ranks and micro-batches is exact and the
// averaged gradient is float(sum) / dp bit for bit, whatever order the collectives add in. AdamW
// (kernels/cpu/adamw.h, the kernel optim/adamw.h runs) is elementwise, so the ranks, updating
// their blocks, and one process, updating the whole buffer, compute the same bits.
#include "parallel/zero.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/cpu/adamw.h"
#include "parallel/comm.h"
#include "parallel/quant.h"

namespace hibari {
namespace {

// The flat buffer: an embedding group, three layer groups and a tail. 37 and 23 are prime, 50 is
// even, 64 a power of two, and the tail's 3 floats leave rank 3 of 4 an empty block.
const std::vector<size_t> kGroupSizes = {37, 50, 64, 23, 3};

std::vector<BucketRange> groups_of(const std::vector<size_t>& sizes) {
  std::vector<BucketRange> groups;
  size_t begin = 0;
  for (size_t n : sizes) {
    groups.push_back({begin, begin + n});
    begin += n;
  }
  return groups;
}

size_t total_of(const std::vector<BucketRange>& groups) { return groups.back().end; }

size_t ceil_div(size_t n, size_t p) { return (n + p - 1) / p; }

// AdamW's tensors: each group starts with a 5-float "norm" (no weight decay), then a "matrix".
struct Tensor {
  size_t offset, numel;
  bool weight_decay;
};

std::vector<Tensor> tensors_of(const std::vector<BucketRange>& groups) {
  std::vector<Tensor> tensors;
  for (const BucketRange& g : groups) {
    size_t norm = std::min<size_t>(5, g.size());
    tensors.push_back({g.begin, norm, false});
    if (g.size() > norm) tensors.push_back({g.begin + norm, g.size() - norm, true});
  }
  return tensors;
}

float initial_param(size_t i) { return float(int((i * 5) % 13) - 6) / 8.0f; }

// What rank `rank` adds to element i's gradient in micro-batch `micro` of `step`: `part` 0 in the
// forward pass (the fused head writes the tail's and the tied embedding's gradients), 1 in the
// backward pass. Multiples of 1/8 in [-1, 1].
float grad_value(int step, int rank, int micro, size_t i, int part) {
  return float(int((size_t(step) * 13 + size_t(rank) * 7 + size_t(micro) * 11 + i * 3 +
                    size_t(part) * 5) %
                   17) -
               8) /
         8.0f;
}

bool is_pinned(size_t group, size_t groups) { return group == 0 || group + 1 == groups; }

// The gradients averaged over dp ranks: float(exact sum) / dp, as ZeRO divides.
std::vector<float> mean_grads(const std::vector<BucketRange>& groups, int step, int dp,
                              int micro_batches) {
  std::vector<float> mean(total_of(groups), 0.0f);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    for (size_t i = groups[gi].begin; i < groups[gi].end; ++i) {
      float sum = 0;  // exact: at most 2 x 4 x 3 terms of 1/8 multiples
      for (int r = 0; r < dp; ++r) {
        for (int k = 0; k < micro_batches; ++k) {
          sum += grad_value(step, r, k, i, 1);
          if (is_pinned(gi, groups.size())) sum += grad_value(step, r, k, i, 0);
        }
      }
      mean[i] = sum / float(dp);
    }
  }
  return mean;
}

// What zero_use_params must return for `range` at stage 3: the parameters, or with quantized
// gathers each rank's padded block through quantize and dequantize.
std::vector<float> expected_group(const std::vector<float>& full, BucketRange range, int p,
                                  bool quantized) {
  std::vector<float> out(full.begin() + ptrdiff_t(range.begin),
                         full.begin() + ptrdiff_t(range.end));
  if (!quantized) return out;
  const size_t n = range.size(), sf = ceil_div(n, size_t(p));
  std::vector<uint8_t> packed(quantized_bytes(sf));
  std::vector<float> block(sf), gathered(size_t(p) * sf);
  for (int r = 0; r < p; ++r) {
    BucketRange b = even_block(n, p, r);
    std::fill(block.begin(), block.end(), 0.0f);
    std::copy(out.begin() + ptrdiff_t(b.begin), out.begin() + ptrdiff_t(b.end), block.begin());
    quantize_blockwise(packed, block);
    dequantize_blockwise(std::span(gathered.data() + size_t(r) * sf, sf), packed);
  }
  gathered.resize(n);
  return gathered;
}

// Bitwise equality of n floats; the message names the first difference.
testing::AssertionResult same_floats(const float* got, const float* want, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(got + i, want + i, sizeof(float)) != 0) {
      return testing::AssertionFailure()
             << "element " << i << " of " << n << ": got " << got[i] << ", want " << want[i];
    }
  }
  return testing::AssertionSuccess();
}

cpu::AdamWStep adamw_hyper(int step, bool weight_decay) {
  return {.lr = 0.01f,
          .beta1 = 0.9f,
          .beta2 = 0.95f,
          .eps = 1e-8f,
          .weight_decay = weight_decay ? 0.1f : 0.0f,
          .bias_correction1 = 1.0f - std::pow(0.9f, float(step)),
          .bias_correction2 = 1.0f - std::pow(0.95f, float(step))};
}

struct Case {
  int stage = 0;
  bool quantized = false;
  bool hybrid = false;
  int micro_batches = 1;
};

std::string describe(const Case& c) {
  return "stage " + std::to_string(c.stage) + (c.quantized ? " quantized" : "") +
         (c.hybrid ? " hybrid" : "") + ", " + std::to_string(c.micro_batches) + " micro-batches";
}

// Hybrid: shards of 2 ranks replicated across the others (4 ranks: 2 x 2), or of 1 rank where the
// world size is odd or 2, split as distributed_create does with shard_group.
int hybrid_shard_size(int world_size) { return world_size % 2 == 0 && world_size > 2 ? 2 : 1; }

struct Comms {
  Comm world, shard, replica;
  bool hybrid = false;
  Comm* shard_comm() { return hybrid ? &shard : &world; }
  Comm* replica_comm() { return hybrid ? &replica : nullptr; }
};

void comms_make(Comms& c, bool hybrid) {
  c.world = comm_world();
  c.hybrid = hybrid;
  if (!hybrid) return;
  const int g = hybrid_shard_size(c.world.size), r = c.world.rank;
  c.shard = comm_split(c.world, r / g, r % g, "zero");
  c.replica = comm_split(c.world, r % g, r / g, "replica");
}

void comms_free(Comms& c) {
  if (!c.hybrid) return;
  comm_free(c.shard);
  comm_free(c.replica);
}

// Two training steps of `c` on every rank, each checked against one process: the parameters the
// hooks return, the averaged gradients, the gradient norm, and the parameters after AdamW.
void run_steps(const Case& c) {
  SCOPED_TRACE(describe(c));
  Comms comms;
  comms_make(comms, c.hybrid);
  Comm& world = comms.world;
  Comm& shard = *comms.shard_comm();
  const int dp = world.size, p = shard.size;
  const std::vector<BucketRange> groups = groups_of(kGroupSizes);
  const size_t G = groups.size(), total = total_of(groups);
  const std::vector<Tensor> tensors = tensors_of(groups);

  // The model's own buffers (stages 0-1 both, stage 2 the parameters; stage 3 loads from it).
  std::vector<float> params(total), grads(total, 0.0f);
  for (size_t i = 0; i < total; ++i) params[i] = initial_param(i);
  Zero z;
  zero_create(z, {.stage = c.stage, .quantized_gather = c.quantized}, shard, comms.replica_comm(),
              groups, total, c.stage <= 2 ? params.data() : nullptr,
              c.stage <= 1 ? grads.data() : nullptr);
  zero_load_params(z, params.data());
  EXPECT_EQ(z.dp_size, dp);
  std::vector<float> m(zero_state_floats(z), 0.0f), v(zero_state_floats(z), 0.0f);

  // One process: the whole buffer.
  std::vector<float> ref = params, ref_m(total, 0.0f), ref_v(total, 0.0f);

  // The parameters every hook must hand out now, and a check of one hook's answer.
  std::vector<std::vector<float>> want(G);
  auto expect_now = [&] {
    for (size_t g = 0; g < G; ++g) want[g] = expected_group(ref, groups[g], p, c.quantized);
  };
  auto use = [&](size_t g, const char* pass) {
    SCOPED_TRACE(testing::Message() << pass << ", group " << g);
    float* group_grads = nullptr;
    float* got = zero_use_params(z, g, &group_grads);
    if (c.stage <= 2) {
      EXPECT_EQ(got, params.data() + groups[g].begin);
    }
    EXPECT_TRUE(same_floats(got, want[g].data(), groups[g].size()));
    if (c.stage <= 1) {
      EXPECT_EQ(group_grads, grads.data() + groups[g].begin);
    }
    // Stages 2-3: a layer has no gradient buffer in the forward pass.
    const bool has_grads = c.stage <= 1 || z.backward || is_pinned(g, G);
    EXPECT_EQ(group_grads != nullptr, has_grads);
    return group_grads;
  };
  auto add_grads = [&](float* to, size_t g, int step, int micro, int part) {
    if (to == nullptr) return;
    for (size_t i = groups[g].begin; i < groups[g].end; ++i)
      to[i - groups[g].begin] += grad_value(step, world.rank, micro, i, part);
  };

  for (int step = 1; step <= 2; ++step) {
    SCOPED_TRACE(testing::Message() << "step " << step);
    expect_now();
    zero_begin_step(z);
    std::fill(grads.begin(), grads.end(), 0.0f);  // llama_zero_grads
    for (int micro = 0; micro < c.micro_batches; ++micro) {
      // Forward: every group in order; the head writes the tail's gradients, then reads the tied
      // embedding and writes its gradients too.
      for (size_t g = 0; g + 1 < G; ++g) use(g, "forward");
      add_grads(use(G - 1, "forward"), G - 1, step, micro, 0);
      add_grads(use(0, "forward, tied head"), 0, step, micro, 0);
      // Backward: from the last group to the first, as train/distributed.cpp brackets it.
      z.last_micro_batch = micro + 1 == c.micro_batches;
      z.backward = true;
      for (size_t g = G; g-- > 0;) {
        add_grads(use(g, "backward"), g, step, micro, 1);
        zero_grads_done(z, g);
      }
      z.backward = false;
    }
    zero_finish_grads(z);

    // The averaged gradients: the full buffer (stage 0) or this rank's padded blocks.
    const std::vector<float> mean = mean_grads(groups, step, dp, c.micro_batches);
    std::span<float> averaged = zero_grads(z);
    EXPECT_EQ(zero_grads_sharded(z), c.stage >= 1);
    if (c.stage == 0) {
      EXPECT_EQ(averaged.data(), grads.data());
      EXPECT_TRUE(same_floats(grads.data(), mean.data(), total));
    } else {
      EXPECT_EQ(averaged.size(), z.shard_total);
      for (const ZeroGroup& g : z.groups) {
        BucketRange b = even_block(g.range.size(), p, shard.rank);
        EXPECT_TRUE(same_floats(averaged.data() + g.shard_offset,
                                mean.data() + g.range.begin + b.begin, b.size()));
        for (size_t j = b.size(); j < g.shard_floats; ++j)
          EXPECT_EQ(averaged[g.shard_offset + j], 0.0f) << "padding of a block";
      }
    }

    // Gradient norm: each element once; a weighted range (crossing three groups) counts 1/4.
    double squares = 0, weighted = 0;
    const WeightedRange scaled{.offset = 30, .numel = 60, .weight = 0.25};
    for (size_t i = 0; i < total; ++i) {
      double s = double(mean[i]) * double(mean[i]);
      squares += s;
      const bool in_range = i >= scaled.offset && i < scaled.offset + scaled.numel;
      weighted += in_range ? scaled.weight * s : s;
    }
    const double got_squares = zero_grad_sum_squares(z, {});
    const double got_weighted = zero_grad_sum_squares(z, std::span(&scaled, 1));
    EXPECT_NEAR(got_squares, squares, 1e-12 * squares);
    EXPECT_NEAR(got_weighted, weighted, 1e-12 * weighted);
    EXPECT_LT(got_weighted, got_squares - 0.1);  // the weight did something

    // AdamW on what this rank updates, addressed as train/distributed.cpp's adamw_ranges does.
    float* zp = zero_params(z);
    float* zg = zero_grads(z).data();
    for (const Tensor& t : tensors) {
      const cpu::AdamWStep s = adamw_hyper(step, t.weight_decay);
      cpu::adamw_update(ref.data() + t.offset, ref_m.data() + t.offset, ref_v.data() + t.offset,
                        mean.data() + t.offset, t.numel, s);
      if (c.stage == 0) {
        cpu::adamw_update(zp + t.offset, m.data() + t.offset, v.data() + t.offset, zg + t.offset,
                          t.numel, s);
        continue;
      }
      for (const ShardRange& r : zero_shard_ranges(z, t.offset, t.numel)) {
        cpu::adamw_update(zp + (zero_params_sharded(z) ? r.offset : r.full_offset),
                          m.data() + r.offset, v.data() + r.offset,
                          zg + (zero_grads_sharded(z) ? r.offset : r.full_offset), r.numel, s);
      }
    }
    zero_finish_step(z);
    if (c.stage <= 2) {
      EXPECT_TRUE(same_floats(params.data(), ref.data(), total));
    }
  }

  // After the last step: the hooks hand out the updated parameters, the same on every rank.
  expect_now();
  std::vector<float> seen;
  for (size_t g = 0; g < G; ++g) {
    float* ignored = nullptr;
    const float* got = zero_use_params(z, g, &ignored);
    EXPECT_TRUE(same_floats(got, want[g].data(), groups[g].size())) << "group " << g;
    seen.insert(seen.end(), got, got + groups[g].size());
  }
  zero_release_params(z);
  std::vector<float> from_root = seen;
  broadcast(world, from_root, 0);
  EXPECT_TRUE(same_floats(seen.data(), from_root.data(), total)) << "rank 0 saw other values";
  // The master copies and the moments, gathered, are one process's (exact even when quantized).
  std::vector<float> full(total);
  if (c.stage == 3) {
    zero_gather_full(z, z.params.data(), full.data());
    EXPECT_TRUE(same_floats(full.data(), ref.data(), total)) << "master parameters";
  }
  if (c.stage >= 1) {
    zero_gather_full(z, m.data(), full.data());
    EXPECT_TRUE(same_floats(full.data(), ref_m.data(), total)) << "AdamW m";
    zero_gather_full(z, v.data(), full.data());
    EXPECT_TRUE(same_floats(full.data(), ref_v.data(), total)) << "AdamW v";
  } else {
    EXPECT_TRUE(same_floats(m.data(), ref_m.data(), total)) << "AdamW m";
  }
  comms_free(comms);
}

// One OpenMP thread per rank while a test runs. mpirun starts more ranks than this machine has
// cores; each rank's kernels (AdamW, quantization, sums of squares) would otherwise start a team of
// threads that spin against the other ranks' teams, turning microseconds into seconds.
class ZeroTest : public testing::Test {
 protected:
  void SetUp() override {
    threads_before_ = num_threads();
    set_num_threads(1);
  }
  void TearDown() override { set_num_threads(threads_before_); }

 private:
  int threads_before_ = 1;
};

TEST_F(ZeroTest, StepsAtEveryStageEqualOneProcess) {
  for (int stage = 0; stage <= 3; ++stage)
    for (int micro_batches : {1, 3}) run_steps({.stage = stage, .micro_batches = micro_batches});
}

TEST_F(ZeroTest, QuantizedGathersHandOutEachBlocksRoundTrip) {
  for (int micro_batches : {1, 3})
    run_steps({.stage = 3, .quantized = true, .micro_batches = micro_batches});
}

TEST_F(ZeroTest, HybridShardingAveragesOverEveryRank) {
  for (int stage : {2, 3})
    for (int micro_batches : {1, 3})
      run_steps({.stage = stage, .hybrid = true, .micro_batches = micro_batches});
  run_steps({.stage = 3, .quantized = true, .hybrid = true});
}

// The quantized gather is not the identity: with blocks of varied magnitude, some parameter the
// hooks hand out differs from the master copy (so the test above can tell the two paths apart).
TEST_F(ZeroTest, QuantizedGatherDiffersFromTheExactOne) {
  Comm world = comm_world();
  const std::vector<BucketRange> groups = groups_of(kGroupSizes);
  const size_t total = total_of(groups);
  std::vector<float> full(total);
  for (size_t i = 0; i < total; ++i) full[i] = 0.001f * float(i % 97) + 1.0f / float(i + 3);
  Zero z;
  zero_create(z, {.stage = 3, .quantized_gather = true}, world, nullptr, groups, total, nullptr,
              nullptr);
  zero_load_params(z, full.data());
  size_t differ = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    float* ignored = nullptr;
    const float* got = zero_use_params(z, g, &ignored);
    const std::vector<float> want = expected_group(full, groups[g], world.size, true);
    EXPECT_TRUE(same_floats(got, want.data(), groups[g].size())) << "group " << g;
    for (size_t i = 0; i < groups[g].size(); ++i) differ += got[i] != full[groups[g].begin + i];
  }
  zero_release_params(z);
  EXPECT_GT(differ, total / 2);
}

// Stage 3 prefetching: groups asked for in any order (forward, backward, skipping, repeating)
// come back right, and a release in the middle of a pass drops every copy.
TEST_F(ZeroTest, Stage3GathersTheRightGroupInAnyOrder) {
  Comm world = comm_world();
  const std::vector<BucketRange> groups = groups_of(kGroupSizes);
  const size_t total = total_of(groups);
  std::vector<float> full(total);
  for (size_t i = 0; i < total; ++i) full[i] = initial_param(i);
  Zero z;
  zero_create(z, {.stage = 3}, world, nullptr, groups, total, nullptr, nullptr);
  zero_load_params(z, full.data());
  const std::vector<size_t> order = {0, 1, 2, 3, 4, 3, 2, 1, 0, 2, 1, 3, 3, 1, 4, 0, 3, 1, 2};
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t g = order[k];
    float* ignored = nullptr;
    const float* got = zero_use_params(z, g, &ignored);
    EXPECT_TRUE(same_floats(got, full.data() + groups[g].begin, groups[g].size()))
        << "request " << k << ", group " << g;
    if (k == 9) {
      // New parameters, as after a step: once released, the hooks gather them.
      for (size_t i = 0; i < total; ++i) full[i] += 0.5f;
      zero_load_params(z, full.data());
    }
  }
  zero_release_params(z);
}

// Memory per rank: zero_memory equals zero.h's formulas with this world's ranks, printed by rank
// 0, and stages 1 and 2 hold less than the stage before. (Stage 3 trades the full parameters for a
// second set of working slots, each a whole group: with three layers it saves little or nothing at
// 2-4 ranks; tests/parallel/zero_test.cpp shows where it pays.)
TEST_F(ZeroTest, MemoryPerRankMatchesTheFormulas) {
  Comm world = comm_world();
  const size_t p = size_t(world.size);
  const std::vector<BucketRange> groups = groups_of({20, 64, 64, 64, 10});
  const size_t total = total_of(groups);
  size_t shard_total = 0, largest_layer = 0, largest = 0;
  for (const BucketRange& g : groups) {
    shard_total += ceil_div(g.size(), p);
    largest = std::max(largest, ceil_div(g.size(), p));
  }
  for (size_t g = 1; g + 1 < groups.size(); ++g)
    largest_layer = std::max(largest_layer, ceil_div(groups[g].size(), p));
  // One gradient (or parameter) slot set: the embedding's, the tail's and two rotating layer ones.
  const size_t slots = p * (ceil_div(groups.front().size(), p) + ceil_div(groups.back().size(), p) +
                            2 * largest_layer);
  std::vector<float> params(total), grads(total);
  size_t before = SIZE_MAX;
  for (int stage = 0; stage <= 3; ++stage) {
    Zero z;
    zero_create(z, {.stage = stage}, world, nullptr, groups, total, params.data(), grads.data());
    const ZeroMemory got = zero_memory(z);
    EXPECT_EQ(z.shard_total, shard_total);
    EXPECT_EQ(got.params, stage <= 2 ? total : shard_total) << "stage " << stage;
    // Stage 1: the model's full gradients and the blocks they are reduce-scattered into.
    const size_t grads_floats = stage == 0 ? total : stage == 1 ? total + shard_total : shard_total;
    EXPECT_EQ(got.grads, grads_floats) << "stage " << stage;
    EXPECT_EQ(got.optimizer, stage == 0 ? 2 * total : 2 * shard_total) << "stage " << stage;
    const size_t working = stage <= 1 ? 0 : stage == 2 ? slots + largest : 2 * slots + largest;
    EXPECT_EQ(got.working, working) << "stage " << stage;
    const std::string line = zero_memory_line(z);
    if (world.rank == 0) std::printf("[ memory   ] %s\n", line.c_str());
    EXPECT_NE(line.find("ZeRO-" + std::to_string(stage) + " over " + std::to_string(p) + " ranks"),
              std::string::npos)
        << line;
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%.3f of plain DP",
                  double(got.total()) / (4.0 * total));
    EXPECT_NE(line.find(fraction), std::string::npos) << line;
    if (stage < 3) {
      EXPECT_LT(got.total(), before) << "stage " << stage;
    }
    before = got.total();
  }
}

// Every element of a range belongs to exactly one rank's shard ranges, at the shard position
// zero_take_block put it; blocks gathered back give the buffer (plain and hybrid shards).
TEST_F(ZeroTest, ShardRangesCoverEachElementOnceAndBlocksRoundTrip) {
  for (bool hybrid : {false, true}) {
    SCOPED_TRACE(hybrid ? "hybrid" : "plain");
    Comms comms;
    comms_make(comms, hybrid);
    Comm& shard = *comms.shard_comm();
    const std::vector<BucketRange> groups = groups_of(kGroupSizes);
    const size_t total = total_of(groups);
    std::vector<float> full(total), params(total);
    for (size_t i = 0; i < total; ++i) full[i] = float(i + 1);
    Zero z;
    zero_create(z, {.stage = 2}, shard, comms.replica_comm(), groups, total, params.data(),
                nullptr);
    std::vector<float> block(z.shard_total, -1.0f);
    zero_take_block(z, full.data(), block.data());
    for (const ZeroGroup& g : z.groups) {
      const BucketRange b = even_block(g.range.size(), shard.size, shard.rank);
      for (size_t j = b.size(); j < g.shard_floats; ++j)
        EXPECT_EQ(block[g.shard_offset + j], 0.0f) << "padding";
    }
    const std::vector<std::pair<size_t, size_t>> ranges = {
        {0, total}, {0, 5}, {30, 60}, {36, 2}, {87, 64}, {170, 7}, {176, 1}, {100, 0}};
    for (auto [offset, numel] : ranges) {
      std::vector<float> count(total, 0.0f);
      size_t previous_end = 0;
      for (const ShardRange& r : zero_shard_ranges(z, offset, numel)) {
        EXPECT_GT(r.numel, 0u);
        EXPECT_GE(r.full_offset, offset);
        EXPECT_LE(r.full_offset + r.numel, offset + numel);
        EXPECT_GE(r.full_offset, previous_end) << "ranges in order, apart";
        EXPECT_LE(r.offset + r.numel, z.shard_total);
        previous_end = r.full_offset + r.numel;
        for (size_t j = 0; j < r.numel; ++j) {
          EXPECT_EQ(block[r.offset + j], full[r.full_offset + j])
              << "shard position " << r.offset + j;
          count[r.full_offset + j] += 1.0f;
        }
      }
      all_reduce_sum(shard, count);
      for (size_t i = 0; i < total; ++i) {
        const bool inside = i >= offset && i < offset + numel;
        EXPECT_EQ(count[i], inside ? 1.0f : 0.0f)
            << "range (" << offset << ", " << numel << "), element " << i;
      }
    }
    std::vector<float> back(total, -1.0f);
    zero_gather_full(z, block.data(), back.data());
    EXPECT_TRUE(same_floats(back.data(), full.data(), total));
    comms_free(comms);
  }
}

// Stages 0-1 reduce groups in the order backward finishes them; another order is an error on every
// rank (before anything is sent).
TEST_F(ZeroTest, GradientsFinishedOutOfOrderAreAnError) {
  Comm world = comm_world();
  if (world.size == 1) GTEST_SKIP() << "one rank reduces nothing";
  const std::vector<BucketRange> groups = groups_of(kGroupSizes);
  const size_t total = total_of(groups);
  std::vector<float> params(total), grads(total);
  for (int stage : {0, 1}) {
    Zero z;
    zero_create(z, {.stage = stage}, world, nullptr, groups, total, params.data(), grads.data());
    zero_begin_step(z);
    z.last_micro_batch = true;
    try {
      zero_grads_done(z, 0);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("out of order"), std::string::npos) << e.what();
    }
  }
}

// Once backward has reported every group, zero_finish_grads has nothing left to reduce-scatter:
// each group's gradients were reduced when its grads_done came, the embedding's and the tail's
// (which keep their buffers) included, once per micro-batch and not again at the end.
TEST_F(ZeroTest, FinishGradsSendsNothingWhenEveryGroupWasReported) {
  Comm world = comm_world();
  const std::vector<BucketRange> groups = groups_of(kGroupSizes);
  const size_t total = total_of(groups), G = groups.size();
  std::vector<float> params(total, 0.0f), grads(total, 0.0f);
  for (int stage = 1; stage <= 3; ++stage) {
    Zero z;
    zero_create(z, {.stage = stage}, world, nullptr, groups, total, params.data(), grads.data());
    zero_load_params(z, params.data());
    zero_begin_step(z);
    uint64_t per_micro_batch = 0;
    for (int micro = 0; micro < 2; ++micro) {
      const uint64_t before = world.bytes.reduce_scatter;
      for (size_t g = 0; g < G; ++g) {
        float* ignored = nullptr;
        zero_use_params(z, g, &ignored);
      }
      z.last_micro_batch = micro == 1;
      z.backward = true;
      for (size_t g = G; g-- > 0;) {
        float* group_grads = nullptr;
        zero_use_params(z, g, &group_grads);
        group_grads[0] += 1.0f;
        zero_grads_done(z, g);
      }
      z.backward = false;
      // Stage 1 reduces after the last micro-batch only, stages 2-3 after each, the same bytes.
      const uint64_t sent = world.bytes.reduce_scatter - before;
      if (stage >= 2 || micro == 1) {
        EXPECT_GT(sent, 0u) << "stage " << stage << ", micro-batch " << micro;
      } else {
        EXPECT_EQ(sent, 0u) << "stage 1 sent before the last micro-batch";
      }
      if (stage >= 2 && micro == 1) {
        EXPECT_EQ(sent, per_micro_batch) << "stage " << stage;
      }
      per_micro_batch = sent;
    }
    const uint64_t before = world.bytes.reduce_scatter;
    zero_finish_grads(z);
    EXPECT_EQ(world.bytes.reduce_scatter - before, 0u) << "stage " << stage;
    // Both micro-batches counted: in the model's full buffer (stage 1) or the blocks (2-3).
    float first = 0;  // element 0 of the embedding group: rank 0's block
    if (world.rank == 0) first = zero_grads(z)[0];
    all_reduce_sum(world, std::span(&first, 1));
    EXPECT_EQ(first, 2.0f) << "stage " << stage;
    zero_finish_step(z);
  }
}

}  // namespace
}  // namespace hibari
