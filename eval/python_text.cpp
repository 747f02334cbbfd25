// eval/python_text.cpp — Python's whitespace over UTF-8.
#include "eval/python_text.h"

#include <cstdint>

namespace hibari {

namespace {

// One code point of UTF-8 at s[i]: returns its length in bytes (1 for an invalid byte, which is
// then never whitespace).
size_t next_code_point(std::string_view s, size_t i, char32_t* c) {
  const uint8_t b = uint8_t(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *c = 0xFFFD;
    return 1;
  }
  char32_t v = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const uint8_t t = uint8_t(s[i + k]);
    if ((t >> 6) != 2) {
      *c = 0xFFFD;
      return 1;
    }
    v = (v << 6) | (t & 0x3F);
  }
  *c = v;
  return n;
}

}  // namespace

bool python_isspace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  switch (c) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::string python_strip(std::string_view s) {
  size_t begin = s.size(), end = 0;
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    const size_t n = next_code_point(s, i, &c);
    if (!python_isspace(c)) {
      if (begin == s.size()) begin = i;
      end = i + n;
    }
    i += n;
  }
  return begin >= end ? std::string() : std::string(s.substr(begin, end - begin));
}

std::vector<std::string> python_split(std::string_view s) {
  std::vector<std::string> out;
  size_t word = std::string_view::npos;
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    const size_t n = next_code_point(s, i, &c);
    if (python_isspace(c)) {
      if (word != std::string_view::npos) out.emplace_back(s.substr(word, i - word));
      word = std::string_view::npos;
    } else if (word == std::string_view::npos) {
      word = i;
    }
    i += n;
  }
  if (word != std::string_view::npos) out.emplace_back(s.substr(word));
  return out;
}

size_t python_regex_split_count(std::string_view s) {
  // Pieces = whitespace runs + 1 (re.split keeps the empty strings at either end).
  size_t runs = 0;
  bool in_run = false;
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    i += next_code_point(s, i, &c);
    const bool space = python_isspace(c);
    if (space && !in_run) ++runs;
    in_run = space;
  }
  return runs + 1;
}

}  // namespace hibari
