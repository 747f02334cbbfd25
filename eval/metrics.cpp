// eval/metrics.cpp — accuracy choices, answer normalization, EM / character F1, mean and stderr.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>

namespace hibari {

std::vector<char32_t> utf8_code_points(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) {  // invalid lead byte or cut sequence: one unit
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

size_t utf8_length(std::string_view s) { return utf8_code_points(s).size(); }

size_t argmax_choice(const std::vector<double>& lls) {
  size_t best = 0;
  for (size_t i = 1; i < lls.size(); ++i)
    if (lls[i] > lls[best]) best = i;
  return best;
}

size_t argmax_choice_normalized(const std::vector<double>& lls,
                                const std::vector<std::string>& choices) {
  std::vector<double> normalized(lls.size());
  for (size_t i = 0; i < lls.size(); ++i)
    normalized[i] = lls[i] / double(std::max<size_t>(1, utf8_length(choices[i])));
  return argmax_choice(normalized);
}

namespace {

bool is_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == 0x3000 ||
         c == 0x00A0;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  // Full-width forms of the ASCII punctuation (U+FF01..U+FF0F, U+FF1A..U+FF20, ...).
  if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
      (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
    return true;
  switch (c) {
    case 0x3001:  // 、
    case 0x3002:  // 。
    case 0x300C:  // 「
    case 0x300D:  // 」
    case 0x300E:  // 『
    case 0x300F:  // 』
    case 0x3010:  // 【
    case 0x3011:  // 】
    case 0x30FB:  // ・
    case 0x301C:  // 〜
      return true;
    default:
      return false;
  }
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::vector<char32_t> normalized_points(std::string_view s) {
  std::vector<char32_t> out;
  for (char32_t c : utf8_code_points(s)) {
    if (is_space(c) || is_punctuation(c)) continue;
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    out.push_back(c);
  }
  return out;
}

double char_f1_one(const std::vector<char32_t>& pred, const std::vector<char32_t>& gold) {
  if (pred.empty() || gold.empty()) return pred.empty() && gold.empty() ? 1.0 : 0.0;
  std::map<char32_t, long> counts;
  for (char32_t c : gold) ++counts[c];
  long common = 0;
  for (char32_t c : pred) {
    auto it = counts.find(c);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++common;
    }
  }
  if (common == 0) return 0.0;
  const double precision = double(common) / double(pred.size());
  const double recall = double(common) / double(gold.size());
  return 2.0 * precision * recall / (precision + recall);
}

}  // namespace

std::string normalize_answer(std::string_view s) {
  std::string out;
  for (char32_t c : normalized_points(s)) append_utf8(out, c);
  return out;
}

double char_f1(std::string_view prediction, const std::vector<std::string>& answers) {
  const std::vector<char32_t> p = normalized_points(prediction);
  double best = 0.0;
  for (const std::string& a : answers) best = std::max(best, char_f1_one(p, normalized_points(a)));
  return best;
}

double balanced_accuracy(const std::vector<size_t>& gold, const std::vector<size_t>& pred) {
  // Classes in first-seen order, as the harness's defaultdict; Python's sums run left to right.
  std::vector<size_t> classes;
  std::map<size_t, std::pair<double, size_t>> by_class;  // gold -> (correct, count)
  for (size_t i = 0; i < gold.size(); ++i) {
    auto [it, fresh] = by_class.try_emplace(gold[i], 0.0, 0);
    if (fresh) classes.push_back(gold[i]);
    it->second.first += pred[i] == gold[i] ? 1.0 : 0.0;
    ++it->second.second;
  }
  if (classes.empty()) return NAN;
  double sum = 0;
  for (size_t c : classes) sum += by_class[c].first / double(by_class[c].second);
  return sum / double(classes.size());
}

namespace {

// Confusion counts over the sorted labels present in gold or pred (scikit-learn's unique_labels).
struct Confusion {
  std::vector<size_t> labels;
  std::vector<double> counts;  // [true label][predicted label], labels.size() squared
};

Confusion confusion(const std::vector<size_t>& gold, const std::vector<size_t>& pred) {
  Confusion c;
  c.labels = gold;
  c.labels.insert(c.labels.end(), pred.begin(), pred.end());
  std::sort(c.labels.begin(), c.labels.end());
  c.labels.erase(std::unique(c.labels.begin(), c.labels.end()), c.labels.end());
  const size_t L = c.labels.size();
  c.counts.assign(L * L, 0.0);
  auto at = [&](size_t v) {
    return size_t(std::lower_bound(c.labels.begin(), c.labels.end(), v) - c.labels.begin());
  };
  for (size_t i = 0; i < gold.size(); ++i) c.counts[at(gold[i]) * L + at(pred[i])] += 1;
  return c;
}

}  // namespace

double matthews_corrcoef(const std::vector<size_t>& gold, const std::vector<size_t>& pred) {
  // scikit-learn sums the confusion matrix in float64; every quantity here is an integer below
  // 2^53 for any evaluation set, so integer arithmetic gives the same values.
  const Confusion c = confusion(gold, pred);
  const size_t L = c.labels.size();
  std::vector<int64_t> t_sum(L, 0), p_sum(L, 0);
  int64_t n_correct = 0, n = 0;
  for (size_t i = 0; i < L; ++i) {
    for (size_t j = 0; j < L; ++j) {
      const int64_t v = int64_t(c.counts[i * L + j]);
      t_sum[i] += v;
      p_sum[j] += v;
      n += v;
      if (i == j) n_correct += v;
    }
  }
  int64_t tp = 0, pp = 0, tt = 0;
  for (size_t i = 0; i < L; ++i) {
    tp += t_sum[i] * p_sum[i];
    pp += p_sum[i] * p_sum[i];
    tt += t_sum[i] * t_sum[i];
  }
  const double cov_ytyp = double(n_correct * n - tp);
  const double cov_ypyp = double(n * n - pp);
  const double cov_ytyt = double(n * n - tt);
  if (cov_ypyp * cov_ytyt == 0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double macro_f1(const std::vector<size_t>& gold, const std::vector<size_t>& pred) {
  const Confusion c = confusion(gold, pred);
  const size_t L = c.labels.size();
  if (L == 0) return NAN;
  double sum = 0;
  for (size_t k = 0; k < L; ++k) {
    double tp = c.counts[k * L + k], fp = 0, fn = 0;
    for (size_t o = 0; o < L; ++o) {
      if (o == k) continue;
      fp += c.counts[o * L + k];
      fn += c.counts[k * L + o];
    }
    const double denom = 2 * tp + fp + fn;
    sum += denom == 0 ? 0.0 : 2 * tp / denom;
  }
  return sum / double(L);
}

MeanStderr mean_stderr(const std::vector<double>& values) {
  MeanStderr r;
  const size_t n = values.size();
  if (n == 0) return {NAN, NAN};
  double sum = 0;
  for (double v : values) sum += v;
  r.mean = sum / double(n);
  if (n < 2) {
    r.stderr_of_mean = NAN;
    return r;
  }
  double ss = 0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  r.stderr_of_mean = std::sqrt(ss / double(n - 1) / double(n));
  return r;
}

}  // namespace hibari
