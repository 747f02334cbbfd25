// parallel/dp_buckets.h — data-parallel gradient averaging over a flat gradient buffer, bucket by
// bucket while backward still runs (Megatron's start_grad_sync / finish_grad_sync, PyTorch DDP's
// buckets).
//
// The buffer holds the gradients in parameter order (embedding first, head last); backward
// produces them from the end. So buckets are cut from the END of the buffer: bucket 0 is the last
// bucket_floats elements, bucket 1 the ones before it, ..., and the highest-numbered bucket (at the
// front, the embedding) may be shorter. Buckets become ready in the order 0, 1, 2, ...
//
// Use per step, on every rank of the dp communicator:
//     dp_bucket_ready(buckets, 0); ...; dp_bucket_ready(buckets, n - 1);   // as backward goes
//     dp_finish(buckets);                                                  // grads = mean over dp
// Every rank must start the buckets in the same order (non-blocking collectives on one
// communicator are matched by order); hibari fixes that order as 0, 1, 2, ... and rejects another.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "parallel/comm.h"

namespace hibari {

// 25 MB, the default of PyTorch DDP (bucket_cap_mb=25) and close to Megatron's.
inline constexpr size_t kDefaultBucketBytes = size_t(25) * 1000 * 1000;

// Pure arithmetic over a buffer of n floats cut into buckets of bucket_floats (>= 1).
size_t dp_bucket_count(size_t n, size_t bucket_floats);
BucketRange dp_bucket_range(size_t n, size_t bucket_floats, size_t b);

struct DpBuckets {
  Comm* comm = nullptr;               // the dp communicator (must outlive this)
  std::span<float> grads;             // the whole flat gradient buffer of this rank
  size_t bucket_floats = 0;           // elements per bucket (the front bucket may hold fewer)
  size_t started = 0;                 // buckets 0 .. started-1 are in flight this step
  std::vector<CommRequest> requests;  // one per bucket
};

// bucket_bytes is rounded down to whole floats (at least one).
DpBuckets dp_buckets_make(Comm& dp, std::span<float> grads,
                          size_t bucket_bytes = kDefaultBucketBytes);
size_t dp_bucket_count(const DpBuckets& buckets);

// Bucket b's gradients are final on this rank: start their all-reduce. b must be the next bucket
// (0, 1, 2, ...). Also lets the buckets already in flight progress.
void dp_bucket_ready(DpBuckets& buckets, size_t b);
// Starts the buckets not yet started, waits for all, and scales the buffer by 1/dp: afterwards
// every rank holds the mean gradient, with the same bits. Resets for the next step.
void dp_finish(DpBuckets& buckets);

}  // namespace hibari
