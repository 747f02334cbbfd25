// data/text_tokenizer.cpp — see text_tokenizer.h.
#include "data/text_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace hibari {

namespace {

// What the first bytes say: a serialized ModelProto starts with its field 1 tag (0x0A), a JSON
// object with '{' after any whitespace.  0: neither.
char sniff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  int c = in.get();
  if (c == 0x0A) return 'm';
  while (c == ' ' || c == '\t' || c == '\r') c = in.get();
  return c == '{' ? 'j' : 0;
}

// SentencePiece says -1 for a token the model lacks.
std::optional<int32_t> present(int32_t id) {
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

TextTokenizer load_file(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  bool json = ext == ".json", sp = ext == ".model";
  if (!json && !sp) {
    const char kind = sniff(path);
    json = kind == 'j';
    sp = kind == 'm';
  }
  if (json) {
    Tokenizer t(path);
    std::string file = t.path();
    return {.model = std::move(t), .file = std::move(file)};
  }
  if (sp) return {.model = SentencePieceTokenizer(path), .file = path};
  fail_file(path, "not a tokenizer (expected a HF tokenizer.json or a SentencePiece .model)");
}

}  // namespace

TextTokenizer load_text_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      fs::path file = fs::path(path) / name;
      if (fs::exists(file, ec)) return load_file(file.string());
    }
    fail_file(path, "a directory holding neither tokenizer.json nor tokenizer.model");
  }
  if (!fs::exists(path, ec)) fail_file(path, "no such tokenizer file or directory");
  return load_file(path);
}

std::vector<int32_t> TextTokenizer::encode(std::string_view text, bool add_special_tokens,
                                           SpecialTokensInText in_text) const {
  if (const auto* sp = std::get_if<SentencePieceTokenizer>(&model)) {
    return sp->encode(text, add_special_tokens);  // control pieces are never matched in text
  }
  return std::get<Tokenizer>(model).encode(text, add_special_tokens, in_text);
}

std::string TextTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return std::visit([&](const auto& t) { return t.decode(ids, skip_special_tokens); }, model);
}

size_t TextTokenizer::vocab_size() const {
  return std::visit([](const auto& t) { return t.vocab_size(); }, model);
}

std::optional<int32_t> TextTokenizer::bos_id() const {
  if (const auto* sp = std::get_if<SentencePieceTokenizer>(&model)) return present(sp->bos_id());
  return std::get<Tokenizer>(model).bos_id();
}

std::optional<int32_t> TextTokenizer::eos_id() const {
  if (const auto* sp = std::get_if<SentencePieceTokenizer>(&model)) return present(sp->eos_id());
  return std::get<Tokenizer>(model).eos_id();
}

bool TextTokenizer::adds_bos() const {
  return std::visit([](const auto& t) { return t.adds_bos(); }, model);
}

std::optional<int32_t> TextTokenizer::token_id(std::string_view token) const {
  return std::visit([&](const auto& t) { return t.token_id(token); }, model);
}

std::optional<std::string> TextTokenizer::token(int32_t id) const {
  return std::visit([&](const auto& t) { return t.token(id); }, model);
}

const std::string& TextTokenizer::path() const { return file; }

}  // namespace hibari
