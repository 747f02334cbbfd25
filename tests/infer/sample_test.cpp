// infer/sample: greedy, temperature, top-k and top-p draw from the distributions they define
// (frequencies over many seeded draws), reproducibly; generate() with a seed repeats itself.
#include "infer/sample.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "infer/generate.h"
#include "tests/infer/tiny_model.h"

namespace hibari {
namespace {

constexpr size_t kDraws = 40000;

// Frequencies of each token over kDraws draws with uniforms from (seed, stream 0, n).
std::vector<double> frequencies(const std::vector<float>& logits, const SamplingParams& p,
                                uint64_t seed) {
  SamplerScratch scratch;
  std::vector<double> f(logits.size(), 0.0);
  for (size_t n = 0; n < kDraws; ++n)
    f[size_t(sample_logits(logits.data(), logits.size(), p, random_uniform(seed, 0, n),
                           scratch))] += 1.0 / kDraws;
  return f;
}

// Logits of probabilities 0.4, 0.3, 0.2, 0.1 (in a shuffled order of ids).
const std::vector<float> kLogits = {float(std::log(0.2)), float(std::log(0.4)),
                                    float(std::log(0.1)), float(std::log(0.3))};

void expect_distribution(const std::vector<double>& f, const std::vector<double>& p) {
  ASSERT_EQ(f.size(), p.size());
  // 40000 draws: a standard error below 0.0025
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(f[i], p[i], 0.01) << "token " << i;
}

TEST(Sample, GreedyIsTheArgmaxWithTheLowestIdOnTies) {
  SamplerScratch s;
  EXPECT_EQ(sample_logits(kLogits.data(), 4, {}, 0.99, s), 1);
  const std::vector<float> tie = {0.5f, 2.0f, 2.0f};
  EXPECT_EQ(sample_logits(tie.data(), 3, {.temperature = 0}, 0.5, s), 1);
}

TEST(Sample, TemperatureOneDrawsTheSoftmax) {
  expect_distribution(frequencies(kLogits, {.temperature = 1.0}, 1), {0.2, 0.4, 0.1, 0.3});
}

TEST(Sample, TemperatureSharpensAndFlattens) {
  // p_i^(1/T) normalized
  for (double T : {0.5, 2.0}) {
    const std::vector<double> base = {0.2, 0.4, 0.1, 0.3};
    std::vector<double> p(4);
    double sum = 0;
    for (size_t i = 0; i < 4; ++i) sum += p[i] = std::pow(base[i], 1.0 / T);
    for (double& x : p) x /= sum;
    expect_distribution(frequencies(kLogits, {.temperature = T}, 2), p);
  }
}

TEST(Sample, TopKKeepsTheKMostLikely) {
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_k = 2}, 3),
                      {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7});
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_k = 1}, 3), {0, 1, 0, 0});
}

TEST(Sample, TopPKeepsTheSmallestSetReachingP) {
  // 0.4 < 0.5 <= 0.4 + 0.3: the nucleus is {0.4, 0.3}
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_p = 0.5}, 4),
                      {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7});
  // 0.75 needs 0.4 + 0.3 + 0.2
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_p = 0.75}, 4),
                      {0.2 / 0.9, 0.4 / 0.9, 0.0, 0.3 / 0.9});
  // top-k first, then top-p over the k: {0.4, 0.3} renormalized is {4/7, 3/7}; p = 0.5 keeps 4/7
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_k = 2, .top_p = 0.5}, 4),
                      {0, 1, 0, 0});
  // a tiny p still keeps one token
  expect_distribution(frequencies(kLogits, {.temperature = 1.0, .top_p = 1e-9}, 4), {0, 1, 0, 0});
}

TEST(Sample, TopPOnALargeVocabularyMatchesTheDefinition) {
  // 5000 tokens: the nucleus search grows past its first 64 sorted candidates
  std::vector<float> logits(5000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i) * 0.37)) * 0.5f;
  const double top_p = 0.3, T = 0.7;
  std::vector<size_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  double total = 0;
  for (float x : logits) total += std::exp((double(x) - logits[order[0]]) / T);
  size_t keep = 0;
  double mass = 0;
  while (mass < top_p * total)
    mass += std::exp((double(logits[order[keep++]]) - logits[order[0]]) / T);
  ASSERT_GT(keep, 64u);
  SamplerScratch s;
  std::vector<uint8_t> allowed(logits.size(), 0);
  for (size_t i = 0; i < keep; ++i) allowed[order[i]] = 1;
  size_t outside = 0;
  for (size_t n = 0; n < 5000; ++n)
    outside += !allowed[size_t(sample_logits(logits.data(), logits.size(),
                                             {.temperature = T, .top_p = top_p},
                                             random_uniform(9, 0, n), s))];
  EXPECT_EQ(outside, 0u);
}

TEST(Sample, GenerateIsReproducibleAndTheSeedMatters) {
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 8);
  Decoder d;
  decoder_create(d, c, model.weights, {.max_batch = 3, .max_seq = 64, .max_tokens = 64});
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9}};
  GenerateOptions o{.max_new_tokens = 30,
                    .sampling = {.temperature = 1.5, .top_k = 50, .top_p = 0.95},
                    .seed = 42};
  const auto a = generate(d, prompts, o);
  const auto b = generate(d, prompts, o);
  EXPECT_EQ(a, b);
  o.seed = 43;
  EXPECT_NE(generate(d, prompts, o), a);
  // A prompt's draws do not depend on the batch: prompt 0 alone (stream 0) repeats itself.
  o.seed = 42;
  Decoder one;
  decoder_create(one, c, model.weights, {.max_batch = 1, .max_seq = 64, .max_tokens = 64});
  EXPECT_EQ(generate(one, {prompts[0]}, o)[0], a[0]);
  // stop tokens end a sequence and are not part of it
  o.sampling = {};
  const auto greedy = generate(d, prompts, o);
  o.stop_tokens = {greedy[1][3]};
  const auto stopped = generate(d, prompts, o);
  ASSERT_LE(stopped[1].size(), 3u);
  EXPECT_TRUE(std::equal(stopped[1].begin(), stopped[1].end(), greedy[1].begin()));
}

}  // namespace
}  // namespace hibari
