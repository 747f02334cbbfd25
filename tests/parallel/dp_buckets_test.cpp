// parallel/dp_buckets.h: bucket arithmetic (cut from the end of the buffer), the start order, and
// the 1-rank average (the identity).
#include "parallel/dp_buckets.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/error_matchers.h"
#include "tests/parallel/mpi_environment.h"

namespace hibari {
namespace {

TEST(DpBuckets, RangesAreCutFromTheEnd) {
  EXPECT_EQ(dp_bucket_count(10, 4), 3u);
  EXPECT_EQ(dp_bucket_range(10, 4, 0), (BucketRange{6, 10}));
  EXPECT_EQ(dp_bucket_range(10, 4, 1), (BucketRange{2, 6}));
  EXPECT_EQ(dp_bucket_range(10, 4, 2), (BucketRange{0, 2}));  // the short one, at the front
  EXPECT_EQ(dp_bucket_count(12, 4), 3u);
  EXPECT_EQ(dp_bucket_range(12, 4, 2), (BucketRange{0, 4}));
  EXPECT_EQ(dp_bucket_count(3, 4), 1u);
  EXPECT_EQ(dp_bucket_range(3, 4, 0), (BucketRange{0, 3}));
  EXPECT_EQ(dp_bucket_count(0, 4), 0u);
}

TEST(DpBuckets, RangesTileTheBuffer) {
  for (size_t n : {1u, 7u, 64u, 1000u, 1001u}) {
    for (size_t bf : {1u, 3u, 64u, 5000u}) {
      size_t next_end = n;
      for (size_t b = 0; b < dp_bucket_count(n, bf); ++b) {
        BucketRange r = dp_bucket_range(n, bf, b);
        EXPECT_EQ(r.end, next_end);
        EXPECT_GT(r.end, r.begin);
        EXPECT_LE(r.end - r.begin, bf);
        next_end = r.begin;
      }
      EXPECT_EQ(next_end, 0u) << "n=" << n << " bucket=" << bf;
    }
  }
}

TEST(DpBuckets, DefaultIsTwentyFiveMegabytes) {
  Comm world = comm_world();
  std::vector<float> grads(100);
  DpBuckets buckets = dp_buckets_make(world, grads);
  EXPECT_EQ(buckets.bucket_floats, 6'250'000u);
  EXPECT_EQ(dp_bucket_count(buckets), 1u);
  EXPECT_EQ(dp_buckets_make(world, grads, 1).bucket_floats, 1u);  // never zero
}

TEST(DpBuckets, BucketsStartInOrder) {
  Comm world = comm_world();
  std::vector<float> grads(10, 1.0f);
  DpBuckets buckets = dp_buckets_make(world, grads, 4 * sizeof(float));
  std::string msg = test::error_of([&] { dp_bucket_ready(buckets, 1); });
  EXPECT_NE(msg.find("dp bucket 1 ready when bucket 0 was expected"), std::string::npos) << msg;
  dp_bucket_ready(buckets, 0);
  EXPECT_NE(test::error_of([&] { dp_bucket_ready(buckets, 0); }), "");
  dp_finish(buckets);
  EXPECT_EQ(buckets.started, 0u);
}

TEST(DpBuckets, OneRankAverageIsIdentity) {
  Comm world = comm_world();
  std::vector<float> grads(1001);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = float(i) * 0.125f - 7.0f;
  const std::vector<float> want = grads;
  DpBuckets buckets = dp_buckets_make(world, grads, 64 * sizeof(float));
  for (int step = 0; step < 2; ++step) {
    for (size_t b = 0; b < dp_bucket_count(buckets) / 2; ++b) dp_bucket_ready(buckets, b);
    dp_finish(buckets);  // starts the rest itself
    EXPECT_EQ(grads, want);
  }
}

}  // namespace
}  // namespace hibari
