// bench/inference_presets.h — the model shapes the generation and scoring benches share (their
// Python peers build the same ones), so both time the same model.
#pragma once

#include <string>

#include "model/config.h"

namespace hibari::bench {

//           vocab  hidden layers heads kv  inter
// A:        32000  512    8      8     4   1536
// B:        32000  256    4      4     2   768
inline ModelConfig inference_preset(const std::string& name) {
  ModelConfig c;
  const bool a = name == "A";
  c.vocab_size = 32000;
  c.hidden_size = a ? 512 : 256;
  c.num_hidden_layers = a ? 8 : 4;
  c.num_attention_heads = a ? 8 : 4;
  c.num_key_value_heads = a ? 4 : 2;
  c.intermediate_size = a ? 1536 : 768;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  return c;
}

}  // namespace hibari::bench
