// data/tokenizer_decode.cpp — Hugging Face decoders, each a pass over the list of token strings
// (decode_chain), run in order; the result is the concatenation of what the last pass leaves.
#include <string>

#include "data/tokenizer_spec.h"
#include "data/tokenizer_unicode.h"

namespace hibari {

namespace {

const std::string replacement_char = "\xEF\xBF\xBD";  // U+FFFD

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t len = utf8_lead_length(c);
    // Count how many following bytes continue a well-formed sequence (first continuation byte
    // has a narrower range after E0, ED, F0, F4).
    size_t good = 1;
    if (len > 0) {
      for (; good < len && i + good < s.size(); ++good) {
        unsigned char d = static_cast<unsigned char>(s[i + good]);
        unsigned char lo = 0x80, hi = 0xBF;
        if (good == 1) {
          if (c == 0xE0) lo = 0xA0;
          if (c == 0xED) hi = 0x9F;
          if (c == 0xF0) lo = 0x90;
          if (c == 0xF4) hi = 0x8F;
        }
        if (d < lo || d > hi) break;
      }
    }
    if (len > 0 && good == len) {
      out.append(s.substr(i, len));
    } else {
      out += replacement_char;
    }
    i += len > 0 && good == len ? len : good;
  }
  return out;
}

// "<0xAB>" -> 0xAB, else -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

std::string run_decoders(std::vector<std::string> tokens,
                         const std::vector<TokenDecoder>& decoders) {
  std::vector<Span> matches;
  std::string scratch;  // reused by the Replace decoder
  for (const TokenDecoder& d : decoders) {
    switch (d.kind) {
      case DecoderKind::byte_level: {
        // A token whose chars all map back to bytes becomes those bytes; others stay as written.
        std::string bytes;
        for (const std::string& t : tokens) {
          size_t start = bytes.size();
          bool all = true;
          for (size_t i = 0; i < t.size() && all;) {
            int b = byte_level_byte(utf8_next(t, i));
            if (b < 0) {
              all = false;
            } else {
              bytes += static_cast<char>(b);
            }
          }
          if (!all) {
            bytes.resize(start);
            bytes += t;
          }
        }
        tokens.assign(1, utf8_lossy(bytes));
        break;
      }
      case DecoderKind::replace:
        for (std::string& t : tokens) replace_matches(t, d.pattern, d.content, matches, scratch);
        break;
      case DecoderKind::byte_fallback: {
        // Runs of <0xXX> tokens become their UTF-8 text, or one U+FFFD per byte if invalid.
        std::vector<std::string> out;
        std::string run;
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (utf8_valid(run)) {
            out.push_back(run);
          } else {
            for (size_t k = 0; k < run_tokens; ++k) out.push_back(replacement_char);
          }
          run.clear();
          run_tokens = 0;
        };
        for (std::string& t : tokens) {
          int b = byte_token(t);
          if (b >= 0) {
            run += static_cast<char>(b);
            ++run_tokens;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case DecoderKind::fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderKind::strip: {
        // Up to `start` leading and `stop` trailing chars equal to content are cut from each token.
        for (std::string& t : tokens) {
          std::vector<std::pair<size_t, size_t>> chars;  // (offset, bytes)
          for (size_t i = 0; i < t.size();) {
            size_t b = i;
            utf8_next(t, i);
            chars.push_back({b, i - b});
          }
          auto is_content = [&](size_t k) {
            return t.compare(chars[k].first, chars[k].second, d.content) == 0;
          };
          size_t start_cut = 0, stop_cut = chars.size();
          for (size_t k = 0; k < std::min(d.start, chars.size()) && is_content(k); ++k)
            start_cut = k + 1;
          for (size_t k = 0; k < d.stop && k < chars.size(); ++k) {
            size_t index = chars.size() - k - 1;
            if (!is_content(index)) break;
            stop_cut = index;
          }
          if (start_cut >= stop_cut) {
            t.clear();
          } else {
            size_t b = chars[start_cut].first;
            size_t e = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
            t = t.substr(b, e - b);
          }
        }
        break;
      }
      case DecoderKind::metaspace:
        // The replacement char becomes a space, except in the first token where a prepended one
        // is dropped.
        for (size_t k = 0; k < tokens.size(); ++k) {
          std::string out;
          std::string& t = tokens[k];
          for (size_t i = 0; i < t.size();) {
            if (!d.content.empty() && t.compare(i, d.content.size(), d.content) == 0) {
              if (!(k == 0 && d.prepend_scheme != PrependScheme::never)) out += ' ';
              i += d.content.size();
            } else {
              out += t[i++];
            }
          }
          t.swap(out);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace hibari
