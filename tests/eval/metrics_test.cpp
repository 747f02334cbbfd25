// tests/eval/metrics_test.cpp — accuracy choices, answer normalization, exact match, character F1
// and the standard error, against hand-computed values.
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace hibari {
namespace {

TEST(EvalMetrics, Utf8LengthCountsCodePoints) {
  EXPECT_EQ(utf8_length("cat"), 3u);
  EXPECT_EQ(utf8_length("ライオン"), 4u);  // 12 bytes
  EXPECT_EQ(utf8_length("a😀b"), 3u);       // a 4-byte code point
  EXPECT_EQ(utf8_length("\xff"
                        "a"),
            2u);  // an invalid byte counts as one
}

TEST(EvalMetrics, AccNormDividesByCharactersNotBytes) {
  // Raw: -3.3 > -4 picks "cat"; per character -1.1 < -1.0 picks "ライオン".
  EXPECT_EQ(argmax_choice({-3.3, -4.0}), 0u);
  EXPECT_EQ(argmax_choice_normalized({-3.3, -4.0}, {"cat", "ライオン"}), 1u);
  // Per character -1.0 > -1.25 picks "cat"; per UTF-8 byte (-1.0 vs -5/12) it would be
  // "ライオン".
  EXPECT_EQ(argmax_choice_normalized({-3.0, -5.0}, {"cat", "ライオン"}), 0u);
  // Ties go to the first, as numpy's argmax.
  EXPECT_EQ(argmax_choice({-2.0, -1.0, -1.0}), 1u);
  EXPECT_EQ(argmax_choice_normalized({-2.0, -4.0}, {"a", "bb"}), 0u);
}

TEST(EvalMetrics, NormalizationDropsSpacesPunctuationAndCase) {
  EXPECT_EQ(normalize_answer("　琵琶湖。"), "琵琶湖");
  EXPECT_EQ(normalize_answer("「ジェイ・キャスト」"), "ジェイキャスト");
  EXPECT_EQ(normalize_answer(" J-CAST, Inc. "), "jcastinc");
  EXPECT_EQ(normalize_answer("ＡＢＣ！"), "ＡＢＣ");  // full-width letters stay; "！" goes
  EXPECT_EQ(normalize_answer("3776 メートル"), "3776メートル");
}

TEST(EvalMetrics, ExactMatchIsTheBestOverAnswers) {
  EXPECT_EQ(exact_match("　琵琶湖。", {"琵琶湖"}), 1.0);
  EXPECT_EQ(exact_match("Apple!", {"pear", "apple"}), 1.0);
  EXPECT_EQ(exact_match("琵琶", {"琵琶湖"}), 0.0);
  EXPECT_EQ(exact_match("", {"琵琶湖"}), 0.0);
}

TEST(EvalMetrics, CharF1HandComputed) {
  // common 2 of pred 3, gold 2: P 2/3, R 1 -> 0.8
  EXPECT_DOUBLE_EQ(char_f1("東京都", {"東京"}), 0.8);
  // "株式会社ジェイキャスト" (11) vs "ジェイキャスト" (7), common 7: P 7/11, R 1 -> 14/18
  EXPECT_DOUBLE_EQ(char_f1("株式会社ジェイ・キャスト", {"ジェイ・キャスト"}), 14.0 / 18.0);
  // Best over answers: the second answer matches exactly.
  EXPECT_DOUBLE_EQ(char_f1("ジェイ・キャスト", {"株式会社ジェイ・キャスト", "ジェイ・キャスト"}),
                   1.0);
  // Multisets: pred あ,あ,い vs gold あ,い,い share one あ and one い: P = R = 2/3.
  EXPECT_DOUBLE_EQ(char_f1("ああい", {"あいい"}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(char_f1("", {"琵琶湖"}), 0.0);
  EXPECT_DOUBLE_EQ(char_f1("xyz", {"琵琶湖"}), 0.0);
}

TEST(EvalMetrics, MeanStderrIsTheHarnessFormula) {
  // mean 0.75; sample variance (3 * 0.0625 + 0.5625) / 3 = 0.25; stderr sqrt(0.25 / 4) = 0.25
  MeanStderr m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  EXPECT_DOUBLE_EQ(m.stderr_of_mean, 0.25);
  MeanStderr one = mean_stderr({0.5});
  EXPECT_DOUBLE_EQ(one.mean, 0.5);
  EXPECT_TRUE(std::isnan(one.stderr_of_mean));
  EXPECT_DOUBLE_EQ(mean_stderr({0.5, 0.5, 0.5}).stderr_of_mean, 0.0);
}

}  // namespace
}  // namespace hibari
