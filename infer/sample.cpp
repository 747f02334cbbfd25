#include "infer/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace hibari {

int32_t sample_token(std::vector<float>& logits, double temperature, size_t top_k, double u) {
  size_t V = logits.size();
  if (temperature <= 0)
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  size_t k = top_k == 0 || top_k > V ? V : top_k;
  // Most likely first; ties broken by id so the draw is deterministic.
  std::partial_sort(order.begin(), order.begin() + long(k), order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] ||
           (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  double max = logits[size_t(order[0])];
  std::vector<double> p(k);
  double sum = 0;
  for (size_t i = 0; i < k; ++i)
    sum += p[i] = std::exp((logits[size_t(order[i])] - max) / temperature);
  double target = u * sum, acc = 0;
  for (size_t i = 0; i < k; ++i) {
    acc += p[i];
    if (target < acc) return order[i];
  }
  return order[k - 1];
}

std::vector<int32_t> sample_continuation(Llama& model, const std::vector<int32_t>& prompt,
                                         const SampleOptions& o) {
  check(!prompt.empty(), "sample: empty prompt");
  std::vector<int32_t> context = prompt, generated;
  std::vector<float> logits(model.config.vocab_size);
  for (size_t i = 0; i < o.max_new_tokens; ++i) {
    size_t T = std::min(context.size(), model.max_T);
    const int32_t* window = context.data() + (context.size() - T);
    llama_forward(model, window, nullptr, 1, T, 0.0f);
    llama_logits_at(model, logits.data(), 0, T - 1);
    int32_t next = sample_token(logits, o.temperature, o.top_k, random_uniform(o.seed, 7, i));
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) break;
    generated.push_back(next);
    context.push_back(next);
  }
  return generated;
}

}  // namespace hibari
