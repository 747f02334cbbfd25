// train/distributed.h — a training process's part of the run: its place in the dp x tp x pp grid,
// the model shard it holds, data parallelism / ZeRO over its flat buffers, the pipeline schedule,
// and the moves between its shard and the full model (initialization, checkpoints).
//
// One process (world size 1) is the same code with every group of size 1: the step then does what
// the one-process trainer always did, bit for bit.
//
// The step on every rank:
//   distributed_forward_backward  the micro-batches of this dp rank (1F1B over the stages when
//                                 pp > 1), gradients reduced over dp as backward produces them
//   distributed_finish_grads      gradients averaged; the global gradient norm (every rank);
//                                 clipped
//   distributed_optimizer_step    AdamW on this rank's parameters (its ZeRO block), then the
//                                 updated parameters back where the model reads them
// Losses are reduced to every rank, so every rank takes the same decisions (NaN policy, stop).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "parallel/grid.h"
#include "parallel/zero.h"
#include "train/run_config.h"
#include "train/watchdog.h"

namespace hibari {

struct Distributed {
  Comm world;
  Grid grid;
  Comm shard, replica;  // hybrid sharding: ZeRO within `shard`, replicas across `replica`
  bool hybrid = false;
  ModelShard model_shard;
  Llama model;
  ParameterLayout full_layout;  // the one-process layout (checkpoints, HF weights)
  Zero zero;
  std::vector<float> full_params;         // ZeRO-2: the parameters the model reads (it owns none)
  std::vector<WeightedRange> replicated;  // tp-replicated parameters: 1/tp of their squares each
  AdamW optimizer;
  int64_t accumulation = 1;  // micro-batches of this dp rank per step
  size_t B = 0, T = 0;
  bool leader = true;  // world rank 0: prints, writes metrics and checkpoints
  // Per step, for the pipeline callbacks.
  Watchdog* watchdog = nullptr;  // phases marked as the micro-batches go (optional)
  int64_t step = 0;
  Loader* loader = nullptr;
  std::vector<int32_t> inputs, targets;  // (B*T) one micro-batch
  double loss_sum = 0;
};

// Makes the grid from [parallel], the model shard, the ZeRO state and the optimizer. Collective.
// `frozen_rows`: [train].freeze_vocab_below.
void distributed_create(Distributed& d, const RunConfig& config, const ModelConfig& model_config,
                        size_t frozen_rows);
void distributed_free(Distributed& d);

// Parameters from a full (one-process layout) buffer, or a fresh initialization (seed).
void distributed_load_params(Distributed& d, const float* full);
void distributed_init_params(Distributed& d, double initializer_range, uint64_t seed);
// AdamW moments from full buffers (a checkpoint), and the step count.
void distributed_load_moments(Distributed& d, const float* full_m, const float* full_v,
                              int64_t optimizer_step);

// Runs the micro-batches of the planned global batch; returns the mean loss over the whole batch
// (every rank).
double distributed_forward_backward(Distributed& d, Loader& loader);
// Averages gradients, zeroes frozen rows, and returns the global gradient norm (before clipping;
// clipped to max_norm when max_norm > 0).
double distributed_finish_grads(Distributed& d, size_t frozen_rows, double max_norm);
void distributed_optimizer_step(Distributed& d, float lr);
// Validation loss per dataset over eval_batches micro-batches (NaN where a dataset has none); the
// batches are shared out over the dp ranks.
std::vector<double> distributed_validation(Distributed& d, Loader& loader, int64_t eval_batches);
// Megatron's accounting: the mean loss over `micro_batches` micro-batches of the loader's blended
// validation (which = 1) or test (2) stream from sample `first` (shared out over the dp ranks);
// NaN when the split has no stream.
double distributed_eval_stream(Distributed& d, Loader& loader, int which, int64_t first,
                               int64_t micro_batches);

// Every rank's part gathered into full one-process buffers on the leader (params, AdamW m and v;
// (full_layout.total) each, only touched on the leader). Collective.
void distributed_gather_full(Distributed& d, float* params, float* m, float* v);

// Bytes this rank has sent so far over all its communicators, by kind (parallel/comm.h counts
// them at the ring algorithm's volume).
CommBytes distributed_bytes(const Distributed& d);

// A value summed over the world; the leader prints only what every rank agrees on.
double distributed_sum(Distributed& d, double value);

}  // namespace hibari
