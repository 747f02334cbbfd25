// tests/model/tiny_config.h — a small Llama ModelConfig from its sizes in one expression, for the
// tests that build models by hand (each picks sizes that suit what it checks).
#pragma once

#include <cstddef>

#include "model/config.h"

namespace hibari::test {

struct TinyLlama {
  size_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_positions;
  bool tied = false;
  double rms_norm_eps = 1e-6;  // ModelConfig's default
};

inline ModelConfig tiny_llama(const TinyLlama& t) {
  ModelConfig c;
  c.vocab_size = t.vocab;
  c.hidden_size = t.hidden;
  c.intermediate_size = t.intermediate;
  c.num_hidden_layers = t.layers;
  c.num_attention_heads = t.heads;
  c.num_key_value_heads = t.kv_heads;
  c.head_dim = t.head_dim;
  c.max_position_embeddings = t.max_positions;
  c.tie_word_embeddings = t.tied;
  c.rms_norm_eps = t.rms_norm_eps;
  return c;
}

}  // namespace hibari::test
