// model/shard.h — which part of one Llama replica a process holds (Megatron-LM's 3D split, minus
// data parallelism, which replicates whole shards):
//   tensor parallelism  tp ranks each hold 1/tp of every projection (contiguous heads, contiguous
//                       MLP columns, contiguous vocabulary rows) and exchange activations inside
//                       each layer; with sequence parallelism the norms and the residual stream run
//                       on N/tp tokens per rank;
//   pipeline stages     a contiguous range of layers; the first stage holds the embedding, the last
//                       model.norm and the head.
// The default shard is the whole model on one process.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/config.h"

namespace hibari {

struct ModelShard {
  int tp_size = 1, tp_rank = 0;    // tensor-parallel group size and this rank's place
  bool sequence_parallel = false;  // Megatron SP: norms/residual on N/tp tokens (needs tp > 1)
  size_t layer_begin = 0;          // this pipeline stage's layers [layer_begin, layer_end)
  size_t layer_end = SIZE_MAX;     // SIZE_MAX: to the last layer
  bool first_stage = true;         // holds the embedding (the input is token ids)
  bool last_stage = true;          // holds model.norm and the head (the output is the loss)
};

// Splits L layers over `stages` stages as evenly as possible (earlier stages take the extra layer).
// The tp fields are left default.
ModelShard pipeline_stage(const ModelConfig& config, int stage, int stages);

// A one-line Error when the shard cannot be built: tp does not divide num_attention_heads,
// num_key_value_heads, intermediate_size or vocab_size, or (with sequence_parallel and tokens > 0)
// the tokens of a batch, N = B*T; or the layer range and stage flags disagree.
void shard_check(const ModelConfig& config, const ModelShard& shard, size_t tokens = 0);

// The shard's last layer, SIZE_MAX resolved: min(layer_end, L).
size_t shard_layer_end(const ModelConfig& config, const ModelShard& shard);

}  // namespace hibari
