// data/tokenizer_pretokenize.cpp — what happens to text before the BPE model sees it, as Hugging
// Face `tokenizers` does it: patterns (PCRE2 with UTF and Unicode properties, JIT-compiled),
// normalizers, and pre-tokenizers that cut a piece of text into words.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "data/tokenizer_spec.h"

namespace hibari {

struct CompiledRegex {
  pcre2_code* code = nullptr;
  std::string path, pattern;  // the tokenizer file and the regex, named when a match fails
  ~CompiledRegex() { pcre2_code_free(code); }
};

std::shared_ptr<const CompiledRegex> compile_regex(std::string_view path,
                                                   std::string_view pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto re = std::make_shared<CompiledRegex>();
  re->path = path;
  re->pattern = pattern;
  re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                           PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (re->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail_file(path, "cannot compile regex /" + std::string(pattern) + "/ at offset " +
                        std::to_string(offset) + ": " + reinterpret_cast<const char*>(message));
  }
  // JIT is an optimization only: the interpreter gives the same matches if it is unavailable.
  pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
  return re;
}

namespace {

// Per-thread PCRE2 scratch: match data and a JIT stack large enough for long runs of whitespace.
struct RegexScratch {
  pcre2_match_data* match = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  RegexScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~RegexScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(match);
  }
};

}  // namespace

void find_matches(std::vector<Span>& out, const Pattern& p, std::string_view text) {
  if (!p.regex) {
    if (p.literal.empty()) return;
    for (size_t at = text.find(p.literal); at != std::string_view::npos;
         at = text.find(p.literal, at + p.literal.size()))
      out.push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(at + p.literal.size())});
    return;
  }
  thread_local RegexScratch scratch;
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at <= text.size()) {
    // Text was checked as UTF-8 once on entry to encode; re-checking per call would be quadratic.
    int rc = pcre2_match(p.regex->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, scratch.match,
                         scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      // A catastrophic pattern (nested repeats) ends in PCRE2's match limit: name the tokenizer,
      // the regex and where in the text; the caller adds which document.
      std::string pattern = p.regex->pattern.substr(0, 80);
      fail_file(p.regex->path, "regex /" + pattern + "/ failed at byte " + std::to_string(at) +
                                   " of a " + std::to_string(text.size()) +
                                   "-byte text: " + reinterpret_cast<const char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match);
    out.push_back({static_cast<uint32_t>(ov[0]), static_cast<uint32_t>(ov[1])});
    if (ov[1] > ov[0]) {
      at = ov[1];
    } else {  // an empty match: step over one character
      at = ov[1] + (ov[1] < text.size() ? utf8_length(static_cast<unsigned char>(text[ov[1]])) : 1);
    }
  }
}

void replace_matches(std::string& text, const Pattern& p, std::string_view content,
                     std::vector<Span>& matches, std::string& scratch) {
  matches.clear();
  find_matches(matches, p, text);
  if (matches.empty()) return;
  scratch.clear();
  size_t prev = 0;
  for (Span m : matches) {
    scratch.append(text, prev, m.begin - prev);
    scratch += content;
    prev = m.end;
  }
  scratch.append(text, prev);
  text.swap(scratch);
}

const std::array<std::string, 256>& byte_level_chars() {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
  // map to U+0100.. in order, so every byte has a visible, non-space character.
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> c;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      utf8_append(c[b], printable ? static_cast<char32_t>(b) : next++);
    }
    return c;
  }();
  return chars;
}

int byte_level_byte(char32_t cp) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto& chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      size_t i = 0;
      inv[utf8_next(chars[b], i)] = static_cast<int16_t>(b);
    }
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

void normalize(std::string& text, const std::vector<Normalizer>& normalizers) {
  std::string out;
  std::vector<Span> matches;
  for (const Normalizer& n : normalizers) {
    switch (n.kind) {
      case NormalizerKind::unicode:
        unicode_normalize(out, text, n.form);
        text.swap(out);
        break;
      case NormalizerKind::prepend:
        if (!text.empty()) text.insert(0, n.content);
        break;
      case NormalizerKind::replace:
        replace_matches(text, n.pattern, n.content, matches, out);
        break;
      case NormalizerKind::strip: {
        size_t b = 0, e = text.size();
        if (n.strip_left) {
          for (size_t i = b; i < text.size(); b = i)
            if (!is_unicode_whitespace(utf8_next(text, i))) break;
        }
        if (n.strip_right) {
          while (e > b) {
            size_t s = e - 1;
            while (s > b && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
            size_t i = s;
            if (!is_unicode_whitespace(utf8_next(text, i))) break;
            e = s;
          }
        }
        text = text.substr(b, e - b);
        break;
      }
    }
  }
}

namespace {

// HF's SplitDelimiterBehavior applied to the matches found in one word [base, base + size):
// `matches` are match spans relative to the word, in order and non-overlapping.
void split_word(std::vector<Span>& out, const std::vector<Span>& matches, uint32_t base,
                uint32_t size, SplitBehavior behavior, bool invert) {
  // Cover the word with alternating (span, is_match) pieces, as HF's find_matches does.
  struct Piece {
    Span span;
    bool match;
  };
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  uint32_t prev = 0;
  for (Span m : matches) {
    if (m.begin != prev) pieces.push_back({{prev, m.begin}, invert});
    pieces.push_back({m, !invert});
    prev = m.end;
  }
  if (prev != size || pieces.empty()) pieces.push_back({{prev, size}, invert});
  size_t first_out = out.size();
  auto emit = [&](Span s) { out.push_back({base + s.begin, base + s.end}); };
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::removed:
      for (const Piece& p : pieces)
        if (!p.match) emit(p.span);
      break;
    case SplitBehavior::isolated:
      for (const Piece& p : pieces) emit(p.span);
      break;
    case SplitBehavior::merged_with_previous:
      for (const Piece& p : pieces) {
        if (p.match && !previous_match && out.size() > first_out) {
          out.back().end = base + p.span.end;
        } else {
          emit(p.span);
        }
        previous_match = p.match;
      }
      break;
    case SplitBehavior::merged_with_next:
      // HF folds from the right: a match joins the piece that follows it.
      for (size_t k = pieces.size(); k-- > 0;) {
        const Piece& p = pieces[k];
        if (p.match && !previous_match && out.size() > first_out) {
          out.back().begin = base + p.span.begin;
        } else {
          emit(p.span);
        }
        previous_match = p.match;
      }
      std::reverse(out.begin() + static_cast<ptrdiff_t>(first_out), out.end());
      break;
    case SplitBehavior::contiguous:
      for (size_t k = 0; k < pieces.size(); ++k) {
        const Piece& p = pieces[k];
        if (k > 0 && p.match == previous_match && out.size() > first_out) {
          out.back().end = base + p.span.end;
        } else {
          emit(p.span);
        }
        previous_match = p.match;
      }
      break;
  }
  // Empty words vanish, as in HF.
  size_t w = first_out;
  for (size_t k = first_out; k < out.size(); ++k)
    if (out[k].end > out[k].begin) out[w++] = out[k];
  out.resize(w);
}

// Ascii digits as single-char matches (HF's Digits splits with a char predicate).
void digit_matches(std::vector<Span>& out, std::string_view word) {
  for (uint32_t i = 0; i < word.size(); ++i)
    if (word[i] >= '0' && word[i] <= '9') out.push_back({i, i + 1});
}

}  // namespace

void pre_tokenize(std::string& words, std::vector<Span>& spans, std::string_view text,
                  const std::vector<PreTokenizer>& pre_tokenizers, bool first) {
  thread_local std::string buf, next_buf;
  thread_local std::vector<Span> cur, next, matches;
  buf.assign(text);
  cur.clear();
  if (!buf.empty()) cur.push_back({0, static_cast<uint32_t>(buf.size())});
  for (const PreTokenizer& pt : pre_tokenizers) {
    next.clear();
    switch (pt.kind) {
      case PreTokenizerKind::split:
      case PreTokenizerKind::digits:
        for (Span s : cur) {
          std::string_view word(buf.data() + s.begin, s.end - s.begin);
          matches.clear();
          if (pt.kind == PreTokenizerKind::split) {
            find_matches(matches, pt.pattern, word);
            split_word(next, matches, s.begin, s.end - s.begin, pt.behavior, pt.invert);
          } else {
            digit_matches(matches, word);
            split_word(next, matches, s.begin, s.end - s.begin,
                       pt.individual_digits ? SplitBehavior::isolated : SplitBehavior::contiguous,
                       false);
          }
        }
        cur.swap(next);
        break;
      case PreTokenizerKind::byte_level: {
        const auto& chars = byte_level_chars();
        next_buf.clear();
        for (Span s : cur) {
          std::string_view word(buf.data() + s.begin, s.end - s.begin);
          thread_local std::string prefixed;
          if (pt.add_prefix_space && word[0] != ' ') {
            prefixed.assign(" ");
            prefixed += word;
            word = prefixed;
          }
          matches.clear();
          size_t first_piece = next.size();
          if (pt.use_regex) {
            find_matches(matches, pt.pattern, word);
            split_word(next, matches, 0, static_cast<uint32_t>(word.size()),
                       SplitBehavior::isolated, false);
          } else {
            next.push_back({0, static_cast<uint32_t>(word.size())});
          }
          for (size_t k = first_piece; k < next.size(); ++k) {
            uint32_t begin = static_cast<uint32_t>(next_buf.size());
            for (uint32_t i = next[k].begin; i < next[k].end; ++i)
              next_buf += chars[static_cast<unsigned char>(word[i])];
            next[k] = {begin, static_cast<uint32_t>(next_buf.size())};
          }
        }
        buf.swap(next_buf);
        cur.swap(next);
        break;
      }
      case PreTokenizerKind::metaspace: {
        next_buf.clear();
        for (Span s : cur) {
          std::string_view word(buf.data() + s.begin, s.end - s.begin);
          uint32_t begin = static_cast<uint32_t>(next_buf.size());
          bool starts = word.substr(0, 1) == " " || word.starts_with(pt.replacement);
          if (!starts && (pt.prepend_scheme == PrependScheme::always ||
                          (pt.prepend_scheme == PrependScheme::first && first && s.begin == 0)))
            next_buf += pt.replacement;
          for (char c : word) {
            if (c == ' ') {
              next_buf += pt.replacement;
            } else {
              next_buf += c;
            }
          }
          Span w{begin, static_cast<uint32_t>(next_buf.size())};
          if (!pt.split) {
            next.push_back(w);
            continue;
          }
          std::string_view nw(next_buf.data() + w.begin, w.end - w.begin);
          matches.clear();
          Pattern rep{pt.replacement, nullptr};
          find_matches(matches, rep, nw);
          split_word(next, matches, w.begin, w.end - w.begin, SplitBehavior::merged_with_next,
                     false);
        }
        buf.swap(next_buf);
        cur.swap(next);
        break;
      }
    }
  }
  for (Span s : cur) {
    uint32_t begin = static_cast<uint32_t>(words.size());
    words.append(buf, s.begin, s.end - s.begin);
    spans.push_back({begin, static_cast<uint32_t>(words.size())});
  }
}

}  // namespace hibari
