// data/text_tokenizer.h — the one tokenizer type the rest of hibari (trainer, data pipeline, CLI)
// uses: a Hugging Face tokenizer.json (data/tokenizer.h) or a SentencePiece .model
// (data/sentencepiece_tokenizer.h) behind the same calls.  Which one a path is comes from the
// path, never from a flag: load_text_tokenizer looks at the name, and at the first byte when the
// name says nothing.
//
// Thread safety: as the tokenizers it holds, immutable once loaded; encode/decode may run on many
// threads at once.  Copies are cheap and share the loaded model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"

namespace hibari {

struct TextTokenizer {
  // add_special_tokens: the HF post-processor's template, or SentencePiece's BOS (as HF's
  // LlamaTokenizer).  in_text says what a special-token string inside the text becomes
  // (data/tokenizer.h).  SentencePiece never turns text into a control token (<s>, </s>): its
  // encoder leaves control pieces out of matching, so for it both modes are the same;
  // user-defined symbols, which are not special, are matched in both, as HF does.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens,
                              SpecialTokensInText in_text = SpecialTokensInText::match) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  // Rows of the embedding table needed: ids are 0 .. vocab_size() - 1.
  size_t vocab_size() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // Whether encode(text, true) starts with BOS.
  bool adds_bos() const;
  std::optional<int32_t> token_id(std::string_view token) const;
  // The token string of id, or nullopt.
  std::optional<std::string> token(int32_t id) const;
  // The file loaded (tokenizer.json or .model), also when a directory was given.
  const std::string& path() const;
  bool is_sentencepiece() const { return std::holds_alternative<SentencePieceTokenizer>(model); }

  std::variant<Tokenizer, SentencePieceTokenizer> model;
  std::string file;
};

// `path` is a tokenizer.json, a SentencePiece .model, or a directory holding tokenizer.json
// (preferred: it is what transformers loads) or tokenizer.model.  Anything else is a hibari::Error
// "path: problem".
TextTokenizer load_text_tokenizer(const std::string& path);

}  // namespace hibari
