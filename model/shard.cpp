#include "model/shard.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace hibari {

ModelShard pipeline_stage(const ModelConfig& c, int stage, int stages) {
  const size_t L = c.num_hidden_layers;
  check(stages > 0 && stage >= 0 && stage < stages, "pipeline stage " + std::to_string(stage) +
                                                        " of " + std::to_string(stages) +
                                                        " does not exist");
  if (size_t(stages) > L)
    fail("pipeline: " + std::to_string(L) + " layers cannot fill " + std::to_string(stages) +
         " stages");
  const size_t s = size_t(stage), base = L / size_t(stages), extra = L % size_t(stages);
  ModelShard shard;
  shard.layer_begin = s * base + std::min(s, extra);
  shard.layer_end = shard.layer_begin + base + (s < extra ? 1 : 0);
  shard.first_stage = stage == 0;
  shard.last_stage = stage == stages - 1;
  return shard;
}

size_t shard_layer_end(const ModelConfig& c, const ModelShard& shard) {
  return std::min(shard.layer_end, c.num_hidden_layers);
}

void shard_check(const ModelConfig& c, const ModelShard& shard, size_t tokens) {
  const int tp = shard.tp_size;
  if (tp < 1 || shard.tp_rank < 0 || shard.tp_rank >= tp)
    fail("tensor-parallel rank " + std::to_string(shard.tp_rank) + " is outside a group of " +
         std::to_string(tp));
  auto divides = [&](size_t n, const char* what) {
    if (n % size_t(tp) != 0)
      fail("tensor parallelism " + std::to_string(tp) + " does not divide " + what + " (" +
           std::to_string(n) + ")");
  };
  divides(c.num_attention_heads, "num_attention_heads");
  divides(c.num_key_value_heads, "num_key_value_heads");
  divides(c.intermediate_size, "intermediate_size");
  divides(c.vocab_size, "vocab_size");
  if (shard.sequence_parallel && tp == 1) fail("sequence parallelism needs tp_size > 1");
  if (shard.sequence_parallel && tokens > 0) divides(tokens, "the tokens of a batch, B*T");
  const size_t L = c.num_hidden_layers, end = shard_layer_end(c, shard);
  if (shard.layer_begin >= end)
    fail("pipeline stage layers [" + std::to_string(shard.layer_begin) + ", " +
         std::to_string(end) + ") are empty (the model has " + std::to_string(L) + ")");
  if (shard.first_stage != (shard.layer_begin == 0))
    fail("pipeline: the first stage, and only it, starts at layer 0");
  if (shard.last_stage != (end == L))
    fail("pipeline: the last stage, and only it, ends at the last layer");
}

}  // namespace hibari
