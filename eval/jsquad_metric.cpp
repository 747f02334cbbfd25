// eval/jsquad_metric.cpp — the JP harness's JSQuAD normalize_answer, exact_match and token F1.
#include "eval/jsquad_metric.h"

#include <mecab.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>

#include "core/error.h"
#include "eval/emoji_code_points.h"
#include "eval/neologdn.h"
#include "eval/python_text.h"

namespace hibari {
namespace {

// text.split(): the runs between Python whitespace (eval/python_text.h).
std::vector<std::u32string> py_split(std::u32string_view text) {
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && python_isspace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !python_isspace(text[i])) ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

// The character class of remove_emoji's regular expression.
bool in_emoji_pattern(char32_t c) {
  return (c >= 0x1F600 && c <= 0x1F64F) || (c >= 0x1F300 && c <= 0x1F5FF) ||
         (c >= 0x1F680 && c <= 0x1F6FF) || (c >= 0x1F1E0 && c <= 0x1F1FF) ||
         (c >= 0x2702 && c <= 0x27B0);
}

std::u32string remove_emoji(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (!emoji_package_is_emoji(c) && !in_emoji_pattern(c)) out.push_back(c);
  }
  return out;
}

std::string normalize(std::string_view s) {
  const std::u32string normalized = neologdn_normalize(remove_emoji(decode_utf8_lossy(s)));
  std::string out;
  for (const std::u32string& word : py_split(normalized)) {
    if (!out.empty()) out.push_back(' ');
    out += encode_utf8(word);
  }
  return out;
}

// remove_punc's `exclude`: its string of Japanese and full-width punctuation (note 》 without 《),
// then string.punctuation.
constexpr char32_t kPunctuation[] = {
    0xFF01, 0xFF1F, 0xFF61, 0x3002, 0xFF02, 0xFF03, 0xFF04, 0xFF05, 0xFF06, 0xFF07, 0xFF08, 0xFF09,
    0xFF0A, 0xFF0B, 0xFF0C, 0xFF0D, 0xFF0F, 0xFF1A, 0xFF1B, 0xFF1C, 0xFF1D, 0xFF1E, 0xFF20, 0xFF3B,
    0xFF3C, 0xFF3D, 0xFF3E, 0xFF3F, 0xFF40, 0xFF5B, 0xFF5C, 0xFF5D, 0xFF5E, 0xFF5F, 0xFF60, 0xFF62,
    0xFF63, 0xFF64, 0x3001, 0x3003, 0x300B, 0x300C, 0x300D, 0x300E, 0x300F, 0x3010, 0x3011, 0x3014,
    0x3015, 0x3016, 0x3017, 0x3018, 0x3019, 0x301A, 0x301B, 0x301C, 0x301D, 0x301E, 0x301F, 0x3030,
    0x303E, 0x303F, 0x2013, 0x2014, 0x2018, 0x2019, 0x201B, 0x201C, 0x201D, 0x201E, 0x201F, 0x2026,
    0x2027, 0xFE4F, 0x002E,
    // string.punctuation
    U'!', U'"', U'#', U'$', U'%', U'&', U'\'', U'(', U')', U'*', U'+', U',', U'-', U'.', U'/', U':',
    U';', U'<', U'=', U'>', U'?', U'@', U'[', U'\\', U']', U'^', U'_', U'`', U'{', U'|', U'}',
    U'~'};

bool is_punctuation_token(const std::string& token) {
  const std::u32string cps = decode_utf8_lossy(token);
  return cps.size() == 1 && std::find(std::begin(kPunctuation), std::end(kPunctuation), cps[0]) !=
                                std::end(kPunctuation);
}

double f1_score(const std::vector<std::string>& prediction_tokens,
                const std::vector<std::string>& ground_truth_tokens) {
  // sum((Counter(p) & Counter(g)).values()): per token, the smaller of the two counts.
  std::map<std::string, size_t> counts;
  for (const std::string& t : prediction_tokens) ++counts[t];
  size_t num_same = 0;
  for (const std::string& t : ground_truth_tokens) {
    auto it = counts.find(t);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++num_same;
    }
  }
  if (num_same == 0) return 0;  // also covers empty token lists: no division by zero
  const double precision =
      1.0 * static_cast<double>(num_same) / static_cast<double>(prediction_tokens.size());
  const double recall =
      1.0 * static_cast<double>(num_same) / static_cast<double>(ground_truth_tokens.size());
  return (2 * precision * recall) / (precision + recall);
}

void check_golds(const std::vector<std::string>& golds) {
  check(!golds.empty(), "JSQuAD scoring: a question without gold answers");
}

}  // namespace

MecabWakati::MecabWakati(const std::string& dictionary_dir) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::path(dictionary_dir) / "sys.dic", ec)) {
    fail_file(dictionary_dir,
              "no MeCab dictionary (sys.dic) here; install Debian's unidic-mecab "
              "(scripts/install-deps.sh) or name another UniDic directory");
  }
  // argv form: a directory with spaces in its name stays one argument.
  std::vector<std::string> args = {"mecab", "-Owakati", "-r", "/dev/null", "-d", dictionary_dir};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  tagger_ = mecab_new(static_cast<int>(argv.size()), argv.data());
  if (tagger_ == nullptr) {
    std::string why = mecab_strerror(nullptr);
    std::replace(why.begin(), why.end(), '\n', ' ');
    fail_file(dictionary_dir, "MeCab cannot open this dictionary: " + why);
  }
}

MecabWakati::~MecabWakati() {
  if (tagger_ != nullptr) mecab_destroy(tagger_);
}

std::vector<std::string> MecabWakati::tokenize(const std::string& text) {
  const char* parsed = mecab_sparse_tostr(tagger_, text.c_str());
  if (parsed == nullptr) {
    std::string why = mecab_strerror(tagger_);
    std::replace(why.begin(), why.end(), '\n', ' ');
    fail("MeCab cannot parse a JSQuAD answer: " + why);
  }
  std::vector<std::string> tokens;
  for (const std::u32string& word : py_split(decode_utf8_lossy(parsed))) {
    tokens.push_back(encode_utf8(word));
  }
  return tokens;
}

std::string harness_remove_emoji(std::string_view s) {
  return encode_utf8(remove_emoji(decode_utf8_lossy(s)));
}

std::string harness_normalize_answer(std::string_view s) { return normalize(s); }

std::vector<std::string> harness_remove_punc(const std::vector<std::string>& tokens) {
  std::vector<std::string> kept;
  for (const std::string& t : tokens) {
    if (!is_punctuation_token(t)) kept.push_back(t);
  }
  return kept;
}

double harness_jsquad_exact_match(std::string_view prediction,
                                  const std::vector<std::string>& golds) {
  check_golds(golds);
  const std::string p = normalize(prediction);
  for (const std::string& gold : golds) {
    if (normalize(gold) == p) return 1;
  }
  return 0;
}

double harness_jsquad_f1(std::string_view prediction, const std::vector<std::string>& golds,
                         MecabWakati& tagger) {
  check_golds(golds);
  const std::vector<std::string> p = harness_remove_punc(tagger.tokenize(normalize(prediction)));
  double best = -std::numeric_limits<double>::infinity();
  for (const std::string& gold : golds) {
    best = std::max(best, f1_score(p, harness_remove_punc(tagger.tokenize(normalize(gold)))));
  }
  return best;
}

double JsquadAggregate::exact_match() const {
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  return 100.0 * exact_match_sum / static_cast<double>(count);
}

double JsquadAggregate::f1() const {
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  return 100.0 * f1_sum / static_cast<double>(count);
}

}  // namespace hibari
