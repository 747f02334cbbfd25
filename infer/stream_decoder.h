// infer/stream_decoder.h — incremental detokenization for streamed output, as Hugging Face's
// TextStreamer does it: the whole sequence so far is decoded again after every token and only text
// that no later token can change is handed out.  Concatenated, the pieces are exactly
// tokenizer.decode(all ids), also for SentencePiece's dropped leading space and for characters
// spelt with byte tokens.
//
// What is held back: a trailing incomplete UTF-8 sequence, trailing U+FFFD (the decoders' stand-in
// for bytes that may still become a character), and the text of a trailing run of byte-fallback
// tokens ("<0xE6>"): Hugging Face's ByteFallback decoder turns the whole run into one U+FFFD per
// byte when any part of it is invalid, so a character spelt with byte tokens is final only when a
// non-byte token (or the end) closes its run; a skipped special token between byte tokens does not
// close it, since the decoders never see it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"

namespace hibari {

struct StreamDecoder {
  const TextTokenizer* tokenizer = nullptr;
  bool skip_special_tokens = true;
  std::vector<int32_t> ids;
  std::string printed;  // the text handed out so far: a prefix of decode(ids)
};

// Appends `id` and returns the text that became final with it (often empty).
std::string stream_decoder_push(StreamDecoder& s, int32_t id);
// The rest of decode(ids) at the end of the sequence.
std::string stream_decoder_finish(StreamDecoder& s);

// How many leading bytes of `text` can be shown without changing: `text` less a trailing
// incomplete UTF-8 sequence and then any trailing U+FFFD.
size_t stable_utf8_prefix(const std::string& text);

}  // namespace hibari
