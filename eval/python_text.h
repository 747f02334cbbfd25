// eval/python_text.h — the few Python string operations the JP LM Evaluation Harness's prompts and
// metrics rely on, with Python's definition of whitespace (str.isspace), not C's.
//
// Python's str.strip() / str.split() treat as whitespace every code point whose bidirectional
// class is WS, B or S or whose category is Zs: \t \n \v \f \r, U+001C-001F, space, U+0085, U+00A0,
// U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F and U+3000 (the ideographic space that
// Japanese text is full of).  `re.split(r"\s+", s)` on a str uses the same set.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hibari {

bool python_isspace(char32_t c);
// s.strip(): leading and trailing Python whitespace removed (invalid UTF-8 bytes are kept).
std::string python_strip(std::string_view s);
// s.split(): the runs of non-whitespace, in order (no empty strings).
std::vector<std::string> python_split(std::string_view s);
// len(re.split(r"\s+", s)): the word count of lm-evaluation-harness's perplexity tasks (an empty
// leading or trailing piece counts, as Python's re.split gives it).
size_t python_regex_split_count(std::string_view s);

}  // namespace hibari
