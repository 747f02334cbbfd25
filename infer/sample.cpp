// infer/sample.cpp — see sample.h.
#include "infer/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "infer/decoder.h"
#include "model/params.h"

namespace hibari {

int32_t sample_logits(const float* logits, size_t V, const SamplingParams& sp, double u,
                      SamplerScratch& s) {
  check(V > 0, "sample: empty vocabulary");
  if (sp.temperature <= 0) return int32_t(std::max_element(logits, logits + V) - logits);
  s.order.resize(V);
  s.prob.resize(V);
  std::iota(s.order.begin(), s.order.end(), 0);
  // Most likely first; ties broken by id so the draw is deterministic.
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  auto sort_first = [&](size_t n) {
    std::partial_sort(s.order.begin(), s.order.begin() + long(n), s.order.end(), before);
  };
  const double max = *std::max_element(logits, logits + V);
  auto weight = [&](int32_t v) { return std::exp((double(logits[v]) - max) / sp.temperature); };
  size_t k = sp.top_k == 0 || sp.top_k > V ? V : sp.top_k;
  if (sp.top_p >= 1.0) {
    sort_first(k);
  } else {
    // The nucleus: the fewest most likely of the k candidates whose probability reaches top_p
    // (as transformers: top-k first, then top-p over what is left).  It usually holds few
    // tokens, so a growing prefix is sorted rather than the whole vocabulary.
    double total = 0;
    if (k == V) {
      for (size_t v = 0; v < V; ++v) total += weight(int32_t(v));
    } else {
      sort_first(k);
      for (size_t i = 0; i < k; ++i) total += weight(s.order[i]);
    }
    for (size_t sorted = std::min<size_t>(k, 64);; sorted = std::min(k, sorted * 4)) {
      if (k == V) sort_first(sorted);
      double mass = 0;
      size_t keep = 0;
      while (keep < sorted && (keep == 0 || mass < sp.top_p * total))
        mass += weight(s.order[keep++]);
      if (mass >= sp.top_p * total || sorted == k) {
        k = keep;
        break;
      }
    }
  }
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += s.prob[i] = weight(s.order[i]);
  const double target = u * sum;
  double acc = 0;
  for (size_t i = 0; i < k; ++i) {
    acc += s.prob[i];
    if (target < acc) return s.order[i];
  }
  return s.order[k - 1];
}

int32_t sample_token(std::vector<float>& logits, double temperature, size_t top_k, double u) {
  SamplerScratch scratch;
  return sample_logits(logits.data(), logits.size(),
                       {.temperature = temperature, .top_k = top_k, .top_p = 1.0}, u, scratch);
}

std::vector<int32_t> sample_continuation(Llama& model, const std::vector<int32_t>& prompt,
                                         const SampleOptions& o) {
  check(!prompt.empty(), "sample: empty prompt");
  check(model.shard.tp_size == 1 && model.shard.first_stage && model.shard.last_stage &&
            model.weights.embed != nullptr,
        "sample: needs the whole model in one process");
  // The cache holds prompt + output, up to the model's positions; a longer prompt keeps its end.
  const size_t limit = model.config.max_position_embeddings;
  const size_t max_seq = std::min(limit, prompt.size() + std::max<size_t>(o.max_new_tokens, 1));
  const size_t keep = std::min(prompt.size(), max_seq - std::min(max_seq - 1, o.max_new_tokens));
  std::vector<int32_t> context(prompt.end() - long(keep), prompt.end());
  Decoder decoder;
  decoder_create(decoder, model.config, model.weights,
                 {.max_batch = 1, .max_seq = max_seq, .max_tokens = std::min<size_t>(keep, 512)});
  std::vector<int32_t> generated;
  SamplerScratch scratch;
  const SamplingParams params{.temperature = o.temperature, .top_k = o.top_k, .top_p = 1.0};
  const size_t V = model.config.vocab_size;
  decoder_prefill(decoder, {0}, {context});
  for (size_t i = 0; i < o.max_new_tokens; ++i) {
    const int32_t next =
        sample_logits(decoder.logits, V, params, random_uniform(o.seed, 7, i), scratch);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) break;
    generated.push_back(next);
    if (i + 1 == o.max_new_tokens || decoder.length[0] == max_seq) break;
    decoder_step(decoder, {{0, next, true}});
  }
  return generated;
}

}  // namespace hibari
