// data/tokenizer_unicode.cpp — UTF-8 helpers and Unicode normalization (UAX #15): full
// decomposition, canonical ordering by combining class, then canonical composition for NFC/NFKC.
#include "data/tokenizer_unicode.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "data/tokenizer_unicode_tables.h"

namespace hibari {

namespace ut = unicode_tables;

char32_t utf8_next(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  char32_t cp;
  size_t n = utf8_length(c);
  if (n == 1) {
    cp = c;
  } else if (n == 2) {
    cp = ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu);
  } else if (n == 3) {
    cp = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
  } else {
    cp = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
  }
  i += n;
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool utf8_valid(std::string_view s) {
  size_t i = 0, n = s.size();
  auto cont = [&](size_t k) { return (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_lead_length(c);
    if (len == 0 || i + len > n) return false;
    for (size_t k = 1; k < len; ++k)
      if (!cont(i + k)) return false;
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF.
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 >= 0x90))
      return false;
    i += len;
  }
  return true;
}

bool is_unicode_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

namespace {

constexpr char32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
constexpr char32_t l_count = 19, v_count = 21, t_count = 28, n_count = v_count * t_count,
                   s_count = l_count * n_count;

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const ut::CombiningClass* end = ut::combining_classes + ut::combining_classes_size;
  auto it = std::lower_bound(ut::combining_classes, end, cp,
                             [](const ut::CombiningClass& e, char32_t c) { return e.cp < c; });
  return it != end && it->cp == cp ? it->ccc : 0;
}

bool in_ranges(const ut::CodeRange* r, size_t n, char32_t cp) {
  auto it = std::upper_bound(r, r + n, cp,
                             [](char32_t c, const ut::CodeRange& e) { return c < e.first; });
  return it != r && cp <= (it - 1)->last;
}

void decompose(std::vector<char32_t>& out, char32_t cp, bool compat) {
  if (cp >= s_base && cp < s_base + s_count) {
    char32_t s = cp - s_base;
    out.push_back(l_base + s / n_count);
    out.push_back(v_base + (s % n_count) / t_count);
    if (s % t_count != 0) out.push_back(t_base + s % t_count);
    return;
  }
  const ut::Decomposition* table = compat ? ut::compatibility : ut::canonical;
  const char32_t* data = compat ? ut::compatibility_data : ut::canonical_data;
  const ut::Decomposition* end = table + (compat ? ut::compatibility_size : ut::canonical_size);
  auto it = std::lower_bound(table, end, cp,
                             [](const ut::Decomposition& e, char32_t c) { return e.cp < c; });
  if (it != end && it->cp == cp) {
    out.insert(out.end(), data + it->offset, data + it->offset + it->size);
  } else {
    out.push_back(cp);
  }
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count)
    return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
  if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base &&
      b < t_base + t_count)
    return a + (b - t_base);
  static const std::unordered_map<uint64_t, char32_t> table = [] {
    std::unordered_map<uint64_t, char32_t> m;
    for (size_t i = 0; i < ut::compositions_size; ++i) {
      const ut::Composition& c = ut::compositions[i];
      m.emplace((uint64_t{c.first} << 32) | c.second, c.composite);
    }
    return m;
  }();
  auto it = table.find((uint64_t{a} << 32) | b);
  return it == table.end() ? 0 : it->second;
}

}  // namespace

void unicode_normalize(std::string& out, std::string_view s, UnicodeForm form) {
  bool compat = form == UnicodeForm::nfkc || form == UnicodeForm::nfkd;
  bool compose = form == UnicodeForm::nfc || form == UnicodeForm::nfkc;
  const ut::CodeRange* unsafe = compat ? ut::nfkc_unsafe : ut::nfc_unsafe;
  size_t unsafe_n = compat ? ut::nfkc_unsafe_size : ut::nfc_unsafe_size;
  // Fast path: most text has no code point that normalization could change.
  if (compose) {
    bool stable = true;
    for (size_t i = 0; i < s.size() && stable;) {
      if (static_cast<unsigned char>(s[i]) < 0xC2) {
        ++i;
        continue;
      }
      stable = !in_ranges(unsafe, unsafe_n, utf8_next(s, i));
    }
    if (stable) {
      out.assign(s);
      return;
    }
  }
  std::vector<char32_t> cps;
  for (size_t i = 0; i < s.size();) decompose(cps, utf8_next(s, i), compat);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j, [](char32_t a, char32_t b) {
      return combining_class(a) < combining_class(b);
    });
    i = j;
  }
  if (compose && !cps.empty()) {
    std::vector<char32_t> composed;
    composed.reserve(cps.size());
    size_t starter = SIZE_MAX;
    uint8_t last_ccc = 0;
    for (char32_t cp : cps) {
      uint8_t ccc = combining_class(cp);
      if (starter != SIZE_MAX) {
        bool adjacent = composed.size() == starter + 1;
        // Not blocked: nothing between the starter and cp, or everything between has a lower class.
        if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
          char32_t c = compose_pair(composed[starter], cp);
          if (c != 0) {
            composed[starter] = c;
            continue;
          }
        }
      }
      if (ccc == 0) starter = composed.size();
      composed.push_back(cp);
      last_ccc = ccc;
    }
    cps.swap(composed);
  }
  out.clear();
  for (char32_t cp : cps) utf8_append(out, cp);
}

}  // namespace hibari
