// infer/generate.cpp — see generate.h.
#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/rng.h"

namespace hibari {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

std::vector<std::vector<int32_t>> generate(Decoder& d,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& o,
                                           const GenerateCallbacks& callbacks,
                                           GenerateStats* stats) {
  const size_t n = prompts.size(), V = d.config.vocab_size;
  check(n <= d.options.max_batch, "generate: " + std::to_string(n) +
                                      " prompts, the decoder holds " +
                                      std::to_string(d.options.max_batch));
  for (size_t i = 0; i < n; ++i) {
    check(!prompts[i].empty(), "generate: prompt " + std::to_string(i + 1) + " is empty");
    if (prompts[i].size() + o.max_new_tokens > d.options.max_seq)
      fail("prompt " + std::to_string(i + 1) + " (" + std::to_string(prompts[i].size()) +
           " tokens) + max_new_tokens " + std::to_string(o.max_new_tokens) + " exceeds " +
           std::to_string(d.options.max_seq) + " positions");
  }
  std::vector<std::vector<int32_t>> out(n);
  GenerateStats local;
  for (const auto& p : prompts) local.prompt_tokens += p.size();
  if (n == 0) return out;
  decoder_reset_all(d);
  std::vector<size_t> slots(n);
  for (size_t i = 0; i < n; ++i) slots[i] = i;
  auto start = std::chrono::steady_clock::now();
  decoder_prefill(d, slots, prompts);
  local.prefill_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  SamplerScratch scratch;
  std::vector<uint8_t> done(n, o.max_new_tokens == 0);
  std::vector<size_t> active(n);  // logit row i of the last step belongs to prompt active[i]
  for (size_t i = 0; i < n; ++i) active[i] = i;
  std::vector<StepToken> step;
  step.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (done[i] && callbacks.on_done) callbacks.on_done(i);
  while (!active.empty() && o.max_new_tokens > 0) {
    step.clear();
    std::vector<size_t> next_active;
    next_active.reserve(active.size());
    for (size_t row = 0; row < active.size(); ++row) {
      const size_t i = active[row];
      const uint64_t index = out[i].size();
      const int32_t token = sample_logits(d.logits + row * V, V, o.sampling,
                                          random_uniform(o.seed, uint32_t(i), index), scratch);
      const bool stop =
          std::find(o.stop_tokens.begin(), o.stop_tokens.end(), token) != o.stop_tokens.end();
      if (!stop) {
        out[i].push_back(token);
        if (callbacks.on_token) callbacks.on_token(i, token);
      }
      if (stop || out[i].size() == o.max_new_tokens) {
        done[i] = 1;
        if (callbacks.on_done) callbacks.on_done(i);
        continue;
      }
      step.push_back({int32_t(i), token, true});
      next_active.push_back(i);
    }
    active.swap(next_active);
    if (!step.empty()) decoder_step(d, step);
  }
  local.decode_seconds = seconds_since(start);
  for (const auto& g : out) local.generated_tokens += g.size();
  if (stats) *stats = local;
  return out;
}

}  // namespace hibari
