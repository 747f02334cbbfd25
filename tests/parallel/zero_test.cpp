// parallel/zero.h in one process: memory per rank against zero.h's formulas, shard ranges and
// blocks for every rank of p-rank shards, a step on a 1-rank world at every stage, and the errors.
//
// zero_create, zero_memory, zero_memory_line, zero_shard_ranges and zero_take_block read only the
// shard communicator's rank and size, so a Comm with those fields set (and no MPI communicator)
// stands in for each rank of a p-rank shard here; what communicates is tested under mpirun
// (tests/parallel/multiprocess/zero_test.cpp).
#include "parallel/zero.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/comm.h"
#include "parallel/quant.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

using test::error_of;

// Rank r of a p-rank communicator, for the calls that only read rank and size.
Comm rank_of(int p, int r) {
  Comm c;
  c.name = "simulated";
  c.size = p;
  c.rank = r;
  return c;
}

std::vector<BucketRange> groups_of(const std::vector<size_t>& sizes) {
  std::vector<BucketRange> groups;
  size_t begin = 0;
  for (size_t n : sizes) {
    groups.push_back({begin, begin + n});
    begin += n;
  }
  return groups;
}

size_t ceil_div(size_t n, size_t p) { return (n + p - 1) / p; }

// An embedding, three layers and a tail: 1000 floats, layers of 4096, 4097 and 4095 (none
// divisible by 3, one odd), a 301-float tail.
const std::vector<size_t> kModel = {1000, 4096, 4097, 4095, 301};

struct Expected {
  size_t shard_total = 0;
  ZeroMemory memory;
};

// zero.h's table, in floats per rank: parameters full at 0-2, blocks at 3; gradients full at 0,
// full and blocks at 1, blocks at 2-3; m and v full at 0, blocks at 1-3; working buffers (stages
// 2-3) one gradient slot each for the embedding and the tail and two rotating layer slots, each p
// blocks of its largest group, plus one block for the reduce-scatter result, and at stage 3 a
// second set of slots for the gathered parameters.
Expected expected_memory(const std::vector<size_t>& sizes, size_t p, int stage) {
  Expected e;
  size_t total = 0, largest = 0, largest_layer = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t block = ceil_div(sizes[i], p);
    total += sizes[i];
    e.shard_total += block;
    largest = std::max(largest, block);
    if (i > 0 && i + 1 < sizes.size()) largest_layer = std::max(largest_layer, block);
  }
  const size_t first = ceil_div(sizes.front(), p), last = ceil_div(sizes.back(), p);
  const size_t slots = sizes.size() == 1 ? p * first : p * (first + last + 2 * largest_layer);
  const size_t shard = e.shard_total;
  e.memory.params = stage <= 2 ? total : shard;
  e.memory.grads = stage == 0 ? total : stage == 1 ? total + shard : shard;
  e.memory.optimizer = stage == 0 ? 2 * total : 2 * shard;
  e.memory.working = stage <= 1 ? 0 : stage == 2 ? slots + largest : 2 * slots + largest;
  return e;
}

double fraction(const ZeroMemory& m, size_t total) { return double(m.total()) / (4.0 * total); }

// Every rank of p (the same on each: blocks are padded to the same size), every stage, against the
// formulas; the memory line says the stage, the ranks and the fraction of plain DP.
TEST(ZeroMemory, EqualsTheFormulasOnEveryRank) {
  const std::vector<BucketRange> groups = groups_of(kModel);
  const size_t total = groups.back().end;
  std::vector<float> params(total), grads(total);
  for (int p : {1, 2, 3, 4, 5, 8, 16}) {
    for (int stage = 0; stage <= 3; ++stage) {
      const Expected e = expected_memory(kModel, size_t(p), stage);
      for (int r = 0; r < p; ++r) {
        SCOPED_TRACE(testing::Message() << "p=" << p << " rank " << r << " stage " << stage);
        Comm shard = rank_of(p, r);
        Zero z;
        zero_create(z, {.stage = stage}, shard, nullptr, groups, total, params.data(),
                    grads.data());
        EXPECT_EQ(z.shard_total, e.shard_total);
        const ZeroMemory m = zero_memory(z);
        EXPECT_EQ(m.params, e.memory.params);
        EXPECT_EQ(m.grads, e.memory.grads);
        EXPECT_EQ(m.optimizer, e.memory.optimizer);
        EXPECT_EQ(m.working, e.memory.working);
        EXPECT_EQ(zero_state_floats(z), stage == 0 ? total : e.shard_total);
        if (r > 0) continue;
        const std::string line = zero_memory_line(z);
        const std::string ranks = " over " + std::to_string(p) + (p == 1 ? " rank:" : " ranks:");
        EXPECT_EQ(line.rfind("ZeRO-" + std::to_string(stage) + ranks, 0), 0u) << line;
        char share[48];
        std::snprintf(share, sizeof share, "%.3f of plain DP's", fraction(m, total));
        EXPECT_NE(line.find(share), std::string::npos) << line;
        EXPECT_EQ(line.find('\n'), std::string::npos);
      }
    }
  }
}

// The numbers issue 6 asks for, on 4 ranks: shard_total = sum of ceil(n/4) = 250 + 1024 + 1025 +
// 1024 + 76 = 3399 of 13589 floats, and each stage's share of plain DP's 4 x 13589.
TEST(ZeroMemory, FourRanksByHand) {
  const std::vector<BucketRange> groups = groups_of(kModel);
  const size_t total = 13589, shard_total = 3399;
  ASSERT_EQ(groups.back().end, total);
  std::vector<float> params(total), grads(total);
  Comm shard = rank_of(4, 1);
  std::vector<ZeroMemory> m(4);
  for (int stage = 0; stage <= 3; ++stage) {
    Zero z;
    zero_create(z, {.stage = stage}, shard, nullptr, groups, total, params.data(), grads.data());
    m[size_t(stage)] = zero_memory(z);
    std::printf("[ memory   ] %s\n", zero_memory_line(z).c_str());
    EXPECT_EQ(z.shard_total, shard_total);
  }
  // Stage 0: plain DP, everything full.
  EXPECT_EQ(m[0].total(), 4 * total);
  // Stage 1: the moments shrink to blocks; the gradients gain the blocks they are reduced into.
  EXPECT_EQ(m[1].optimizer, 2 * shard_total);
  EXPECT_EQ(m[1].total(), total + total + shard_total + 2 * shard_total);
  // Stage 2: the gradients are blocks, plus slots: 4 x (250 + 76 + 2 x 1025) + 1025.
  const size_t slots = 4 * (250 + 76 + 2 * 1025);
  EXPECT_EQ(m[2].working, slots + 1025);
  EXPECT_EQ(m[2].total(), total + shard_total + 2 * shard_total + slots + 1025);
  // Stage 3: the parameters are blocks, and a second set of slots holds the gathered ones.
  EXPECT_EQ(m[3].total(), 4 * shard_total + 2 * slots + 1025);
  EXPECT_NEAR(fraction(m[1], total), 0.6876, 1e-4);
  EXPECT_NEAR(fraction(m[2], total), 0.6313, 1e-4);
  EXPECT_NEAR(fraction(m[3], total), 0.6187, 1e-4);
  EXPECT_LT(m[1].total(), m[0].total());
  EXPECT_LT(m[2].total(), m[1].total());
  EXPECT_LT(m[3].total(), m[2].total());
}

// With many layers, each stage holds less than the one before, stage 3 included: its working
// slots are a few groups, its savings the whole parameter buffer less a block.
TEST(ZeroMemory, EachStageHoldsLessWithManyLayers) {
  std::vector<size_t> sizes = {1000};
  for (int l = 0; l < 24; ++l) sizes.push_back(4096 + size_t(l % 3));
  sizes.push_back(301);
  const std::vector<BucketRange> groups = groups_of(sizes);
  const size_t total = groups.back().end;
  std::vector<float> params(total), grads(total);
  for (int p : {4, 8, 16}) {
    Comm shard = rank_of(p, p - 1);
    double before = 2.0;
    for (int stage = 0; stage <= 3; ++stage) {
      Zero z;
      zero_create(z, {.stage = stage}, shard, nullptr, groups, total, params.data(), grads.data());
      const double share = fraction(zero_memory(z), total);
      EXPECT_LT(share, before) << "p=" << p << " stage " << stage;
      before = share;
    }
    // Stage 3's share approaches the 1/p of everything plus its working slots.
    const Expected e = expected_memory(sizes, size_t(p), 3);
    EXPECT_NEAR(before, double(4 * e.shard_total + e.memory.working) / (4.0 * total), 1e-12);
    EXPECT_LT(before, 1.5 / p + 0.1) << "p=" << p;
  }
}

// Hybrid and quantized runs hold what the plain ones hold (the shard size decides), and the line
// names the replicas.
TEST(ZeroMemory, HybridAndQuantizedFollowTheShardSize) {
  const std::vector<BucketRange> groups = groups_of(kModel);
  const size_t total = groups.back().end;
  std::vector<float> params(total);
  Comm shard = rank_of(4, 3), replica = rank_of(2, 1);
  for (int stage : {2, 3}) {
    const Expected e = expected_memory(kModel, 4, stage);
    Zero z;
    zero_create(z, {.stage = stage, .quantized_gather = stage == 3}, shard, &replica, groups, total,
                params.data(), nullptr);
    EXPECT_EQ(z.dp_size, 8);
    // int8 payloads (stage 3): per parameter slot, its floats' bytes quantized to send and p times
    // that to receive, counted in floats' room.
    size_t payload = 0;
    for (const ZeroSlot& s : z.param_slots) {
      size_t floats = s.data.size() / 4;
      payload += (quantized_bytes(floats) * 5 + 3) / 4;
    }
    EXPECT_EQ(zero_memory(z).total(), e.memory.total() + payload) << "stage " << stage;
    const std::string line = zero_memory_line(z);
    EXPECT_NE(line.find(" over 4 ranks x 2 replicas:"), std::string::npos) << line;
  }
}

// Across the p ranks, zero_shard_ranges of a range name each of its elements exactly once, at the
// shard position where zero_take_block put it; blocks laid side by side are the buffer again.
TEST(ZeroShardRanges, CoverEachElementOnceAtItsBlockPosition) {
  const std::vector<size_t> sizes = {37, 50, 64, 23, 3, 1};
  const std::vector<BucketRange> groups = groups_of(sizes);
  const size_t total = groups.back().end;  // 178
  std::vector<float> full(total), params(total);
  for (size_t i = 0; i < total; ++i) full[i] = float(i + 1);
  const std::vector<std::pair<size_t, size_t>> ranges = {{0, total}, {0, 1},   {30, 60}, {36, 2},
                                                         {87, 64},   {170, 8}, {177, 1}, {100, 0}};
  for (int p : {1, 2, 3, 4, 5, 7, 64}) {
    std::vector<std::vector<int>> count(ranges.size(), std::vector<int>(total, 0));
    std::vector<float> rebuilt(total, 0.0f);
    for (int r = 0; r < p; ++r) {
      SCOPED_TRACE(testing::Message() << "p=" << p << " rank " << r);
      Comm shard = rank_of(p, r);
      Zero z;
      zero_create(z, {.stage = 1}, shard, nullptr, groups, total, params.data(), params.data());
      std::vector<float> block(z.shard_total, -1.0f);
      zero_take_block(z, full.data(), block.data());
      for (const ZeroGroup& g : z.groups) {
        const BucketRange b = even_block(g.range.size(), p, r);
        EXPECT_EQ(g.shard_floats, ceil_div(g.range.size(), size_t(p)));
        for (size_t j = 0; j < g.shard_floats; ++j) {
          const float want = j < b.size() ? full[g.range.begin + b.begin + j] : 0.0f;
          EXPECT_EQ(block[g.shard_offset + j], want) << "group at " << g.range.begin << ", " << j;
          if (j < b.size()) rebuilt[g.range.begin + b.begin + j] = block[g.shard_offset + j];
        }
      }
      for (size_t k = 0; k < ranges.size(); ++k) {
        const auto [offset, numel] = ranges[k];
        size_t previous_end = 0;
        for (const ShardRange& s : zero_shard_ranges(z, offset, numel)) {
          EXPECT_GT(s.numel, 0u);
          EXPECT_GE(s.full_offset, std::max(offset, previous_end));
          EXPECT_LE(s.full_offset + s.numel, offset + numel);
          EXPECT_LE(s.offset + s.numel, z.shard_total);
          previous_end = s.full_offset + s.numel;
          for (size_t j = 0; j < s.numel; ++j) {
            EXPECT_EQ(block[s.offset + j], full[s.full_offset + j]);
            ++count[k][s.full_offset + j];
          }
        }
      }
    }
    EXPECT_EQ(rebuilt, full) << "p=" << p;
    for (size_t k = 0; k < ranges.size(); ++k) {
      const auto [offset, numel] = ranges[k];
      for (size_t i = 0; i < total; ++i) {
        ASSERT_EQ(count[k][i], i >= offset && i < offset + numel ? 1 : 0)
            << "p=" << p << " range (" << offset << ", " << numel << ") element " << i;
      }
    }
  }
}

// One rank: zero_gather_full of the blocks zero_take_block made gives the buffer back.
TEST(ZeroShardRanges, BlocksRoundTripOnOneRank) {
  Comm world = comm_world();
  const std::vector<BucketRange> groups = groups_of({37, 50, 3});
  const size_t total = groups.back().end;
  std::vector<float> full(total), params(total), back(total, 0.0f);
  for (size_t i = 0; i < total; ++i) full[i] = 0.25f * float(i) - 3.0f;
  Zero z;
  zero_create(z, {.stage = 3}, world, nullptr, groups, total, nullptr, nullptr);
  std::vector<float> block(z.shard_total);
  zero_take_block(z, full.data(), block.data());
  EXPECT_EQ(block, full);
  zero_gather_full(z, block.data(), back.data());
  EXPECT_EQ(back, full);
}

float initial_param(size_t i) { return float(int((i * 5) % 13) - 6) / 8.0f; }
float grad_value(int micro, size_t i) {
  return float(int((i * 3 + size_t(micro) * 7) % 17) - 8) / 8.0f;
}

// A step on a 1-rank world at each stage, with 2 micro-batches and the hooks in the model's order:
// the gradients are the micro-batches' sum (one replica: nothing to average), their squares are
// exact, and an update of zero_params through zero_shard_ranges is what the hooks hand out next.
TEST(ZeroOneRank, StepAtEveryStage) {
  Comm world = comm_world();
  ASSERT_EQ(world.size, 1);
  const std::vector<size_t> sizes = {37, 50, 64, 23, 3};
  const std::vector<BucketRange> groups = groups_of(sizes);
  const size_t total = groups.back().end, G = groups.size();
  for (int stage = 0; stage <= 3; ++stage) {
    SCOPED_TRACE(testing::Message() << "stage " << stage);
    std::vector<float> params(total), grads(total, 0.0f), want(total), sum(total, 0.0f);
    for (size_t i = 0; i < total; ++i) params[i] = initial_param(i);
    Zero z;
    zero_create(z, {.stage = stage}, world, nullptr, groups, total,
                stage <= 2 ? params.data() : nullptr, stage <= 1 ? grads.data() : nullptr);
    zero_load_params(z, params.data());
    zero_begin_step(z);
    for (int micro = 0; micro < 2; ++micro) {
      for (size_t g = 0; g < G; ++g) {
        float* ignored = nullptr;
        const float* got = zero_use_params(z, g, &ignored);
        EXPECT_EQ(std::vector<float>(got, got + groups[g].size()),
                  std::vector<float>(params.begin() + ptrdiff_t(groups[g].begin),
                                     params.begin() + ptrdiff_t(groups[g].end)));
      }
      z.last_micro_batch = micro == 1;
      z.backward = true;
      for (size_t g = G; g-- > 0;) {
        float* to = nullptr;
        zero_use_params(z, g, &to);
        ASSERT_NE(to, nullptr);
        for (size_t i = groups[g].begin; i < groups[g].end; ++i) {
          to[i - groups[g].begin] += grad_value(micro, i);
          sum[i] += grad_value(micro, i);
        }
        zero_grads_done(z, g);
      }
      z.backward = false;
    }
    zero_finish_grads(z);
    std::span<float> got = zero_grads(z);
    ASSERT_EQ(got.size(), total);  // one rank: a block is the whole group, no padding
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()), sum);
    double squares = 0;
    for (float s : sum) squares += double(s) * double(s);
    EXPECT_EQ(zero_grad_sum_squares(z, {}), squares);
    const WeightedRange none{.offset = 40, .numel = 100, .weight = 0.0};
    double outside = 0;
    for (size_t i = 0; i < total; ++i)
      if (i < 40 || i >= 140) outside += double(sum[i]) * double(sum[i]);
    EXPECT_EQ(zero_grad_sum_squares(z, std::span(&none, 1)), outside);
    // p -= g / 2, range by range, in each buffer's own coordinates.
    float* p = zero_params(z);
    const float* g = zero_grads(z).data();
    for (const ShardRange& r : zero_shard_ranges(z, 0, total)) {
      for (size_t j = 0; j < r.numel; ++j) {
        p[(zero_params_sharded(z) ? r.offset : r.full_offset) + j] -=
            0.5f * g[(zero_grads_sharded(z) ? r.offset : r.full_offset) + j];
      }
    }
    zero_finish_step(z);
    for (size_t i = 0; i < total; ++i) want[i] = initial_param(i) - 0.5f * sum[i];
    for (size_t gi = 0; gi < G; ++gi) {
      float* ignored = nullptr;
      const float* now = zero_use_params(z, gi, &ignored);
      EXPECT_EQ(std::vector<float>(now, now + groups[gi].size()),
                std::vector<float>(want.begin() + ptrdiff_t(groups[gi].begin),
                                   want.begin() + ptrdiff_t(groups[gi].end)));
    }
    zero_release_params(z);
  }
}

// Stage 3 with one group (it is both the embedding and the tail) and with two (no layers), with
// and without quantized gathers: the hooks hand out the parameters, or their int8 round trip.
TEST(ZeroOneRank, Stage3WithOneOrTwoGroups) {
  Comm world = comm_world();
  for (const std::vector<size_t>& sizes : {std::vector<size_t>{130}, std::vector<size_t>{70, 9}}) {
    for (bool quantized : {false, true}) {
      const std::vector<BucketRange> groups = groups_of(sizes);
      const size_t total = groups.back().end;
      std::vector<float> full(total);
      for (size_t i = 0; i < total; ++i) full[i] = 0.01f * float(i) + 1.0f / float(i + 2);
      std::vector<float> want = full;
      if (quantized) {
        for (const BucketRange& g : groups) {
          std::vector<uint8_t> packed(quantized_bytes(g.size()));
          std::span<float> part(want.data() + g.begin, g.size());
          quantize_blockwise(packed, part);
          dequantize_blockwise(part, packed);
        }
        EXPECT_NE(want, full);
      }
      Zero z;
      zero_create(z, {.stage = 3, .quantized_gather = quantized}, world, nullptr, groups, total,
                  nullptr, nullptr);
      zero_load_params(z, full.data());
      for (size_t g : {size_t(0), groups.size() - 1, size_t(0)}) {
        float* grads = nullptr;
        const float* got = zero_use_params(z, g, &grads);
        EXPECT_NE(grads, nullptr) << "pinned groups always have a gradient buffer";
        EXPECT_EQ(std::vector<float>(got, got + groups[g].size()),
                  std::vector<float>(want.begin() + ptrdiff_t(groups[g].begin),
                                     want.begin() + ptrdiff_t(groups[g].end)))
            << sizes.size() << " groups, quantized " << quantized;
      }
      zero_release_params(z);
    }
  }
}

// A message from zero_create with these arguments.
std::string create_error(const ZeroOptions& options, Comm* replica,
                         const std::vector<BucketRange>& groups, size_t total, bool with_params,
                         bool with_grads) {
  static std::vector<float> buffer(1000);
  Comm shard = rank_of(2, 0);
  return error_of([&] {
    Zero z;
    zero_create(z, options, shard, replica, groups, total, with_params ? buffer.data() : nullptr,
                with_grads ? buffer.data() : nullptr);
  });
}

testing::AssertionResult one_line_with(const std::string& msg, const std::string& phrase) {
  if (msg.empty()) return testing::AssertionFailure() << "no error (wanted '" << phrase << "')";
  if (msg.find(phrase) == std::string::npos || msg.find('\n') != std::string::npos)
    return testing::AssertionFailure() << "wanted one line with '" << phrase << "', got: " << msg;
  return testing::AssertionSuccess();
}

TEST(ZeroErrors, CreateRejectsWhatCannotRun) {
  const std::vector<BucketRange> groups = groups_of({10, 20, 5});
  Comm replica = rank_of(2, 0);
  EXPECT_TRUE(one_line_with(create_error({.stage = 4}, nullptr, groups, 35, true, true),
                            "ZeRO stage 4 does not exist"));
  EXPECT_TRUE(one_line_with(create_error({.stage = -1}, nullptr, groups, 35, true, true),
                            "ZeRO stage -1 does not exist"));
  for (int stage : {0, 1, 2}) {
    EXPECT_TRUE(one_line_with(
        create_error({.stage = stage, .quantized_gather = true}, nullptr, groups, 35, true, true),
        "quantized all-gather applies to ZeRO stage 3"))
        << "stage " << stage;
  }
  for (int stage : {0, 1}) {
    EXPECT_TRUE(one_line_with(create_error({.stage = stage}, &replica, groups, 35, true, true),
                              "hybrid sharding needs ZeRO stage 2 or 3"))
        << "stage " << stage;
  }
  EXPECT_TRUE(
      one_line_with(create_error({.stage = 2}, nullptr, {}, 0, true, true), "no parameter groups"));
  const std::string cover = "parameter groups must cover";
  // A gap, an overlap, a start past 0, a group ending before it begins, too short, too long.
  EXPECT_TRUE(one_line_with(
      create_error({.stage = 2}, nullptr, {{0, 10}, {11, 35}}, 35, true, true), cover));
  EXPECT_TRUE(one_line_with(create_error({.stage = 2}, nullptr, {{0, 10}, {9, 35}}, 35, true, true),
                            cover));
  EXPECT_TRUE(one_line_with(create_error({.stage = 2}, nullptr, {{1, 35}}, 35, true, true), cover));
  EXPECT_TRUE(one_line_with(
      create_error({.stage = 2}, nullptr, {{0, 10}, {10, 5}, {5, 35}}, 35, true, true), cover));
  EXPECT_TRUE(one_line_with(create_error({.stage = 2}, nullptr, groups, 36, true, true), cover));
  EXPECT_TRUE(one_line_with(create_error({.stage = 2}, nullptr, groups, 34, true, true), cover));
  for (int stage : {0, 1, 2}) {
    EXPECT_TRUE(one_line_with(create_error({.stage = stage}, nullptr, groups, 35, false, true),
                              "need the full parameters"))
        << "stage " << stage;
  }
  for (int stage : {0, 1}) {
    EXPECT_TRUE(one_line_with(create_error({.stage = stage}, nullptr, groups, 35, true, false),
                              "need the full gradients"))
        << "stage " << stage;
  }
  // What each stage needs is enough.
  EXPECT_EQ(
      create_error({.stage = 3, .quantized_gather = true}, &replica, groups, 35, false, false), "");
  EXPECT_EQ(create_error({.stage = 2}, &replica, groups, 35, true, false), "");
}

// Hook misuse on a 1-rank world: a group that does not exist, gradients finished without a
// buffer, and a third layer's backward while two layers' gradients are still unreduced.
TEST(ZeroErrors, HooksRejectMisuse) {
  Comm world = comm_world();
  const std::vector<BucketRange> groups = groups_of({10, 20, 20, 20, 5});
  std::vector<float> params(75);
  for (int stage : {2, 3}) {
    SCOPED_TRACE(testing::Message() << "stage " << stage);
    Zero z;
    zero_create(z, {.stage = stage}, world, nullptr, groups, 75, params.data(), nullptr);
    zero_load_params(z, params.data());
    zero_begin_step(z);
    float* grads = nullptr;
    EXPECT_TRUE(
        one_line_with(error_of([&] { zero_use_params(z, 5, &grads); }), "parameter group 5 of 5"));
    EXPECT_TRUE(one_line_with(error_of([&] { zero_grads_done(z, 2); }),
                              "gradients of group 2 finished without a buffer"));
    z.backward = true;
    zero_use_params(z, 3, &grads);
    zero_use_params(z, 2, &grads);
    EXPECT_TRUE(one_line_with(error_of([&] { zero_use_params(z, 1, &grads); }),
                              "were not reduced before its buffer was reused"));
    z.backward = false;
    zero_release_params(z);
  }
}

}  // namespace
}  // namespace hibari
