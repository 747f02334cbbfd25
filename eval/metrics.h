// eval/metrics.h — the per-example scores and their aggregation.
//
// Multiple choice (lm-evaluation-harness, and its Japanese fork's JGLUE tasks):
//   acc       1 when the choice with the largest log-likelihood is the gold one
//   acc_norm  the same after dividing each log-likelihood by its choice's length in characters
//             (Unicode code points of the choice text, delimiter excluded: Python's len(choice))
//   Ties go to the lowest index (numpy's argmax).
// Generation: the JP harness's exact_match and f1 are eval/jsquad_metric.h's.  hibari adds, the
// best over the gold answers:
//   char_f1      F1 of the multisets of characters (code points) of the normalized strings
//   Normalization (normalize_answer): Unicode whitespace (ASCII, U+3000 ideographic space, NBSP)
//   removed, ASCII letters lower-cased, ASCII punctuation and the Japanese punctuation
//   「」『』（）【】、。・！？：；〜 (full-width forms of the ASCII ones too) removed.  Japanese
//   has no spaces to split words at, so SQuAD's word-level F1 becomes character-level, as JSQuAD
//   evaluations do.
// Balanced tasks (the JP harness's BalancedMultipleChoiceTask: JNLI, MARC-ja), over gold and
// predicted choice indices:
//   balanced_acc  the mean over gold classes (in first-seen order) of each class's mean accuracy
//   mcc           scikit-learn's matthews_corrcoef (multiclass: from the confusion matrix over the
//                 labels present in gold or prediction; 0 when a marginal is constant)
//   macro_f1      scikit-learn's f1_score(average="macro"): the unweighted mean over the labels
//                 present in gold or prediction of 2tp / (2tp + fp + fn) (0 where that is 0/0)
//   Their standard errors (bootstrapped in the harness) are not computed.
// Aggregation: the mean over examples and the standard error of that mean,
//   sqrt(sum (x - mean)^2 / (n - 1) / n)  (lm-evaluation-harness's mean_stderr; NaN when n < 2).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hibari {

// Unicode code points of valid UTF-8 (invalid bytes count one each).
size_t utf8_length(std::string_view s);
std::vector<char32_t> utf8_code_points(std::string_view s);

// argmax of log_likelihoods (first on ties).
size_t argmax_choice(const std::vector<double>& log_likelihoods);
// argmax of log_likelihoods[i] / utf8_length(choices[i]) (a zero-length choice divides by 1).
size_t argmax_choice_normalized(const std::vector<double>& log_likelihoods,
                                const std::vector<std::string>& choices);

std::string normalize_answer(std::string_view s);
double char_f1(std::string_view prediction, const std::vector<std::string>& answers);

double balanced_accuracy(const std::vector<size_t>& gold, const std::vector<size_t>& pred);
double matthews_corrcoef(const std::vector<size_t>& gold, const std::vector<size_t>& pred);
double macro_f1(const std::vector<size_t>& gold, const std::vector<size_t>& pred);

struct MeanStderr {
  double mean = 0;
  double stderr_of_mean = 0;  // NaN when n < 2
};
MeanStderr mean_stderr(const std::vector<double>& values);

}  // namespace hibari
