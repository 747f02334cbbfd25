// data/tokenizer_unicode.h — the UTF-8 and Unicode helpers the tokenizer needs: decoding code
// points, Unicode normalization forms (as Hugging Face's NFC/NFKC/NFD/NFKD normalizers), and the
// White_Space property (Rust's char::is_whitespace, used for added tokens' lstrip/rstrip).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hibari {

enum class UnicodeForm { nfc, nfd, nfkc, nfkd };

// Length of the UTF-8 sequence starting with byte b (1 for a stray continuation byte).
inline size_t utf8_length(unsigned char b) {
  return b < 0x80 ? 1 : b < 0xE0 ? (b >= 0xC0 ? 2 : 1) : b < 0xF0 ? 3 : 4;
}
// Length of the well-formed UTF-8 sequence that lead byte b starts: 1 for ASCII, 2 to 4, or 0 for a
// byte no well-formed sequence starts with (a continuation byte, C0, C1, F5 to FF).  The second
// byte's range is narrower after E0, ED, F0 and F4 (no overlong forms, surrogates, or code points
// past U+10FFFF).
inline size_t utf8_lead_length(unsigned char b) {
  return b < 0x80                ? 1
         : b >= 0xC2 && b < 0xE0 ? 2
         : b >= 0xE0 && b < 0xF0 ? 3
         : b >= 0xF0 && b < 0xF5 ? 4
                                 : 0;
}
// Decodes the code point at s[i] (valid UTF-8 assumed) and advances i.
char32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, char32_t cp);
// Whether s is well-formed UTF-8 (what a Rust &str, and so HF tokenizers, accepts).
bool utf8_valid(std::string_view s);
bool is_unicode_whitespace(char32_t cp);

// Writes the normalized form of s to out (out is overwritten).
void unicode_normalize(std::string& out, std::string_view s, UnicodeForm form);

}  // namespace hibari
