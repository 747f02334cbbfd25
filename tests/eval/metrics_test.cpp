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

// scikit-learn's documented examples and hand-computed confusion matrices.
TEST(EvalMetrics, BalancedMetricsAreScikitLearns) {
  // f1_score(y_true, y_pred, average="macro") of scikit-learn's docstring: 0.26666...
  const std::vector<size_t> g = {0, 1, 2, 0, 1, 2}, p = {0, 2, 1, 0, 0, 1};
  EXPECT_NEAR(macro_f1(g, p), 0.26666666666666666, 1e-15);
  // Confusion rows (true) [2 0 0] [1 0 1] [0 2 0]: t = p-sums 2,2,2 / 3,2,1, trace 2, n 6:
  // cov = 2*6 - (6+4+2) = 0.
  EXPECT_EQ(matthews_corrcoef(g, p), 0.0);
  // Binary, rows [1 1] [1 3]: cov_ytyp 4*6 - (4+16) = 4, cov_ypyp = cov_ytyt = 36 - 20.
  // (Four-element lists are avoided here: GCC 12 at -O3 -march=native on AVX-512 built
  // {1, 1, 1, 0} as {1, 1, 1, 1} in this file.)
  const std::vector<size_t> binary_gold = {1, 1, 1, 0, 0, 1}, binary_pred = {1, 0, 1, 1, 0, 1};
  EXPECT_EQ(matthews_corrcoef(binary_gold, binary_pred), 0.25);
  // Rows [1 1 0] [0 2 0] [1 0 1]: cov_ytyp 4*6 - (4+6+2) = 12, cov_ypyp 36 - 14, cov_ytyt 36 - 12.
  const std::vector<size_t> g2 = {0, 0, 1, 1, 2, 2}, p2 = {0, 1, 1, 1, 2, 0};
  EXPECT_EQ(matthews_corrcoef(g2, p2), 12 / std::sqrt(24.0 * 22.0));
  // Per class 2tp/(2tp+fp+fn): 2/4, 4/5, 2/3.
  EXPECT_EQ(macro_f1(g2, p2), (2.0 / 4 + 4.0 / 5 + 2.0 / 3) / 3);
  // A constant prediction has no correlation; a label never predicted and never gold is not
  // averaged (only 0 and 2 here).
  const std::vector<size_t> g3 = {0, 2, 2}, constant = {2, 2, 2};
  EXPECT_EQ(matthews_corrcoef(g3, constant), 0.0);
  EXPECT_EQ(macro_f1(g3, constant), (0.0 + 4.0 / 5) / 2);
  // balanced_acc: the mean over gold classes of their accuracy (1/2 for class 0, 1/1 for 1).
  const std::vector<size_t> g4 = {0, 0, 1}, p4 = {0, 1, 1};
  const std::vector<size_t> g5 = {2, 0, 0, 0, 2}, p5 = {2, 1, 1, 0, 0};
  EXPECT_EQ(balanced_accuracy(g4, p4), (0.5 + 1.0) / 2);
  EXPECT_EQ(balanced_accuracy(g5, p5), (0.5 + 1.0 / 3) / 2);
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
