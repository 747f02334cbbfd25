// infer/sample.h — continue a prompt by sampling from the model (temperature and top-k).
// Until the KV cache lands each new token re-runs the forward over the window of the last
// model.max_T tokens; fine for the demo's small models, quadratic for long outputs.
#pragma once

#include <cstdint>
#include <vector>

#include "model/llama.h"

namespace hibari {

struct SampleOptions {
  size_t max_new_tokens = 128;
  double temperature = 0.8;  // 0: greedy
  size_t top_k = 40;         // 0: the whole vocabulary
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens;
};

// Returns the generated tokens (the prompt excluded).  Uses the model's activation memory.
std::vector<int32_t> sample_continuation(Llama& model, const std::vector<int32_t>& prompt,
                                         const SampleOptions& options);

// Index of the token drawn from logits (V) with the given options; `u` uniform in [0, 1).
int32_t sample_token(std::vector<float>& logits, double temperature, size_t top_k, double u);

}  // namespace hibari
