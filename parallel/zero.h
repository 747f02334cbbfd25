// parallel/zero.h — data parallelism over flat buffers: plain DP and ZeRO stages 1, 2 and 3
// (DeepSpeed's ZeRO, Megatron's distributed optimizer), hybrid sharding (PLaMo-13B: ZeRO inside a
// group of ranks, plain data parallelism across groups) and int8-quantized parameter gathers.
//
// A rank's parameters are one flat buffer cut into groups (contiguous ranges: the embedding, each
// layer, the tail), the units in which parameters are gathered and gradients reduced. Each group
// is split over the `shard` communicator in even blocks (comm.h even_block: rank r holds
// [r ceil(n/p), (r+1) ceil(n/p))); a rank's shard buffers hold its block of every group, each
// padded to ceil(n/p) floats, one after the other.
//
//            full params   full grads     shard: master params, grads, AdamW m and v
//   stage 0  yes           yes            - (AdamW runs on the full buffers)
//   stage 1  yes           yes            yes  (grads all-reduced, then this rank's block copied)
//   stage 2  yes           working only   yes  (each group's grads reduce-scattered as backward
//                                               finishes it; the group's buffer is reused)
//   stage 3  working only  working only   yes  (groups gathered just before use, the next one
//                                               prefetched; the master copy is the shard)
// "Working" buffers: the embedding and tail groups keep one each (their gradients are written in
// the forward pass, by the fused head), layer groups share two that rotate. Memory per rank is
// reported by zero_memory and is checked against these formulas by the tests.
//
// Per step (the model calls zero_use_params / zero_grads_done through its hooks):
//   zero_begin_step -> forward/backward of each micro-batch -> zero_finish_grads (grads averaged
//   over all data-parallel ranks) -> clipping on zero_grads -> AdamW on the shard (or the full
//   buffers at stage 0) -> zero_finish_step (updated parameters back to every rank).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/quant.h"

namespace hibari {

struct ZeroOptions {
  int stage = 0;                  // 0 (plain DP), 1, 2 or 3
  bool quantized_gather = false;  // stage 3: gather parameters as int8 blocks (parallel/quant.h)
};

struct ZeroGroup {
  BucketRange range;    // in the rank's flat (unsharded) buffer
  size_t shard_floats;  // ceil(range.size() / shard size): this rank's block, padded
  size_t shard_offset;  // where the block starts in the shard buffers
};

// One working buffer: a group's gathered parameters or its not yet reduced gradients.
struct ZeroSlot {
  std::vector<float> data;  // shard size x shard_floats of the largest group it serves
  int group = -1;           // the group it holds (-1: free)
  uint64_t last_use = 0;
  bool gathering = false;  // a prefetch is in flight into `data` (request below)
  CommRequest request;
  std::vector<uint8_t> quant_send, quant_recv;  // quantized prefetch payloads
};

struct Zero {
  ZeroOptions options;
  Comm* shard = nullptr;    // ranks that split one replica's state (dp, or a node's dp ranks)
  Comm* replica = nullptr;  // hybrid: the ranks holding the same block in other groups (or null)
  int dp_size = 1;          // shard size x replica size: gradients are averaged over this many
  std::vector<ZeroGroup> groups;
  size_t total = 0;        // floats of the flat buffer
  size_t shard_total = 0;  // floats of each shard buffer

  // Stages 0-2: the model's full buffers (stage 2 uses full_params only).
  float* full_params = nullptr;
  float* full_grads = nullptr;
  // Stages 1-3: this rank's blocks.
  std::vector<float> params, grads;
  // Stages 2-3: working buffers. Slot e and t belong to the embedding and tail groups (first and
  // last group); the layer slots rotate.
  std::vector<ZeroSlot> param_slots, grad_slots;
  std::vector<float> reduced;  // one group's reduce-scatter result before it is accumulated
  QuantBuffers quant;
  std::vector<CommRequest> all_reduces;  // stages 0-1: one per group, started as backward goes
  size_t next_all_reduce = 0;            // groups are reduced in the order backward finishes them
  bool last_micro_batch = true;          // stages 0-1 reduce only after the last one
  bool backward = false;                 // set by the trainer around the backward pass
  uint64_t clock = 0;
  int last_group = -1;  // the group used before, to tell the direction for prefetching
};

// `groups` cover [0, total) in order. full_params / full_grads are the model's buffers (stage 3:
// both null; stage 2: full_grads null). With `replica` non-null the run is hybrid.
void zero_create(Zero& z, const ZeroOptions& options, Comm& shard, Comm* replica,
                 const std::vector<BucketRange>& groups, size_t total, float* full_params,
                 float* full_grads);

// Copies this rank's blocks out of a full flat buffer (the initial or loaded parameters), into
// z.params; stages 1-2 keep `full` as the model's buffer, stage 3 only needs the blocks.
void zero_load_params(Zero& z, const float* full);
// The same for an optimizer state: `full` (total floats) -> `shard` (shard_total floats).
void zero_take_block(const Zero& z, const float* full, float* shard);
// All blocks of a shard-laid-out buffer gathered into a full flat buffer (checkpoints). Collective
// over the shard communicator.
void zero_gather_full(Zero& z, const float* shard, float* full);

// Ranges (offset, numel) of the flat buffer -> the same elements in shard coordinates, clipped to
// this rank's blocks (AdamW's parameter ranges with their weight-decay flags).
struct ShardRange {
  size_t offset, numel;  // in shard coordinates
  size_t full_offset;    // where they start in the flat buffer
};
std::vector<ShardRange> zero_shard_ranges(const Zero& z, size_t offset, size_t numel);

void zero_begin_step(Zero& z);
// Hooks. use_params returns the group's parameters (laid out as the flat buffer's range) and sets
// *grads to the buffer its gradients are accumulated into.
float* zero_use_params(Zero& z, size_t group, float** grads);
void zero_grads_done(Zero& z, size_t group);
// Gradients averaged over every data-parallel rank: the full buffer (stage 0) or z.grads.
void zero_finish_grads(Zero& z);
// Sum of squares of one replica's averaged gradients: each element counted once (all-reduced over
// the shard communicator; stage 0: this rank's full buffer). `scaled` lists flat-buffer ranges
// whose squares count `weight` times instead of once (a tensor-parallel replicated norm weight
// counts 1/tp on each of the tp ranks).
struct WeightedRange {
  size_t offset, numel;
  double weight;
};
double zero_grad_sum_squares(Zero& z, std::span<const WeightedRange> scaled);
// The gradients AdamW reads and clipping scales (full buffer at stage 0, else the shard).
std::span<float> zero_grads(Zero& z);
std::span<float> zero_params(Zero& z);
// After AdamW updated zero_params: stages 1-2 gather the blocks back into the full buffer.
void zero_finish_step(Zero& z);
// Stage 3 at the end of a pass (validation, the end of a step): drop gathered parameters so the
// next pass regathers the updated ones.
void zero_release_params(Zero& z);

struct ZeroMemory {
  size_t params = 0, grads = 0, optimizer = 0;  // floats held on this rank (optimizer: m + v)
  size_t working = 0;                           // gathered parameters and gradient slots
  size_t total() const { return params + grads + optimizer + working; }
};
ZeroMemory zero_memory(const Zero& z);
// One line: what this rank holds and the fraction of plain DP's 4 x total floats.
std::string zero_memory_line(const Zero& z);

}  // namespace hibari
