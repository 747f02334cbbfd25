// infer/sample.h — drawing the next token from logits (greedy, temperature, top-k, top-p), and
// sample_continuation, the trainer's end-of-run sample (one prompt, through the KV cache).
#pragma once

#include <cstdint>
#include <vector>

#include "model/llama.h"

namespace hibari {

struct SamplingParams {
  double temperature = 0.0;  // 0: greedy (argmax, lowest id on ties)
  size_t top_k = 0;          // keep the k most likely tokens; 0: all
  double top_p = 1.0;        // then the smallest most-likely set with probability >= top_p
};

// Scratch for sample_logits, sized once to the vocabulary (no allocation per token).
struct SamplerScratch {
  std::vector<int32_t> order;  // (V)
  std::vector<double> prob;    // (V)
};

// The token drawn from logits (V) with `u` uniform in [0, 1): candidates sorted by logit (ties by
// id), cut to top_k, softmax at the temperature, cut to the top_p nucleus, and the token whose
// cumulative probability first exceeds u * (mass kept).
int32_t sample_logits(const float* logits, size_t V, const SamplingParams& params, double u,
                      SamplerScratch& scratch);

struct SampleOptions {
  size_t max_new_tokens = 128;
  double temperature = 0.8;  // 0: greedy
  size_t top_k = 40;         // 0: the whole vocabulary
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens = {};
};

// Returns the generated tokens (the prompt excluded), through a KV cache (infer/decoder.h) over
// the model's weights.  The cache holds prompt + output up to max_position_embeddings; a prompt
// that leaves no room keeps its last tokens.
std::vector<int32_t> sample_continuation(Llama& model, const std::vector<int32_t>& prompt,
                                         const SampleOptions& options);

// Index of the token drawn from logits (V) with the given options; `u` uniform in [0, 1).
int32_t sample_token(std::vector<float>& logits, double temperature, size_t top_k, double u);

}  // namespace hibari
