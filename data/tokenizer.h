// data/tokenizer.h — a Hugging Face tokenizer.json, loaded and run so that encode and decode give
// exactly what the `tokenizers` library gives: added/special tokens, normalizers, pre-tokenizers
// (PCRE2 regexes, ByteLevel, Metaspace, Digits), the BPE model (byte-level or byte-fallback),
// post-processors and decoders.  Checked against Llama-3, Llama-3.1, Mistral/Llama-2, Qwen3 and
// Gemma-3 files (tests/data/tokenizer_test.cpp).  A component this code does not implement is an
// error at load time, never a silent mis-tokenization.
//
// Thread safety: a loaded Tokenizer is immutable; encode/decode may run on many threads at once
// (each thread keeps its own word cache).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hibari {

struct TokenizerSpec;  // data/tokenizer_spec.h

// What encode does with the text of a special token (an added token with special=true, such as
// "<|endoftext|>") found inside the text.  match: it becomes that token, as HF does by default.
// ignore: it is tokenized as ordinary text, as HF with split_special_tokens=True (the string is
// still found and then passed over, so an added token inside it is not matched either), so that
// web text cannot inject a real end of document.  Added tokens that are not special are matched
// in both modes.
enum class SpecialTokensInText { match, ignore };

struct Tokenizer {
  // `path` is a tokenizer.json file or a directory holding one.  A tokenizer_config.json next to
  // it, when present, names the BOS and EOS tokens.
  explicit Tokenizer(const std::string& path);

  // add_special_tokens applies the post-processor's template (e.g. a leading BOS), as HF's
  // encode(text, add_special_tokens=...).  Text must be valid UTF-8 (else hibari::Error).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens,
                              SpecialTokensInText in_text = SpecialTokensInText::match) const;
  // Unknown ids are dropped, as HF does; invalid UTF-8 from byte tokens becomes U+FFFD.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // One past the largest id of the model vocabulary and the added tokens: the embedding rows
  // needed.
  size_t vocab_size() const;
  std::optional<int32_t> token_id(std::string_view token) const;
  // The token string of id (added tokens included), or nullopt.
  std::optional<std::string> token(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // Whether encode(text, true) starts with BOS.  The first Llama-3 tokenizer.json adds nothing, so
  // a data pipeline must add BOS itself (or warn) rather than silently train without it.
  bool adds_bos() const;
  // Whether decode(encode(text)) == text for every valid text (byte-level models without
  // normalization); others may lose or alter some characters (unknowns, normalization).
  bool lossless() const;
  const std::string& path() const;

  std::shared_ptr<const TokenizerSpec> spec;
};

}  // namespace hibari
