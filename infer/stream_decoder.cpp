// infer/stream_decoder.cpp — see stream_decoder.h.
#include "infer/stream_decoder.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>

namespace hibari {

namespace {

// "<0xAB>": a byte-fallback token (Llama 2, Mistral, Gemma; SentencePiece's byte pieces).
bool is_byte_token(const TextTokenizer& t, int32_t id) {
  const std::optional<std::string> s = t.token(id);
  return s && s->size() == 6 && s->compare(0, 3, "<0x") == 0 && (*s)[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>((*s)[3])) &&
         std::isxdigit(static_cast<unsigned char>((*s)[4]));
}

size_t common_prefix(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Bytes in the UTF-8 sequence that starts with lead byte c (0 for a continuation byte).
size_t sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c < 0xC0) return 0;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

}  // namespace

size_t stable_utf8_prefix(const std::string& text) {
  size_t end = text.size();
  // A lead byte among the last three bytes whose sequence runs past the end.
  for (size_t back = 1; back <= 3 && back <= end; ++back) {
    const size_t len = sequence_length(static_cast<unsigned char>(text[end - back]));
    if (len == 0) continue;
    if (len > back) end -= back;
    break;
  }
  const std::string replacement = "\xEF\xBF\xBD";
  while (end >= 3 && text.compare(end - 3, 3, replacement) == 0) end -= 3;
  return end;
}

std::string stream_decoder_push(StreamDecoder& s, int32_t id) {
  s.ids.push_back(id);
  const TextTokenizer& t = *s.tokenizer;
  const std::string text = t.decode(s.ids, s.skip_special_tokens);
  size_t run_start = s.ids.size();
  // A token that decodes to nothing alone (a skipped special token) does not end the run: the
  // decoders never see it, so the bytes on both sides of it form one run.
  auto in_run = [&](int32_t id) {
    return is_byte_token(t, id) || t.decode({id}, s.skip_special_tokens).empty();
  };
  while (run_start > 0 && in_run(s.ids[run_start - 1])) --run_start;
  std::string stable = text;
  if (run_start < s.ids.size()) {
    const std::vector<int32_t> before(s.ids.begin(), s.ids.begin() + ptrdiff_t(run_start));
    stable.resize(common_prefix(text, t.decode(before, s.skip_special_tokens)));
  }
  stable.resize(stable_utf8_prefix(stable));
  // Text already printed is never taken back; what is new starts where it ends.
  if (stable.size() <= s.printed.size() || stable.compare(0, s.printed.size(), s.printed) != 0)
    return {};
  std::string piece = stable.substr(s.printed.size());
  s.printed = std::move(stable);
  return piece;
}

std::string stream_decoder_finish(StreamDecoder& s) {
  const std::string text = s.tokenizer->decode(s.ids, s.skip_special_tokens);
  if (text.size() <= s.printed.size()) return {};
  std::string piece = text.substr(s.printed.size());
  s.printed = text;
  return piece;
}

}  // namespace hibari
