// data/sentencepiece_tokenizer.cpp — SentencePieceTokenizer over sentencepiece::
// SentencePieceProcessor, and train_sentencepiece over SentencePieceTrainer::Train.
#include "data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "core/error.h"

namespace hibari {

namespace {

// A library message on one line.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string join(const std::vector<std::string>& items, std::string_view what) {
  std::string out;
  for (const std::string& item : items) {
    if (item.find(',') != std::string::npos) {
      fail("train_sentencepiece: " + std::string(what) + " '" + item +
           "' holds a comma, which SentencePiece's option lists cannot carry");
    }
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

// Feeds SentencePieceTrainOptions::sentences to the trainer.
struct VectorIterator : sentencepiece::SentenceIterator {
  explicit VectorIterator(const std::vector<std::string>& s) : sentences(s) {}
  bool done() const override { return i >= sentences.size(); }
  void Next() override { ++i; }
  const std::string& value() const override { return sentences[i]; }
  sentencepiece::util::Status status() const override { return {}; }

  const std::vector<std::string>& sentences;
  size_t i = 0;
};

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path) : file(path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail_file(path, "no such file");
  if (std::filesystem::is_directory(path, ec)) {
    fail_file(path, "is a directory, not a SentencePiece .model file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail_file(path, "read error");
  // A serialized ModelProto starts with its field 1 (the pieces, length-delimited): tag 0x0A.
  // Checking it first keeps obvious non-models (text, JSON, other binaries) away from the parser.
  if (bytes.empty() || bytes[0] != '\x0a') {
    fail_file(path, "not a SentencePiece model (expected a serialized ModelProto)");
  }
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    fail_file(path, "not a SentencePiece model (" + one_line(status.ToString()) + ")");
  }
  if (sp->GetPieceSize() <= 0) fail_file(path, "not a SentencePiece model (no pieces)");
  processor = std::move(sp);
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool add_special_tokens) const {
  std::vector<int> ids;
  const auto status = processor->Encode(text, &ids);
  if (!status.ok()) fail_file(file, "encode failed: " + one_line(status.ToString()));
  std::vector<int32_t> out;
  const int32_t bos = bos_id();
  out.reserve(ids.size() + 1);
  if (add_special_tokens && bos >= 0) out.push_back(bos);
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids,
                                           bool skip_special_tokens) const {
  const int32_t n = static_cast<int32_t>(processor->GetPieceSize());
  std::vector<int> valid;
  valid.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= n) continue;
    if (skip_special_tokens && processor->IsControl(id)) continue;
    valid.push_back(id);
  }
  sentencepiece::ImmutableSentencePieceText spt;
  const auto status = processor->Decode(valid, spt.mutable_proto());
  if (!status.ok()) fail_file(file, "decode failed: " + one_line(status.ToString()));
  if (skip_special_tokens) return spt.text();
  // Control pieces decode to nothing; write their piece text where they stand.  The surfaces of the
  // pieces, in order, make up the decoded text.
  std::string out;
  out.reserve(spt.text().size());
  for (size_t i = 0; i < spt.pieces_size(); ++i) {
    const auto piece = spt.pieces(static_cast<int>(i));
    if (processor->IsControl(static_cast<int>(piece.id()))) {
      out += piece.piece();
    } else {
      out += piece.surface();
    }
  }
  return out;
}

size_t SentencePieceTokenizer::vocab_size() const {
  return static_cast<size_t>(processor->GetPieceSize());
}

std::optional<int32_t> SentencePieceTokenizer::token_id(std::string_view piece) const {
  const int id = processor->PieceToId(piece);
  // PieceToId answers unk_id for a piece it lacks.
  if (id < 0 || id >= processor->GetPieceSize()) return std::nullopt;
  if (processor->IdToPiece(id) != piece) return std::nullopt;
  return id;
}

std::optional<std::string> SentencePieceTokenizer::token(int32_t id) const {
  if (id < 0 || id >= processor->GetPieceSize()) return std::nullopt;
  return processor->IdToPiece(id);
}

int32_t SentencePieceTokenizer::bos_id() const { return processor->bos_id(); }
int32_t SentencePieceTokenizer::eos_id() const { return processor->eos_id(); }
int32_t SentencePieceTokenizer::unk_id() const { return processor->unk_id(); }
bool SentencePieceTokenizer::adds_bos() const { return bos_id() >= 0; }
const std::string& SentencePieceTokenizer::path() const { return file; }

void train_sentencepiece(const SentencePieceTrainOptions& o) {
  if (o.input_files.empty() == o.sentences.empty()) {
    fail("train_sentencepiece: give either input_files or sentences (exactly one of them)");
  }
  if (o.model_prefix.empty()) fail("train_sentencepiece: model_prefix is empty");
  if (o.vocab_size <= 0) fail("train_sentencepiece: vocab_size must be positive");
  if (o.model_type != "unigram" && o.model_type != "bpe" && o.model_type != "char" &&
      o.model_type != "word") {
    fail("train_sentencepiece: model_type '" + o.model_type +
         "' is not one of unigram, bpe, char, word");
  }
  for (const std::string& f : o.input_files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec)) fail_file(f, "no such training text file");
  }
  char coverage[64];
  std::snprintf(coverage, sizeof coverage, "%.17g", o.character_coverage);
  int threads = o.num_threads;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  std::unordered_map<std::string, std::string> kw = {
      {"model_prefix", o.model_prefix},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"character_coverage", coverage},
      {"split_digits", o.split_digits ? "true" : "false"},
      {"normalization_rule_name", o.normalization_rule_name},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", o.verbose ? "0" : "1"},
      {"remove_extra_whitespaces", o.remove_extra_whitespaces ? "true" : "false"},
      {"allow_whitespace_only_pieces", o.allow_whitespace_only_pieces ? "true" : "false"},
  };
  if (o.max_sentence_length > 0) kw["max_sentence_length"] = std::to_string(o.max_sentence_length);
  if (!o.input_files.empty()) kw["input"] = join(o.input_files, "input file");
  if (!o.user_defined_symbols.empty()) {
    kw["user_defined_symbols"] = join(o.user_defined_symbols, "user-defined symbol");
  }
  if (o.input_sentence_size > 0) {
    kw["input_sentence_size"] = std::to_string(o.input_sentence_size);
    kw["shuffle_input_sentence"] = "true";
  }
  sentencepiece::util::Status status;
  if (o.sentences.empty()) {
    status = sentencepiece::SentencePieceTrainer::Train(kw);
  } else {
    VectorIterator it(o.sentences);
    status = sentencepiece::SentencePieceTrainer::Train(kw, &it);
  }
  if (!status.ok()) {
    fail("train_sentencepiece (" + o.model_prefix + "): " + one_line(status.ToString()));
  }
}

}  // namespace hibari
