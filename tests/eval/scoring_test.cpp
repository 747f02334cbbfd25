// tests/eval/scoring_test.cpp — log-likelihoods of the fixed tiny random model against the
// PyTorch reference (tests/reference/eval_torch.py, float64), batching and request order that
// leave every score bit-identical, the left cut of long sequences, greedy generation, and the
// sample tasks' scores.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "eval/scorer.h"
#include "eval/task.h"
#include "tests/eval/tiny_model.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(HIBARI_SOURCE_DIR) + "/examples/eval/data";

// The requests of the sample multiple-choice tasks with 2 shots each (what the evaluator sends),
// in both encodings.
std::vector<LoglikelihoodRequest> sample_requests(const TextTokenizer& tok) {
  std::vector<LoglikelihoodRequest> reqs;
  for (const char* name :
       {"jcommonsenseqa-1.1-0.2.1", "jnli-1.3-0.2", "marc_ja-1.1-0.2", "arc_easy"}) {
    TaskSpec t = load_task_spec(find_task_file(name, {}));
    EvalOptions o;
    o.data_dir = kData;
    o.num_fewshot = 2;
    TaskDocs docs = load_task_docs(t, o);
    for (size_t i = 0; i < docs.docs.size(); ++i) {
      std::vector<const EvalDoc*> shots;
      for (size_t s : docs.shots[i]) shots.push_back(&docs.pool[s]);
      const std::string ctx = build_context(t, docs.docs[i], shots);
      for (const std::string& c : docs.docs[i].choices)
        for (RequestEncoding e : {RequestEncoding::separate, RequestEncoding::whole})
          reqs.push_back(encode_request(tok, ctx, t.target_delimiter + c, e));
    }
  }
  return reqs;
}

struct TinyModel {
  test::ScratchDir dir{"eval_model"};
  std::string path = test::write_tiny_eval_model(dir.path / "model");
};

TEST(EvalScoring, EncodePairSplitsAtTheContext) {
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 1, 64);
  LoglikelihoodRequest r = encode_pair(*m.tokenizer, "Question: 2+2?\nAnswer:", " four");
  std::vector<int32_t> whole = m.tokenizer->encode("Question: 2+2?\nAnswer: four", true);
  std::vector<int32_t> joined = r.context;
  joined.insert(joined.end(), r.continuation.begin(), r.continuation.end());
  EXPECT_EQ(joined, whole);
  EXPECT_EQ(r.context, m.tokenizer->encode("Question: 2+2?\nAnswer:", true));
  EXPECT_FALSE(r.continuation.empty());
  EXPECT_EQ(r.context[0], 1);  // BOS
  // Trailing spaces of the context move into the continuation.
  LoglikelihoodRequest s = encode_pair(*m.tokenizer, "Answer: ", "four");
  EXPECT_EQ(s.context, m.tokenizer->encode("Answer:", true));
}

TEST(EvalScoring, BatchingAndOrderLeaveScoresBitIdentical) {
  TinyModel tiny;
  // batch 1 scores every sequence whole; 3 and 7 compute a question's context once and copy it
  // to its choices (3: five choices split 3 + 2)
  EvalModel one, three, seven;
  load_eval_model(one, tiny.path, "", 1, 511);
  load_eval_model(three, tiny.path, "", 3, 511);
  load_eval_model(seven, tiny.path, "", 7, 511);
  std::vector<LoglikelihoodRequest> reqs = sample_requests(*one.tokenizer);
  ASSERT_GT(reqs.size(), 40u);
  size_t lengths_differ = 0;
  for (size_t i = 1; i < reqs.size(); ++i)
    lengths_differ += reqs[i].context.size() != reqs[i - 1].context.size();
  EXPECT_GT(lengths_differ, 10u);  // batches of 7 really mix sequences of different lengths
  std::vector<LoglikelihoodResult> a = score_loglikelihood(one, reqs);
  std::vector<LoglikelihoodResult> b = score_loglikelihood(seven, reqs);
  std::vector<LoglikelihoodResult> b3 = score_loglikelihood(three, reqs);
  // The same requests reversed and interleaved: other neighbours in every step.
  std::vector<size_t> order;
  for (size_t i = 0; i < reqs.size(); i += 2) order.push_back(reqs.size() - 1 - i);
  for (size_t i = 1; i < reqs.size(); i += 2) order.push_back(reqs.size() - 1 - i);
  std::vector<LoglikelihoodRequest> shuffled;
  for (size_t i : order) shuffled.push_back(reqs[i]);
  std::vector<LoglikelihoodResult> c = score_loglikelihood(seven, shuffled);
  ASSERT_EQ(a.size(), reqs.size());
  ASSERT_EQ(c.size(), reqs.size());
  size_t greedy = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    // Bit equality: every row of a decoder step is computed from that row alone.
    EXPECT_EQ(std::memcmp(&a[i].logprob, &b[i].logprob, sizeof(double)), 0)
        << i << ": " << a[i].logprob << " vs " << b[i].logprob;
    EXPECT_EQ(a[i].greedy, b[i].greedy);
    EXPECT_EQ(std::memcmp(&a[i].logprob, &b3[i].logprob, sizeof(double)), 0)
        << i << ": " << a[i].logprob << " vs " << b3[i].logprob;
    EXPECT_EQ(a[i].greedy, b3[i].greedy);
    EXPECT_EQ(a[i].tokens, reqs[i].continuation.size());
    EXPECT_TRUE(std::isfinite(a[i].logprob) && a[i].logprob < 0);
    greedy += a[i].greedy;
  }
  for (size_t j = 0; j < order.size(); ++j) {
    EXPECT_EQ(std::memcmp(&a[order[j]].logprob, &c[j].logprob, sizeof(double)), 0)
        << order[j] << ": " << a[order[j]].logprob << " vs " << c[j].logprob;
    EXPECT_EQ(a[order[j]].greedy, c[j].greedy);
  }
  std::printf("%zu requests bit-identical at batch 1, 3, 7 and shuffled; %zu greedy\n", reqs.size(),
              greedy);
}

TEST(EvalScoring, LongSequencesLoseTheirContextsBeginning) {
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 2, 16);
  EXPECT_EQ(m.max_length, 16u);
  LoglikelihoodRequest r;
  for (int32_t i = 0; i < 30; ++i) r.context.push_back(3 + (i * 37) % 1900);
  r.continuation = {50, 60, 70};
  LoglikelihoodRequest cut = r;
  // 33 tokens, window 16: the last 17 are kept (16 positions predicting 16 targets).
  cut.context.erase(cut.context.begin(), cut.context.begin() + 16);
  LoglikelihoodRequest cut_more = r;  // one token fewer: a different score
  cut_more.context.erase(cut_more.context.begin(), cut_more.context.begin() + 17);
  std::vector<LoglikelihoodResult> res = score_loglikelihood(m, {r, cut, cut_more});
  EXPECT_EQ(res[0].logprob, res[1].logprob);
  EXPECT_NE(res[0].logprob, res[2].logprob);
  EXPECT_EQ(res[0].tokens, 3u);
  // The window is max_position_embeddings (512), as the harness's hf-causal model takes it: a
  // scored sequence of 513 tokens feeds 512 (its last token is only predicted).
  EvalModel full;
  load_eval_model(full, tiny.path, "", 2, 0);
  EXPECT_EQ(full.max_length, 512u);
  LoglikelihoodRequest longest;
  for (int32_t i = 0; i < 600; ++i) longest.context.push_back(3 + (i * 41) % 1900);
  longest.continuation = {50, 60};
  LoglikelihoodRequest exact = longest;  // the last 513 tokens: the same score
  exact.context.erase(exact.context.begin(), exact.context.end() - 511);
  std::vector<LoglikelihoodResult> full_res = score_loglikelihood(full, {longest, exact});
  EXPECT_EQ(full_res[0].logprob, full_res[1].logprob);
  EXPECT_TRUE(std::isfinite(full_res[0].logprob));
}

// The UTF-8 code points of `text`.
std::vector<std::string> code_points(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && (uint8_t(text[i + n]) & 0xC0) == 0x80) ++n;
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

TEST(EvalScoring, GreedyGenerationIsBatchIndependentAndStopsAtStopStrings) {
  TinyModel tiny;
  EvalModel one, three;
  load_eval_model(one, tiny.path, "", 1, 64);
  load_eval_model(three, tiny.path, "", 3, 64);
  std::vector<std::vector<int32_t>> prompts;
  for (const char* text : {"文章:富士山は日本一高い山です。\n質問:日本一高い山は?\n回答:",
                           "Question: what is the capital of France?\nAnswer:", "回答:",
                           "The quick brown fox", "猫が"})
    prompts.push_back(one.tokenizer->encode(text, true));
  // A prompt past the window (64 - 12 new tokens) keeps its last 52 tokens.
  std::vector<int32_t> long_prompt;
  for (int32_t i = 0; i < 80; ++i) long_prompt.push_back(3 + (i * 53) % 1900);
  prompts.push_back(long_prompt);
  prompts.push_back(std::vector<int32_t>(long_prompt.end() - 52, long_prompt.end()));
  auto greedy = [](EvalModel& m, const std::vector<std::vector<int32_t>>& ps, size_t max_new,
                   const std::vector<std::string>& stop) {
    std::vector<GreedyRequest> reqs;
    for (const std::vector<int32_t>& p : ps) reqs.push_back({p, max_new});
    GreedyOptions o;
    o.stop = stop;
    return generate_greedy(m, reqs, o);
  };
  const std::vector<std::string> a = greedy(one, prompts, 12, {});
  const std::vector<std::string> b = greedy(three, prompts, 12, {});
  ASSERT_EQ(a.size(), prompts.size());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[5], a[6]);
  size_t cut = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_FALSE(a[i].empty()) << i;
    // A stop string taken from the answer: the answer ends right before its first occurrence.
    const std::vector<std::string> chars = code_points(a[i]);
    if (chars.size() < 3) continue;
    const std::string stop = chars[2];
    const std::string expected = a[i].substr(0, a[i].find(stop));
    EXPECT_EQ(greedy(three, {prompts[i]}, 12, {"\x01never", stop}).at(0), expected)
        << i << ": " << a[i];
    ++cut;
  }
  EXPECT_GE(cut, 3u);
  // Requests of different lengths batch by length and come back in request order, each as alone.
  std::vector<GreedyRequest> mixed;
  for (size_t i = 0; i < prompts.size(); ++i) mixed.push_back({prompts[i], 4 + (i * 5) % 9});
  const std::vector<std::string> together = generate_greedy(three, mixed, {});
  for (size_t i = 0; i < mixed.size(); ++i)
    EXPECT_EQ(together[i], generate_greedy(one, {mixed[i]}, {}).at(0)) << i;
  std::printf("answer 0: \"%s\"\n", a[0].c_str());
}

bool run_reference(const std::string& args) {
  const std::string cmd =
      std::string(HIBARI_PYTHON) + " " HIBARI_SOURCE_DIR "/tests/reference/eval_torch.py " + args;
  if (std::system(cmd.c_str()) == 0) return true;
  if (std::system(HIBARI_PYTHON " -c 'import torch' >/dev/null 2>&1") == 0) {
    ADD_FAILURE() << "the reference failed: " << cmd;
  } else {
    [] { GTEST_SKIP() << HIBARI_PYTHON " cannot import torch"; }();
  }
  return false;
}

TEST(EvalScoring, LoglikelihoodsMatchTorchReference) {
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 4, 512);
  std::vector<LoglikelihoodRequest> reqs = sample_requests(*m.tokenizer);
  nlohmann::json j = nlohmann::json::array();
  for (const LoglikelihoodRequest& r : reqs)
    j.push_back({{"context", r.context}, {"continuation", r.continuation}});
  const fs::path req_path = tiny.dir.path / "requests.json";
  const fs::path out_path = tiny.dir.path / "reference.json";
  std::ofstream(req_path) << j.dump();
  if (!run_reference("loglikelihood --model " + tiny.path + " --requests " + req_path.string() +
                     " --out " + out_path.string()))
    return;
  std::ifstream in(out_path);
  nlohmann::json ref = nlohmann::json::parse(in);
  ASSERT_EQ(ref.size(), reqs.size());
  std::vector<LoglikelihoodResult> got = score_loglikelihood(m, reqs);
  double worst = 0;
  size_t greedy = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const double r = ref[i]["logprob"].get<double>();
    worst = std::max(worst, std::abs(got[i].logprob - r));
    EXPECT_NEAR(got[i].logprob, r, 1e-4) << "request " << i;
    EXPECT_EQ(got[i].greedy, ref[i]["greedy"].get<bool>()) << "request " << i;
    greedy += got[i].greedy;
  }
  std::printf("%zu requests, worst |log-likelihood - reference| %.3g, %zu greedy\n", reqs.size(),
              worst, greedy);
}

// The sample tasks' scores on the tiny model, computed once (their log-likelihoods are the ones the
// test above checks against PyTorch) and fixed here: any change to prompts, tokenization, few-shot
// draws or scoring shows up as a different number.
struct Expected {
  const char* task;
  size_t shots;
  size_t n;
  std::vector<double> values;  // in the task's metric order
};

TEST(EvalScoring, SampleTaskScores) {
  TinyModel tiny;
  EvalModel m;
  load_eval_model(m, tiny.path, "", 3, 512);
  const std::vector<Expected> expected = {
      {"jcommonsenseqa-1.1-0.2.1", 0, 5, {0.4, 0.4}},
      {"jcommonsenseqa-1.1-0.2.1", 2, 5, {0.4, 0}},
      {"jnli-1.3-0.2", 3, 4, {0, 0, 0, -0.67082039324993692, 0}},
      {"marc_ja-1.1-0.2", 1, 5, {0.6, 0.6, 0.5, 0, 0.375}},
      {"arc_easy", 2, 4, {0, 0.5}},
      {"jsquad-1.1-0.2", 1, 3, {0, 0, 1.9047619047619049}},
      {"ppl_ja",
       0,
       3,
       {875442.83212317468, 38371.104116168441, 2.7551824421556223e+160, 95.662691795991634,
        6.5798844819265172}},
      {"ppl_en",
       0,
       3,
       {279.86620068620039, 69010.194838374693, 4640524245558.6592, 279.86620068620039,
        8.1285934535816793}},
  };
  for (const Expected& e : expected) {
    TaskSpec t = load_task_spec(find_task_file(e.task, {}));
    EvalOptions o;
    o.data_dir = kData;
    o.num_fewshot = e.shots;
    TaskResult r = evaluate_task(m, t, o);
    EXPECT_EQ(r.n, e.n) << e.task;
    EXPECT_EQ(r.num_fewshot, t.format == TaskFormat::text ? 0 : e.shots);
    ASSERT_EQ(r.metrics.size(), t.metrics.size());
    std::printf("{\"%s\", %zu, %zu, {", e.task, e.shots, r.n);
    for (size_t k = 0; k < r.metrics.size(); ++k) {
      std::printf("%s%.17g", k ? ", " : "", r.metrics[k].value);
      if (k < e.values.size()) {
        // Accuracies are k/n exactly.  Log-likelihoods are the same bits for any batch size and
        // thread count here, but another build (-march=native picks the vector width; the
        // sanitizer build optimizes differently) rounds the float32 forward differently, by a few
        // 1e-8 relative.  A perplexity exp(-ll / n) turns that into ll / n times more (word
        // perplexity of Japanese text: ll / words ~ 369), so perplexities are compared by their
        // logs, 1e-6 relative; the rest 1e-5 relative.
        const std::string& metric = r.metrics[k].metric;
        if (metric.size() > 11 && metric.ends_with("_perplexity")) {
          EXPECT_NEAR(std::log(r.metrics[k].value), std::log(e.values[k]),
                      1e-6 * std::abs(std::log(e.values[k])))
              << e.task << " " << metric;
        } else {
          EXPECT_NEAR(r.metrics[k].value, e.values[k], 1e-5 * std::abs(e.values[k]))
              << e.task << " " << metric;
        }
      }
    }
    std::printf("}},\n");
    if (!e.values.empty()) {
      EXPECT_EQ(e.values.size(), r.metrics.size());
    }
  }
}

}  // namespace
}  // namespace hibari
