// tests/infer/tiny_model.h — a random tiny Llama as a LoadedModel (the inference side) and a
// training-forward Llama over the same weights (the reference side).
#pragma once

#include <cstdint>
#include <vector>

#include "infer/model_loader.h"
#include "model/llama.h"
#include "model/params.h"
#include "tests/model/tiny_config.h"

namespace hibari::test {

// GQA (4 query heads on 2 key/value heads), 2 layers, untied head unless asked.
inline ModelConfig tiny_infer_config(bool tied = false) {
  return test::tiny_llama({96, 32, 48, 2, 4, 2, 8, 160, tied, 1e-5});
}

// initializer_range 0.25: logits spread enough that greedy choices are clear-cut.
inline LoadedModel tiny_random_model(const ModelConfig& c, uint64_t seed) {
  LoadedModel m;
  m.config = c;
  m.layout = llama_parameter_layout(c);
  m.params.assign(m.layout.total, 0.0f);
  llama_init_parameters(m.params.data(), m.layout, 0.25, seed);
  m.weights = llama_weights(c, m.layout, m.params.data());
  return m;
}

// Logits (V) of the last position of `tokens` by the full training forward (no cache).
inline std::vector<float> full_forward_last_logits(Llama& llama,
                                                   const std::vector<int32_t>& tokens) {
  std::vector<float> logits(llama.config.vocab_size);
  llama_forward(llama, tokens.data(), nullptr, 1, tokens.size(), 0.0f);
  llama_logits_at(llama, logits.data(), 0, tokens.size() - 1);
  return logits;
}

}  // namespace hibari::test
