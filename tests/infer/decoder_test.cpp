// infer/decoder: the KV-cached forward against the training forward (llama_forward without
// targets + llama_logits_at over the growing sequence): greedy tokens equal, logits within 1e-5 at
// every step, for a batch of prompts of different lengths; sequence_logprobs equals the log-softmax
// of full-forward logits, and how sequences are batched (or a prompt split into steps) changes no
// bit.
#include "infer/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "infer/generate.h"
#include "tests/infer/tiny_model.h"

namespace hibari {
namespace {

std::vector<int32_t> random_tokens(size_t n, size_t V, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = int32_t(gen() % V);
  return t;
}

size_t argmax(const float* x, size_t n) { return size_t(std::max_element(x, x + n) - x); }

// max |a - b| / max(1, max |b|): absolute below one, relative for larger logits.
double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0, scale = 1;
  for (size_t i = 0; i < n; ++i) {
    m = std::max(m, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return m / scale;
}

class GreedyMatchesFullForward : public ::testing::TestWithParam<bool> {};

TEST_P(GreedyMatchesFullForward, TokenByTokenForABatchOfPrompts) {
  const bool tied = GetParam();
  const ModelConfig c = test::tiny_infer_config(tied);
  LoadedModel model = test::tiny_random_model(c, 11);
  const size_t V = c.vocab_size, new_tokens = 24;
  const std::vector<size_t> lengths = {3, 17, 1, 70};  // 70: past one 64-key attention block
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < lengths.size(); ++i)
    prompts.push_back(random_tokens(lengths[i], V, uint32_t(100 + i)));

  Llama full;
  llama_over_loaded(full, model, 1, 70 + new_tokens);
  Decoder d;
  // 16 rows a step: the 70-token prompt is prefilled over several steps, shared with the others
  decoder_create(d, c, model.weights, {.max_batch = 4, .max_seq = 100, .max_tokens = 16});
  decoder_prefill(d, {0, 1, 2, 3}, prompts);
  std::vector<std::vector<int32_t>> seqs = prompts;
  double worst = 0;
  for (size_t step = 0; step < new_tokens; ++step) {
    std::vector<StepToken> rows;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const float* cached = d.logits + i * V;
      const std::vector<float> ref = test::full_forward_last_logits(full, seqs[i]);
      const double diff = max_abs_diff(cached, ref.data(), V);
      worst = std::max(worst, diff);
      ASSERT_LT(diff, 1e-5) << "prompt " << i << " step " << step;
      const size_t next = argmax(cached, V);
      ASSERT_EQ(next, argmax(ref.data(), V)) << "prompt " << i << " step " << step;
      seqs[i].push_back(int32_t(next));
      rows.push_back({int32_t(i), int32_t(next), true});
    }
    decoder_step(d, rows);
  }
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(d.length[i], lengths[i] + new_tokens);
  std::printf("largest |cached - full| logit difference (relative above 1): %.3g\n", worst);

  // generate() (greedy, batched) gives the same tokens, and so does each prompt alone
  GenerateOptions o{.max_new_tokens = new_tokens};
  const auto batched = generate(d, prompts, o);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t> expected(seqs[i].begin() + long(lengths[i]), seqs[i].end());
    EXPECT_EQ(batched[i], expected) << "prompt " << i;
    Decoder alone;
    decoder_create(alone, c, model.weights, {.max_batch = 1, .max_seq = 100, .max_tokens = 512});
    EXPECT_EQ(generate(alone, {prompts[i]}, o)[0], expected) << "prompt " << i << " alone";
  }
}

INSTANTIATE_TEST_SUITE_P(Heads, GreedyMatchesFullForward, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "tied" : "untied"; });

TEST(Decoder, PrefillAndDecodeGiveTheSameBits) {
  // Logits of a position are the same bits whether its token came in a long prefill step or alone.
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 5);
  const size_t V = c.vocab_size;
  const std::vector<int32_t> tokens = random_tokens(40, V, 9);
  Decoder a, b;
  decoder_create(a, c, model.weights, {.max_batch = 1, .max_seq = 64, .max_tokens = 64});
  decoder_create(b, c, model.weights, {.max_batch = 1, .max_seq = 64, .max_tokens = 64});
  decoder_prefill(a, {0}, {tokens});
  for (size_t t = 0; t < tokens.size(); ++t) decoder_step(b, {{0, tokens[t], true}});
  EXPECT_EQ(std::memcmp(a.logits, b.logits, V * sizeof(float)), 0);
}

TEST(Decoder, PackingInPlaceGivesTheSameBitsWithoutACopy) {
  // Shapes whose rows are all multiples of the 32-column panel (packed over the weights), then
  // intermediate 40 and vocabulary 100 (gate_up and head copied), untied and tied.
  for (const ModelConfig& c : {test::tiny_infer_config(false), test::tiny_infer_config(true),
                               test::tiny_llama({100, 32, 40, 2, 4, 2, 8, 160, false, 1e-5})}) {
    LoadedModel copied = test::tiny_random_model(c, 5), packed = test::tiny_random_model(c, 5);
    const std::vector<int32_t> tokens = random_tokens(30, c.vocab_size, 4);
    Decoder a, b;
    decoder_create(a, c, copied.weights, {.max_batch = 1, .max_seq = 64, .max_tokens = 64});
    decoder_create(b, c, packed.weights,
                   {.max_batch = 1, .max_seq = 64, .max_tokens = 64, .pack_in_place = true});
    decoder_prefill(a, {0}, {tokens});
    decoder_prefill(b, {0}, {tokens});
    EXPECT_EQ(std::memcmp(a.logits, b.logits, c.vocab_size * sizeof(float)), 0);
    const bool head_in_place = c.vocab_size % 32 == 0 && !c.tie_word_embeddings;
    EXPECT_EQ(b.packed.layers[1].qkv, packed.weights.layers[1].qkv);
    EXPECT_EQ(b.packed.layers[1].gate_up == packed.weights.layers[1].gate_up,
              c.intermediate_size * 2 % 32 == 0);
    EXPECT_EQ(b.packed.lm_head == packed.weights.lm_head, head_in_place);
    EXPECT_NE(a.packed.layers[1].qkv, copied.weights.layers[1].qkv);
    // a tied head is never packed over the embedding, which the decoder still reads
    EXPECT_EQ(std::memcmp(copied.weights.embed, packed.weights.embed,
                          c.vocab_size * c.hidden_size * sizeof(float)),
              0);
  }
}

TEST(Decoder, ACopiedSequenceContinuesWithTheBitsOfTheWholeOne) {
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 8);
  const size_t V = c.vocab_size;
  const std::vector<int32_t> context = random_tokens(37, V, 1), more = random_tokens(5, V, 2);
  std::vector<int32_t> whole = context;
  whole.insert(whole.end(), more.begin(), more.end());
  Decoder alone, shared;
  decoder_create(alone, c, model.weights, {.max_batch = 1, .max_seq = 64, .max_tokens = 64});
  decoder_create(shared, c, model.weights, {.max_batch = 3, .max_seq = 64, .max_tokens = 64});
  decoder_prefill(alone, {0}, {whole});
  decoder_prefill(shared, {0}, {context});
  decoder_copy_sequence(shared, 0, 2);
  EXPECT_EQ(shared.length[2], context.size());
  std::vector<StepToken> rows;
  for (size_t t = 0; t < more.size(); ++t) rows.push_back({2, more[t], t + 1 == more.size()});
  ASSERT_EQ(decoder_step(shared, rows), 1u);
  EXPECT_EQ(std::memcmp(alone.logits, shared.logits, V * sizeof(float)), 0);
  EXPECT_THROW(decoder_copy_sequence(shared, 0, 3), Error);
}

TEST(Decoder, StepsAllocateNothingAndRejectBadInput) {
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 5);
  Decoder d;
  decoder_create(d, c, model.weights, {.max_batch = 2, .max_seq = 8, .max_tokens = 4});
  EXPECT_THROW(decoder_step(d, {{0, int32_t(c.vocab_size), true}}), Error);
  EXPECT_THROW(decoder_step(d, {{2, 1, true}}), Error);
  EXPECT_THROW(decoder_step(d, std::vector<StepToken>(5, StepToken{0, 1, false})), Error);
  decoder_reset_all(d);
  for (int i = 0; i < 8; ++i) decoder_step(d, {{0, 1, true}});
  EXPECT_THROW(decoder_step(d, {{0, 1, true}}), Error);  // past max_seq
  DecoderOptions too_long{.max_batch = 1, .max_seq = c.max_position_embeddings + 1};
  EXPECT_THROW(decoder_create(d, c, model.weights, too_long), Error);
}

std::vector<double> full_forward_logprobs(Llama& full, const std::vector<int32_t>& tokens) {
  const size_t V = full.config.vocab_size;
  std::vector<double> out(tokens.size(), 0.0);
  std::vector<float> logits(V);
  llama_forward(full, tokens.data(), nullptr, 1, tokens.size(), 0.0f);
  for (size_t t = 1; t < tokens.size(); ++t) {
    llama_logits_at(full, logits.data(), 0, t - 1);
    double max = *std::max_element(logits.begin(), logits.end()), sum = 0;
    for (float x : logits) sum += std::exp(double(x) - max);
    out[t] = double(logits[size_t(tokens[t])]) - max - std::log(sum);
  }
  return out;
}

TEST(SequenceLogprobs, EqualFullForwardAndDoNotDependOnBatching) {
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 23);
  const size_t V = c.vocab_size;
  const std::vector<size_t> lengths = {5, 1, 33, 12, 80, 2, 7};
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < lengths.size(); ++i)
    seqs.push_back(random_tokens(lengths[i], V, uint32_t(200 + i)));
  Llama full;
  llama_over_loaded(full, model, 1, 80);

  Decoder big;  // all sequences at once, several per step
  decoder_create(big, c, model.weights, {.max_batch = 7, .max_seq = 80, .max_tokens = 64});
  std::vector<std::vector<uint8_t>> greedy;
  const auto together = sequence_logprobs(big, seqs, &greedy);
  ASSERT_EQ(together.size(), seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(together[i].size(), seqs[i].size());
    EXPECT_EQ(together[i][0], 0.0);
    const std::vector<double> ref = full_forward_logprobs(full, seqs[i]);
    for (size_t t = 1; t < seqs[i].size(); ++t) {
      EXPECT_NEAR(together[i][t], ref[t], 1e-5) << "sequence " << i << " position " << t;
      EXPECT_LT(together[i][t], 0.0);
    }
    // is_argmax: the reference's argmax
    std::vector<float> logits(V);
    llama_forward(full, seqs[i].data(), nullptr, 1, seqs[i].size(), 0.0f);
    for (size_t t = 1; t < seqs[i].size(); ++t) {
      llama_logits_at(full, logits.data(), 0, t - 1);
      EXPECT_EQ(greedy[i][t], argmax(logits.data(), V) == size_t(seqs[i][t]));
    }
  }
  // Other batchings: one at a time; two slots and 8-row steps (sequences split over steps and
  // sharing them); reversed order.  Every value keeps its bits.
  struct Layout {
    size_t batch, tokens;
  };
  for (const Layout& l : {Layout{1, 80}, Layout{2, 8}, Layout{3, 17}}) {
    Decoder d;
    decoder_create(d, c, model.weights,
                   {.max_batch = l.batch, .max_seq = 80, .max_tokens = l.tokens});
    const auto again = sequence_logprobs(d, seqs);
    for (size_t i = 0; i < seqs.size(); ++i)
      EXPECT_EQ(std::memcmp(again[i].data(), together[i].data(), seqs[i].size() * sizeof(double)),
                0)
          << "batch " << l.batch << " tokens " << l.tokens << " sequence " << i;
  }
  std::vector<std::vector<int32_t>> reversed(seqs.rbegin(), seqs.rend());
  const auto back = sequence_logprobs(big, reversed);
  for (size_t i = 0; i < seqs.size(); ++i)
    EXPECT_EQ(back[seqs.size() - 1 - i], together[i]) << "sequence " << i;
  // A sequence's last token is predicted, not fed: 10 positions score 11 tokens, with the bits of a
  // larger cache; 12 tokens are an error, not a silent cut.
  Decoder small;
  decoder_create(small, c, model.weights, {.max_batch = 1, .max_seq = 10, .max_tokens = 16});
  const std::vector<int32_t> eleven = random_tokens(11, V, 1);
  EXPECT_EQ(sequence_logprobs(small, {eleven}), sequence_logprobs(big, {eleven}));
  EXPECT_THROW(sequence_logprobs(small, {random_tokens(12, V, 1)}), Error);
}

TEST(SampleContinuation, GreedyEqualsTheFullForwardArgmax) {
  // The trainer's end-of-run sample now runs on the KV cache; greedy must still be the argmax of
  // the training forward over the growing text.
  const ModelConfig c = test::tiny_infer_config();
  LoadedModel model = test::tiny_random_model(c, 3);
  Llama full;
  llama_over_loaded(full, model, 1, 64);
  const std::vector<int32_t> prompt = random_tokens(6, c.vocab_size, 77);
  const std::vector<int32_t> out =
      sample_continuation(full, prompt, {.max_new_tokens = 20, .temperature = 0, .top_k = 0});
  ASSERT_EQ(out.size(), 20u);
  std::vector<int32_t> seq = prompt;
  for (int32_t token : out) {
    const std::vector<float> ref = test::full_forward_last_logits(full, seq);
    EXPECT_EQ(size_t(token), argmax(ref.data(), c.vocab_size));
    seq.push_back(token);
  }
}

}  // namespace
}  // namespace hibari
