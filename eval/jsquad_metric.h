// eval/jsquad_metric.h — JSQuAD's exact_match and f1 exactly as the JP LM Evaluation Harness
// (Stability-AI/lm-evaluation-harness, jp-stable, commit effdbeaf742e, lm_eval/jasquad/evaluate.py)
// computes them:
//   normalize_answer(s) = white_space_fix(neologdn.normalize(remove_emoji(s)))
//     remove_emoji    drops each code point c with emoji.is_emoji(c) (eval/emoji_code_points.h),
//                     then U+1F600-1F64F, 1F300-1F5FF, 1F680-1F6FF, 1F1E0-1F1FF, 2702-27B0
//     neologdn        eval/neologdn.h with neologdn's defaults
//     white_space_fix " ".join(text.split()): runs of Python's str.isspace() characters become one
//                     ' ', none at either end
//   exact_match = max over golds of normalize(pred) == normalize(gold)
//   f1          = max over golds of the F1 of the token multisets (collections.Counter overlap),
//                 tokens = remove_punc(MeCab wakati(normalize(s)).split()), 0 when nothing overlaps
//   aggregate   = 100 * sum / number of questions, for each.
// Tokenizer: the harness uses fugashi's Tagger("-Owakati") with the unidic-lite dictionary (UniDic
// 2.1.2).  Debian has no unidic-lite, so hibari opens the same MeCab library with Debian's
// unidic-mecab (UniDic 3.1.1, /var/lib/mecab/dic/unidic); the two UniDic versions can split a few
// words differently, which moves F1 (never exact_match).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

struct mecab_t;  // mecab.h's tagger; only eval/jsquad_metric.cpp includes mecab.h

namespace hibari {

inline constexpr const char* kDefaultUnidicDir = "/var/lib/mecab/dic/unidic";

// A MeCab tagger in wakati mode: `-Owakati -d <dictionary_dir> -r /dev/null` (the empty rc file
// keeps /etc/mecabrc, ~/.mecabrc and $MECABRC, which may name another dictionary or a user
// dictionary, out of it).  Opening one loads the dictionary (tens of MB): open it once and reuse
// it for every question.  Not thread-safe: MeCab's tagger writes its result into its own buffer,
// so use one tagger per thread.  A missing dictionary throws a hibari Error naming the directory.
class MecabWakati {
 public:
  explicit MecabWakati(const std::string& dictionary_dir = kDefaultUnidicDir);
  ~MecabWakati();
  MecabWakati(const MecabWakati&) = delete;
  MecabWakati& operator=(const MecabWakati&) = delete;

  // tagger.parse(text).split(): the surface forms, split on Python's str.isspace() characters.
  // As fugashi, MeCab reads text up to its first NUL byte.
  std::vector<std::string> tokenize(const std::string& text);

 private:
  mecab_t* tagger_ = nullptr;
};

// remove_emoji only (the first step of harness_normalize_answer).
std::string harness_remove_emoji(std::string_view s);

// normalize_answer of the harness, on UTF-8 (an invalid byte reads as U+FFFD).
std::string harness_normalize_answer(std::string_view s);

// remove_punc: drops the tokens that are exactly one of the harness's punctuation characters.
std::vector<std::string> harness_remove_punc(const std::vector<std::string>& tokens);

// 1 when normalize(prediction) equals normalize(gold) for some gold, else 0.  golds must not be
// empty (Python's max() of nothing raises; so does this).
double harness_jsquad_exact_match(std::string_view prediction,
                                  const std::vector<std::string>& golds);

// The best token F1 over the golds, in [0, 1].  An empty prediction or gold scores 0 (even against
// an empty one: no token is shared).  golds must not be empty.
double harness_jsquad_f1(std::string_view prediction, const std::vector<std::string>& golds,
                         MecabWakati& tagger);

// The harness's aggregation: sums in question order, then 100 * sum / count.
struct JsquadAggregate {
  double exact_match_sum = 0;
  double f1_sum = 0;
  size_t count = 0;

  void add(double exact_match, double f1) {
    exact_match_sum += exact_match;
    f1_sum += f1;
    ++count;
  }
  // 0-100; NaN when no question was added (the harness would divide by zero).
  double exact_match() const;
  double f1() const;
};

}  // namespace hibari
