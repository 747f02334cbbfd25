// parallel/dp_buckets.h and parallel/grid.h on 2, 3 and 4 processes.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "parallel/dp_buckets.h"
#include "parallel/grid.h"

namespace hibari {
namespace {

float g(int rank, int step, size_t i) {
  return 0.5f * float(int((rank * 11 + step * 3 + i * 5) % 31) - 15);
}

// Bucketed, overlapped averaging equals the plain sum / dp, bit for bit (the values are small
// multiples of 1/2, so every sum is exact, for any dp).
TEST(DpBuckets, BucketedAverageEqualsSumOverDp) {
  Comm world = comm_world();
  const size_t n = 1003;
  std::vector<float> grads(n);
  DpBuckets buckets = dp_buckets_make(world, grads, 64 * sizeof(float));
  ASSERT_EQ(dp_bucket_count(buckets), 16u);  // 15 full buckets and 43 floats at the front
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < n; ++i) grads[i] = g(world.rank, step, i);
    // As backward would: buckets become ready from the end while "computation" goes on; the
    // last few are left for dp_finish to start.
    for (size_t b = 0; b + 3 < dp_bucket_count(buckets); ++b) dp_bucket_ready(buckets, b);
    dp_finish(buckets);
    for (size_t i = 0; i < n; ++i) {
      float sum = 0;
      for (int r = 0; r < world.size; ++r) sum += g(r, step, i);
      ASSERT_EQ(grads[i], sum / float(world.size)) << "step " << step << " element " << i;
    }
  }
  // Bytes: an all-reduce of the whole buffer per step, by the ring formula per bucket.
  uint64_t per_step = 0;
  for (size_t b = 0; b < dp_bucket_count(buckets); ++b) {
    BucketRange r = dp_bucket_range(n, 64, b);
    per_step += 2 * (uint64_t(world.size - 1) * (r.end - r.begin) * 4 / uint64_t(world.size));
  }
  EXPECT_EQ(world.bytes.all_reduce, 3 * per_step);
}

// The members of each sub-communicator, gathered over it, are the world ranks grid_group names.
TEST(Grid, SubCommunicatorsHaveTheRightMembers) {
  Comm world = comm_world();
  for (GridSizes s : grid_layouts(world.size)) {
    SCOPED_TRACE(testing::Message() << "dp=" << s.dp << " tp=" << s.tp << " pp=" << s.pp);
    Grid grid = grid_make(world, s);
    EXPECT_EQ(grid.coord, grid_coord(world.rank, s));
    for (GridAxis axis : {GridAxis::dp, GridAxis::tp, GridAxis::pp}) {
      Comm& c = axis == GridAxis::dp ? grid.dp : axis == GridAxis::tp ? grid.tp : grid.pp;
      int at = axis == GridAxis::dp   ? grid.coord.dp
               : axis == GridAxis::tp ? grid.coord.tp
                                      : grid.coord.pp;
      EXPECT_EQ(c.rank, at);
      std::vector<float> mine{float(world.rank)}, members(size_t(c.size));
      all_gather(c, members, mine);
      std::vector<int> got(members.begin(), members.end());
      EXPECT_EQ(got, grid_group(world.rank, s, axis));
    }
    grid_free(grid);
  }
}

TEST(Grid, WrongSizesAreAnErrorOnEveryRank) {
  Comm world = comm_world();
  EXPECT_THROW(grid_make(world, {.dp = world.size, .tp = 2, .pp = 1}), Error);
}

}  // namespace
}  // namespace hibari
