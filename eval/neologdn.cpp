// eval/neologdn.cpp — neologdn v0.5.6's normalize and shorten_repeat (neologdn.pyx), step by step.
#include "eval/neologdn.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace hibari {
namespace {

using Pair = std::pair<char32_t, char32_t>;

// ASCII + DIGIT + KANA + SYMBOLS of neologdn.pyx, in its order (no key repeats, so order does not
// matter for the lookup).  Note what is missing: ＂ ＇ ＼ ｀ (U+FF02, FF07, FF3C, FF40) stay
// full-width, and ゛ ゜ map to the half-width marks ﾞ ﾟ, which then combine with the previous kana.
constexpr Pair kConversion[] = {
    // ASCII: full-width letters
    {0xFF41, 0x0061},
    {0xFF42, 0x0062},
    {0xFF43, 0x0063},
    {0xFF44, 0x0064},
    {0xFF45, 0x0065},
    {0xFF46, 0x0066},
    {0xFF47, 0x0067},
    {0xFF48, 0x0068},
    {0xFF49, 0x0069},
    {0xFF4A, 0x006A},
    {0xFF4B, 0x006B},
    {0xFF4C, 0x006C},
    {0xFF4D, 0x006D},
    {0xFF4E, 0x006E},
    {0xFF4F, 0x006F},
    {0xFF50, 0x0070},
    {0xFF51, 0x0071},
    {0xFF52, 0x0072},
    {0xFF53, 0x0073},
    {0xFF54, 0x0074},
    {0xFF55, 0x0075},
    {0xFF56, 0x0076},
    {0xFF57, 0x0077},
    {0xFF58, 0x0078},
    {0xFF59, 0x0079},
    {0xFF5A, 0x007A},
    {0xFF21, 0x0041},
    {0xFF22, 0x0042},
    {0xFF23, 0x0043},
    {0xFF24, 0x0044},
    {0xFF25, 0x0045},
    {0xFF26, 0x0046},
    {0xFF27, 0x0047},
    {0xFF28, 0x0048},
    {0xFF29, 0x0049},
    {0xFF2A, 0x004A},
    {0xFF2B, 0x004B},
    {0xFF2C, 0x004C},
    {0xFF2D, 0x004D},
    {0xFF2E, 0x004E},
    {0xFF2F, 0x004F},
    {0xFF30, 0x0050},
    {0xFF31, 0x0051},
    {0xFF32, 0x0052},
    {0xFF33, 0x0053},
    {0xFF34, 0x0054},
    {0xFF35, 0x0055},
    {0xFF36, 0x0056},
    {0xFF37, 0x0057},
    {0xFF38, 0x0058},
    {0xFF39, 0x0059},
    {0xFF3A, 0x005A},
    // ASCII: symbols (” ’ − ¥ ‘ are not full-width forms but are mapped too)
    {0xFF01, 0x0021},
    {0x201D, 0x0022},
    {0xFF03, 0x0023},
    {0xFF04, 0x0024},
    {0xFF05, 0x0025},
    {0xFF06, 0x0026},
    {0x2019, 0x0027},
    {0xFF08, 0x0028},
    {0xFF09, 0x0029},
    {0xFF0A, 0x002A},
    {0xFF0B, 0x002B},
    {0xFF0C, 0x002C},
    {0x2212, 0x002D},
    {0xFF0E, 0x002E},
    {0xFF0F, 0x002F},
    {0xFF1A, 0x003A},
    {0xFF1B, 0x003B},
    {0xFF1C, 0x003C},
    {0xFF1D, 0x003D},
    {0xFF1E, 0x003E},
    {0xFF1F, 0x003F},
    {0xFF20, 0x0040},
    {0xFF3B, 0x005B},
    {0x00A5, 0x005C},
    {0xFF3D, 0x005D},
    {0xFF3E, 0x005E},
    {0xFF3F, 0x005F},
    {0x2018, 0x0060},
    {0xFF5B, 0x007B},
    {0xFF5C, 0x007C},
    {0xFF5D, 0x007D},
    // DIGIT
    {0xFF10, 0x0030},
    {0xFF11, 0x0031},
    {0xFF12, 0x0032},
    {0xFF13, 0x0033},
    {0xFF14, 0x0034},
    {0xFF15, 0x0035},
    {0xFF16, 0x0036},
    {0xFF17, 0x0037},
    {0xFF18, 0x0038},
    {0xFF19, 0x0039},
    // KANA: half-width katakana and punctuation to full-width
    {0xFF71, 0x30A2},
    {0xFF72, 0x30A4},
    {0xFF73, 0x30A6},
    {0xFF74, 0x30A8},
    {0xFF75, 0x30AA},
    {0xFF76, 0x30AB},
    {0xFF77, 0x30AD},
    {0xFF78, 0x30AF},
    {0xFF79, 0x30B1},
    {0xFF7A, 0x30B3},
    {0xFF7B, 0x30B5},
    {0xFF7C, 0x30B7},
    {0xFF7D, 0x30B9},
    {0xFF7E, 0x30BB},
    {0xFF7F, 0x30BD},
    {0xFF80, 0x30BF},
    {0xFF81, 0x30C1},
    {0xFF82, 0x30C4},
    {0xFF83, 0x30C6},
    {0xFF84, 0x30C8},
    {0xFF85, 0x30CA},
    {0xFF86, 0x30CB},
    {0xFF87, 0x30CC},
    {0xFF88, 0x30CD},
    {0xFF89, 0x30CE},
    {0xFF8A, 0x30CF},
    {0xFF8B, 0x30D2},
    {0xFF8C, 0x30D5},
    {0xFF8D, 0x30D8},
    {0xFF8E, 0x30DB},
    {0xFF8F, 0x30DE},
    {0xFF90, 0x30DF},
    {0xFF91, 0x30E0},
    {0xFF92, 0x30E1},
    {0xFF93, 0x30E2},
    {0xFF94, 0x30E4},
    {0xFF95, 0x30E6},
    {0xFF96, 0x30E8},
    {0xFF97, 0x30E9},
    {0xFF98, 0x30EA},
    {0xFF99, 0x30EB},
    {0xFF9A, 0x30EC},
    {0xFF9B, 0x30ED},
    {0xFF9C, 0x30EF},
    {0xFF66, 0x30F2},
    {0xFF9D, 0x30F3},
    {0xFF67, 0x30A1},
    {0xFF68, 0x30A3},
    {0xFF69, 0x30A5},
    {0xFF6A, 0x30A7},
    {0xFF6B, 0x30A9},
    {0xFF6F, 0x30C3},
    {0xFF6C, 0x30E3},
    {0xFF6D, 0x30E5},
    {0xFF6E, 0x30E7},
    {0xFF61, 0x3002},
    {0xFF64, 0x3001},
    {0xFF65, 0x30FB},
    {0x309B, 0xFF9E},
    {0x309C, 0xFF9F},
    {0xFF62, 0x300C},
    {0xFF63, 0x300D},
    {0xFF70, 0x30FC},
    // SYMBOLS
    {0x201C, 0x0022},
};

// KANA_TEN: the kana that ﾞ voices.
constexpr Pair kKanaTen[] = {
    {0x30AB, 0x30AC}, {0x30AD, 0x30AE}, {0x30AF, 0x30B0}, {0x30B1, 0x30B2}, {0x30B3, 0x30B4},
    {0x30B5, 0x30B6}, {0x30B7, 0x30B8}, {0x30B9, 0x30BA}, {0x30BB, 0x30BC}, {0x30BD, 0x30BE},
    {0x30BF, 0x30C0}, {0x30C1, 0x30C2}, {0x30C4, 0x30C5}, {0x30C6, 0x30C7}, {0x30C8, 0x30C9},
    {0x30CF, 0x30D0}, {0x30D2, 0x30D3}, {0x30D5, 0x30D6}, {0x30D8, 0x30D9}, {0x30DB, 0x30DC},
    {0x30A6, 0x30F4}, {0x3046, 0x3094},
};

// KANA_MARU: the kana that ﾟ makes semi-voiced.
constexpr Pair kKanaMaru[] = {
    {0x30CF, 0x30D1}, {0x30D2, 0x30D4}, {0x30D5, 0x30D7}, {0x30D8, 0x30DA}, {0x30DB, 0x30DD},
    {0x306F, 0x3071}, {0x3072, 0x3074}, {0x3075, 0x3077}, {0x3078, 0x307A}, {0x307B, 0x307D},
};

constexpr char32_t kHyphens[] = {0x02D7, 0x058A, 0x2010, 0x2011, 0x2012,
                                 0x2013, 0x2043, 0x207B, 0x208B, 0x2212};
constexpr char32_t kChoonpus[] = {0xFE63, 0xFF0D, 0xFF70, 0x2014, 0x2015, 0x2500, 0x2501, 0x30FC};
constexpr char32_t kTildes[] = {0x007E, 0x223C, 0x223E, 0x301C, 0x3030, 0xFF5E};

constexpr char32_t kChoonpu = 0x30FC;     // ー
constexpr char32_t kDakuten = 0xFF9E;     // ﾞ
constexpr char32_t kHandakuten = 0xFF9F;  // ﾟ
constexpr char32_t kWaveDash = 0x301C;    // 〜
constexpr char32_t kIdeographicSpace = 0x3000;

template <size_t N>
bool contains(const char32_t (&set)[N], char32_t c) {
  return std::find(std::begin(set), std::end(set), c) != std::end(set);
}

// The value for key c, or 0 when c is not a key (no table maps anything to or from U+0000).
template <size_t N>
char32_t lookup(const Pair (&map)[N], char32_t c) {
  for (const Pair& p : map) {
    if (p.first == c) return p.second;
  }
  return 0;
}

// neologdn's `blocks`: CJK unified ideographs, hiragana, katakana, CJK symbols and punctuation
// from U+3001 (the ideographic space U+3000 is not in it), half-width and full-width forms.
bool in_blocks(char32_t c) {
  return (c >= 19968 && c < 40960) || (c >= 12352 && c < 12448) || (c >= 12448 && c < 12544) ||
         (c >= 12289 && c < 12352) || (c >= 65280 && c < 65520);
}

bool in_basic_latin(char32_t c) { return c < 128; }

// Python's text[start:end] for a step of 1: negative indices count from the end, then both clamp.
std::u32string py_slice(const std::u32string& text, int64_t start, int64_t end) {
  const auto n = static_cast<int64_t>(text.size());
  auto clamp = [n](int64_t i) {
    if (i < 0) i += n;
    return std::clamp<int64_t>(i, 0, n);
  };
  start = clamp(start);
  end = clamp(end);
  if (end <= start) return {};
  return text.substr(static_cast<size_t>(start), static_cast<size_t>(end - start));
}

}  // namespace

std::u32string neologdn_shorten_repeat(std::u32string_view input, int repeat_threshold,
                                       int max_repeat_substr_length) {
  std::u32string text(input);
  int64_t i = 0;
  while (i < static_cast<int64_t>(text.size())) {
    // As in the Cython: the length and the range of substring lengths are fixed per position,
    // even when the text shrinks inside the loop.
    const auto text_length = static_cast<int64_t>(text.size());
    int64_t upper = (text_length - i) / 2;
    if (max_repeat_substr_length != 0 && max_repeat_substr_length < upper) {
      upper = max_repeat_substr_length + 1;
    }
    for (int64_t repeat_length = 1; repeat_length < upper; ++repeat_length) {
      const std::u32string substr = py_slice(text, i, i + repeat_length);
      int64_t right_start = i + repeat_length;
      int64_t right_end = right_start + repeat_length;
      std::u32string right_substr = py_slice(text, right_start, right_end);
      int64_t num_repeat_substrs = 1;
      while (substr == right_substr && right_end <= text_length) {
        ++num_repeat_substrs;
        right_start += repeat_length;
        right_end += repeat_length;
        right_substr = py_slice(text, right_start, right_end);
      }
      if (num_repeat_substrs > repeat_threshold) {
        text = py_slice(text, 0, i + repeat_length * repeat_threshold) +
               py_slice(text, i + repeat_length * num_repeat_substrs,
                        static_cast<int64_t>(text.size()));
      }
    }
    ++i;
  }
  return text;
}

std::u32string neologdn_normalize(std::u32string_view text, const NeologdnOptions& options) {
  if (text.empty()) return {};
  const bool remove_space = options.remove_space;
  std::u32string buf(text.size() + 1, U'\0');
  char32_t prev = U'\0';
  size_t pos = 0;
  bool lattin_space = false;  // the last thing written is a space after a basic-latin character

  for (char32_t c : text) {
    if (c == U' ' || c == kIdeographicSpace) {
      c = U' ';
      if ((pos == 0 || prev == U' ' || in_blocks(prev)) && remove_space) {
        continue;
      } else if (prev != U'*' && pos > 0 && in_basic_latin(prev)) {
        lattin_space = true;
        buf[pos] = c;
      } else if (remove_space) {
        // Drop the space: pos steps back here and forward below, leaving it where it was.
        if (pos > 0) --pos;
      } else {
        buf[pos] = c;
      }
    } else {
      if (contains(kHyphens, c)) {
        if (prev == U'-') continue;
        buf[pos] = c = U'-';
        lattin_space = false;
      } else if (contains(kChoonpus, c)) {
        if (prev == kChoonpu) continue;
        buf[pos] = c = kChoonpu;
        lattin_space = false;
      } else if (contains(kTildes, c)) {
        // Any other `tilde` string removes, as 'remove' does.
        if (options.tilde == NeologdnTilde::kIgnore) {
          buf[pos] = c;
        } else if (options.tilde == NeologdnTilde::kNormalize) {
          buf[pos] = c = U'~';
        } else if (options.tilde == NeologdnTilde::kNormalizeZenkaku) {
          buf[pos] = c = kWaveDash;
        } else {
          continue;
        }
        lattin_space = false;
      } else {
        if (char32_t to = lookup(kConversion, c)) c = to;
        // The voicing marks combine with `prev` (the last character seen, not necessarily the
        // one at buf[pos - 1]), replacing the character before them.
        if (c == kDakuten && pos > 0 && lookup(kKanaTen, prev)) {
          --pos;
          c = lookup(kKanaTen, prev);
        } else if (c == kHandakuten && pos > 0 && lookup(kKanaMaru, prev)) {
          --pos;
          c = lookup(kKanaMaru, prev);
        }
        // A space between latin text and a CJK character goes.
        if (lattin_space && pos > 0 && in_blocks(c) && remove_space) --pos;
        lattin_space = false;
        buf[pos] = c;
      }
    }
    prev = c;
    ++pos;
  }

  if (pos > 0 && buf[pos - 1] == U' ') --pos;
  buf.resize(pos);

  if (options.repeat != 0) {
    return neologdn_shorten_repeat(buf, options.repeat, options.max_repeat_substr_length);
  }
  return buf;
}

std::string neologdn_normalize(std::string_view utf8, const NeologdnOptions& options) {
  return encode_utf8(neologdn_normalize(decode_utf8_lossy(utf8), options));
}

std::u32string decode_utf8_lossy(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if (b0 < 0x80) {
      len = 1;
      cp = b0;
    } else if (b0 >= 0xC2 && b0 < 0xE0) {
      len = 2;
      cp = b0 & 0x1F;
      min = 0x80;
    } else if (b0 >= 0xE0 && b0 < 0xF0) {
      len = 3;
      cp = b0 & 0x0F;
      min = 0x800;
    } else if (b0 >= 0xF0 && b0 < 0xF5) {
      len = 4;
      cp = b0 & 0x07;
      min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0) == 0x80;
      cp = (cp << 6) | (b & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    if (ok && (cp < min || (cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF)) ok = false;
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(0xFFFD);
      ++i;
    }
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size() * 3);
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

}  // namespace hibari
