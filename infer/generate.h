// infer/generate.h — batched generation with the KV cache (infer/decoder.h): prompts are
// prefilled together, then every unfinished sequence gets one token per decode step.
// Sampling: greedy (temperature 0), temperature, top-k, top-p; the n-th token of prompt i is drawn
// with the counter-based uniform random_uniform(seed, stream i, n) (core/rng.h), so a run is
// reproducible and a prompt's draws do not depend on the other prompts' lengths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "infer/decoder.h"
#include "infer/sample.h"

namespace hibari {

struct GenerateOptions {
  size_t max_new_tokens = 128;
  SamplingParams sampling = {};  // temperature 0: greedy
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens = {};  // ends a sequence; not part of its output
};

struct GenerateStats {
  size_t prompt_tokens = 0;
  size_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// on_token(i, token): called as token `token` of prompt i is produced (never a stop token).
// on_done(i): called once when prompt i's sequence ends (stop token or max_new_tokens).
struct GenerateCallbacks {
  std::function<void(size_t, int32_t)> on_token;
  std::function<void(size_t)> on_done;
};

// Returns the generated tokens of each prompt (stop token excluded).  prompts.size() must be
// <= decoder.options.max_batch; each prompt non-empty and prompt + max_new_tokens <= max_seq.
// Resets the cache slots it uses.
std::vector<std::vector<int32_t>> generate(Decoder& decoder,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& options,
                                           const GenerateCallbacks& callbacks = {},
                                           GenerateStats* stats = nullptr);

}  // namespace hibari
