// parallel/dp_buckets.cpp — see dp_buckets.h.
#include "parallel/dp_buckets.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace hibari {

size_t dp_bucket_count(size_t n, size_t bucket_floats) {
  return (n + bucket_floats - 1) / bucket_floats;
}

BucketRange dp_bucket_range(size_t n, size_t bucket_floats, size_t b) {
  // Counted from the end: bucket b ends b whole buckets before n.
  size_t end = n - std::min(n, b * bucket_floats);
  size_t begin = end - std::min(end, bucket_floats);
  return {begin, end};
}

DpBuckets dp_buckets_make(Comm& dp, std::span<float> grads, size_t bucket_bytes) {
  DpBuckets buckets;
  buckets.comm = &dp;
  buckets.grads = grads;
  buckets.bucket_floats = std::max<size_t>(1, bucket_bytes / sizeof(float));
  buckets.requests.resize(dp_bucket_count(grads.size(), buckets.bucket_floats));
  return buckets;
}

size_t dp_bucket_count(const DpBuckets& buckets) { return buckets.requests.size(); }

void dp_bucket_ready(DpBuckets& buckets, size_t b) {
  if (b != buckets.started) {
    fail("dp bucket " + std::to_string(b) + " ready when bucket " +
         std::to_string(buckets.started) +
         " was expected: buckets start in the order 0, 1, 2, ... on every rank (of " +
         std::to_string(dp_bucket_count(buckets)) + ")");
  }
  // Open MPI has no progress thread by default: a non-blocking all-reduce advances only inside
  // MPI calls, so each new bucket also pushes the ones already in flight.
  for (size_t i = 0; i < buckets.started; ++i) comm_test(buckets.requests[i]);
  BucketRange r = dp_bucket_range(buckets.grads.size(), buckets.bucket_floats, b);
  buckets.requests[b] =
      all_reduce_sum_start(*buckets.comm, buckets.grads.subspan(r.begin, r.end - r.begin));
  ++buckets.started;
}

void dp_finish(DpBuckets& buckets) {
  while (buckets.started < dp_bucket_count(buckets)) dp_bucket_ready(buckets, buckets.started);
  for (CommRequest& request : buckets.requests) comm_wait(request);
  buckets.started = 0;
  if (buckets.comm->size == 1) return;
  // Every rank holds the same sum and divides by the same number, so the means are equal too.
  // (A division, not a multiplication by 1/dp: for dp = 3 those differ in the last bit, and the
  // mean should be the sum / dp a reader would compute.)
  const float dp = float(buckets.comm->size);
  std::span<float> g = buckets.grads;
  for (size_t i = 0; i < g.size(); ++i) g[i] /= dp;
}

}  // namespace hibari
