// tests/eval/jsquad_metric_test.cpp — JSQuAD exact_match / F1 against the JP harness's own
// functions run by tests/reference/jsquad_metric.py (real neologdn 0.5.6, emoji 2.2.0, MeCab on
// Debian's unidic-mecab): tests/fixtures/eval/jsquad_metric.json.
#include "eval/jsquad_metric.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/emoji_code_points.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(HIBARI_SOURCE_DIR) + "/tests/fixtures/eval/jsquad_metric.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

TEST(JsquadMetric, NormalizeAnswerMatchesHarness) {
  const auto& cases = fixture().at("normalize_answer");
  ASSERT_GT(cases.size(), 300u);
  for (const auto& c : cases) {
    const auto input = c.at("input").get<std::string>();
    EXPECT_EQ(harness_normalize_answer(input), c.at("output").get<std::string>())
        << "input: " << input;
  }
}

TEST(JsquadMetric, ScoresMatchHarness) {
  MecabWakati tagger;  // once for all questions
  JsquadAggregate aggregate;
  const auto& cases = fixture().at("cases");
  ASSERT_GE(cases.size(), 60u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("id").get<std::string>());
    const auto prediction = c.at("prediction").get<std::string>();
    const auto golds = c.at("golds").get<std::vector<std::string>>();
    const std::string normalized = harness_normalize_answer(prediction);
    EXPECT_EQ(normalized, c.at("prediction_normalized").get<std::string>());
    EXPECT_EQ(tagger.tokenize(normalized),
              c.at("prediction_tokens").get<std::vector<std::string>>());
    const double em = harness_jsquad_exact_match(prediction, golds);
    const double f1 = harness_jsquad_f1(prediction, golds, tagger);
    EXPECT_EQ(em, c.at("exact_match").get<double>());
    EXPECT_NEAR(f1, c.at("f1").get<double>(), 1e-12);
    aggregate.add(em, f1);
  }
  const auto& expected = fixture().at("aggregate");
  EXPECT_NEAR(aggregate.exact_match(), expected.at("exact_match").get<double>(), 1e-12);
  EXPECT_NEAR(aggregate.f1(), expected.at("f1").get<double>(), 1e-12);
}

TEST(JsquadMetric, EmptyTextScoresZeroF1ButCanMatchExactly) {
  MecabWakati tagger;
  EXPECT_EQ(harness_jsquad_exact_match("", {""}), 1.0);
  EXPECT_EQ(harness_jsquad_f1("", {""}, tagger), 0.0);  // num_same == 0
  EXPECT_EQ(harness_jsquad_f1("東京", {""}, tagger), 0.0);
  EXPECT_TRUE(tagger.tokenize("").empty());
}

TEST(JsquadMetric, RemovePuncDropsOnlySingleCharacterPunctuation) {
  EXPECT_EQ(harness_remove_punc({"。", "…", "……", "》", "《", ".", "..", "(株)", "東京", "ー"}),
            (std::vector<std::string>{"……", "《", "..", "(株)", "東京", "ー"}));
}

TEST(JsquadMetric, EmojiTableIsEmojiPackage220) {
  EXPECT_TRUE(emoji_package_is_emoji(0xA9));     // ©
  EXPECT_TRUE(emoji_package_is_emoji(0x1F600));  // 😀
  EXPECT_TRUE(emoji_package_is_emoji(0x1FAF8));  // the last single code point in 2.2.0
  EXPECT_FALSE(emoji_package_is_emoji(U'#'));    // only the keycap sequence is an emoji
  EXPECT_FALSE(emoji_package_is_emoji(0x200D));  // ZWJ
  EXPECT_FALSE(emoji_package_is_emoji(0xFE0F));  // variation selector
  EXPECT_FALSE(emoji_package_is_emoji(0x3042));  // あ
  EXPECT_EQ(harness_remove_emoji("東京😀❤️✂"), "東京\uFE0F");
}

TEST(JsquadMetric, NoGoldsIsAnError) {
  MecabWakati tagger;
  EXPECT_THROW(harness_jsquad_exact_match("a", {}), Error);
  EXPECT_THROW(harness_jsquad_f1("a", {}, tagger), Error);
}

TEST(JsquadMetric, MissingDictionaryIsAOneLineError) {
  const std::string dir = "/nonexistent/unidic";
  const std::string msg = test::error_of([&] { MecabWakati tagger(dir); });
  EXPECT_TRUE(test::one_line_error(msg, dir, "unidic-mecab"));
}

TEST(JsquadMetric, AggregateOfNothingIsNaN) {
  JsquadAggregate a;
  EXPECT_TRUE(std::isnan(a.exact_match()));
  EXPECT_TRUE(std::isnan(a.f1()));
  a.add(1, 0.5);
  a.add(0, 0.25);
  EXPECT_EQ(a.exact_match(), 50.0);
  EXPECT_EQ(a.f1(), 37.5);
}

}  // namespace
}  // namespace hibari
