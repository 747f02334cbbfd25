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
//            parameters     gradients       AdamW m and v
//   stage 0  full           full            full
//   stage 1  full           full + blocks   blocks (each group's gradients are reduce-scattered
//                                           as the last micro-batch's backward finishes it; a
//                                           rank updates only its blocks, which are then
//                                           all-gathered back into every rank's copy: Megatron's
//                                           distributed optimizer)
//   stage 2  full           blocks          blocks (each group's gradients are reduce-scattered
//                                           as backward finishes it; its buffer is then reused)
//   stage 3  blocks         blocks          blocks (groups gathered just before use, the next one
//                                           prefetched; the block is the master copy)
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
  bool unreduced = false;   // gradient slot: holds gradients not yet reduce-scattered
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
  // This rank's blocks: parameters at stage 3, gradients at stages 2-3.
  std::vector<float> params, grads;
  // Stages 2-3: working buffers. Slot e and t belong to the embedding and tail groups (first and
  // last group); the layer slots rotate.
  std::vector<ZeroSlot> param_slots, grad_slots;
  std::vector<float> reduced;  // one group's reduce-scatter result before it is accumulated
  std::vector<CommRequest> reductions;  // stages 0-1: one per group, started as backward goes
  size_t next_reduction = 0;            // groups are reduced in the order backward finishes them
  std::vector<std::vector<int>> block_counts;  // stage 1: per group, the floats of each rank
  bool last_micro_batch = true;                // stages 0-1 reduce only after the last one
  bool backward = false;                       // set by the trainer around the backward pass
  uint64_t clock = 0;
  int last_group = -1;  // the group used before, to tell the direction for prefetching
};

// `groups` cover [0, total) in order. full_params / full_grads are the model's buffers (stage 3:
// both null; stage 2: full_grads null). With `replica` non-null the run is hybrid.
void zero_create(Zero& z, const ZeroOptions& options, Comm& shard, Comm* replica,
                 const std::vector<BucketRange>& groups, size_t total, float* full_params,
                 float* full_grads);

// The parameters are now in `full` (a flat buffer: at stages 0-2 the model's own): stage 3 copies
// its blocks out; every stage drops gathered copies.
void zero_load_params(Zero& z, const float* full);
// The same for an optimizer state: `full` (total floats) -> `shard` (shard_total floats).
void zero_take_block(const Zero& z, const float* full, float* shard);
// All blocks of a shard-laid-out buffer gathered into a full flat buffer (checkpoints). Collective
// over the shard communicator.
void zero_gather_full(Zero& z, const float* shard, float* full);

// Ranges (offset, numel) of the flat buffer -> the same elements in shard coordinates, clipped to
// this rank's blocks (AdamW's ranges; frozen rows; norms).
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
// Gradients averaged over every data-parallel rank: in the full buffer (stage 0) or z.grads.
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
// Where AdamW finds what it reads and writes. Each is either the flat buffer (offsets as the
// model's layout) or this rank's blocks (shard coordinates, zero_shard_ranges):
//   gradients: full at stage 0, blocks at 1-3 (clipping scales this span)
//   parameters: full at stages 0-2, blocks at 3
//   moments (m, v): full at stage 0 (zero_state_floats = total), blocks at 1-3 (shard_total)
std::span<float> zero_grads(Zero& z);
float* zero_params(Zero& z);
bool zero_grads_sharded(const Zero& z);
bool zero_params_sharded(const Zero& z);
size_t zero_state_floats(const Zero& z);
// After AdamW: stages 1-2 all-gather the updated blocks into every rank's full buffer; stage 3
// drops its gathered copies.
void zero_finish_step(Zero& z);
// Stage 3 at the end of a pass (validation, the end of a step): drop gathered parameters so the
// next pass regathers the updated ones.
void zero_release_params(Zero& z);

struct ZeroMemory {
  size_t params = 0, grads = 0, optimizer = 0;  // floats held on this rank (optimizer: m + v)
  size_t working = 0;  // gathered parameters, gradient slots, int8 payloads (in floats' room)
  size_t total() const { return params + grads + optimizer + working; }
};
ZeroMemory zero_memory(const Zero& z);
// One line: what this rank holds and the fraction of plain DP's 4 x total floats.
std::string zero_memory_line(const Zero& z);

}  // namespace hibari
