// data/sentencepiece_tokenizer.h — a SentencePiece `.model` file, run through libsentencepiece,
// with the shape of API of hibari::Tokenizer (data/tokenizer.h); and train_sentencepiece, which
// trains such a model (unigram or BPE) from text files or sentences.
//
// encode(text, true) prepends BOS when the model has one, as Hugging Face's LlamaTokenizer does by
// default (no EOS).  With byte_fallback (the default when training here) every valid UTF-8 text
// round-trips: characters outside the vocabulary become <0xNN> byte pieces.
//
// Thread safety: a loaded SentencePieceTokenizer is immutable; encode/decode may run on many
// threads at once.  train_sentencepiece sets libsentencepiece's process-wide log level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/jsonl_reader.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace hibari {

struct SentencePieceTokenizer {
  // `path` is a SentencePiece .model file (a serialized ModelProto).  A missing or unreadable file,
  // or one that is not a SentencePiece model, is a hibari::Error "path: problem".
  explicit SentencePieceTokenizer(const std::string& path);

  // add_special_tokens prepends BOS when the model has one.  Text goes through the model's own
  // normalizer (none for normalization_rule_name "identity").
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids outside [0, vocab_size()) are dropped, as HF does.  With skip_special_tokens control tokens
  // (BOS, EOS, PAD) are dropped; without it their piece text ("<s>", "</s>") is written where they
  // stand.  Byte pieces that do not form valid UTF-8 become U+FFFD.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // The number of pieces: ids are 0 .. vocab_size() - 1.
  size_t vocab_size() const;
  // The id of a piece (e.g. "▁the", "<0x41>", "<s>"), or nullopt when the vocabulary lacks it.
  std::optional<int32_t> token_id(std::string_view piece) const;
  // The piece of id, or nullopt when id is out of range.
  std::optional<std::string> token(int32_t id) const;
  // -1 when the model has none (trained with bos_id=-1 / eos_id=-1).
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t unk_id() const;
  // Whether encode(text, true) starts with BOS: whether the model has one.
  bool adds_bos() const;
  const std::string& path() const;

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> processor;
  std::string file;
};

struct SentencePieceTrainOptions {
  // Training text: plain text files, one sentence a line; or else the sentences themselves.
  // Exactly one of the two must be non-empty.
  std::vector<std::string> input_files;
  std::vector<std::string> sentences;
  // Writes <model_prefix>.model and <model_prefix>.vocab.
  std::string model_prefix;
  int vocab_size = 32000;
  std::string model_type = "unigram";  // "unigram" | "bpe" | "char" | "word"
  // Characters outside the vocabulary become <0xNN> byte pieces instead of <unk>.
  bool byte_fallback = true;
  // The share of characters the vocabulary must cover; 0.9995 suits Japanese and Chinese, 1.0
  // alphabets.
  double character_coverage = 0.9995;
  // Each digit its own piece.
  bool split_digits = true;
  // Pieces always kept whole, never split or merged (e.g. "<|im_start|>").  No commas.
  std::vector<std::string> user_defined_symbols;
  // "identity" leaves text as it is; "nmt_nfkc" (SentencePiece's default) applies NFKC.
  std::string normalization_rule_name = "identity";
  // Collapse runs of spaces and strip them at both ends before encoding (SentencePiece's default).
  // Llama's models keep them (false), which a HF tokenizer.json can reproduce.
  bool remove_extra_whitespaces = true;
  // Allow pieces made only of spaces ("▁▁▁▁"), as Llama's models do, for indented code.
  bool allow_whitespace_only_pieces = false;
  // Longer sentences (bytes) are left out of training; 0: SentencePiece's default, 4192.
  int max_sentence_length = 0;
  // At most this many sentences, sampled, are used; 0: all of them.
  int64_t input_sentence_size = 0;
  // Training threads; 0: one a hardware thread.
  int num_threads = 0;
  // Whether libsentencepiece logs its progress (to stderr); otherwise only warnings and errors.
  bool verbose = false;
};

// Trains a model; trainer errors (a missing input file, a vocabulary too small for the characters
// to cover, ...) are hibari::Error with the library's message.
void train_sentencepiece(const SentencePieceTrainOptions& o);

// A SentencePiece BPE model as a Hugging Face tokenizer.json (the returned JSON text), converted as
// transformers' LlamaConverter converts one (legacy mode, as Llama-2's file): a BPE model with
// byte_fallback, the vocabulary in id order and merges derived from it; the Prepend("▁") +
// Replace(" ", "▁") normalizer and no pre-tokenizer; the Replace/ByteFallback/Fuse/Strip decoder;
// a TemplateProcessing that puts BOS first; control and unknown pieces as special added tokens,
// user-defined symbols as added tokens that are not special.  The two then give the same ids for
// any text without control-token strings (HF matches "</s>" in text unless told to ignore special
// tokens) and without user-defined symbols (HF, as transformers' LlamaTokenizer, prepends "▁" to
// the text after each; SentencePiece does not).  A model whose normalization the file cannot
// express (a precompiled normalizer such as nmt_nfkc, remove_extra_whitespaces, no dummy prefix)
// or that is not BPE is a hibari::Error naming the file.
std::string sentencepiece_bpe_to_tokenizer_json(const std::string& model_path);

// `hibari tokenizer train`: documents from JSON Lines files, split into lines (the sentences),
// train a SentencePiece model as Llama's are trained (identity normalization, spaces kept,
// digits split, byte fallback), and write a directory transformers loads: tokenizer.model,
// tokenizer_config.json (LlamaTokenizer, BOS added), special_tokens_map.json, and for BPE
// tokenizer.json.
struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // JSON Lines files (.jsonl, .jsonl.gz, .jsonl.zst), in order
  std::string json_key = "text";
  BadLinePolicy bad_lines = BadLinePolicy::fail;
  // Written whole or not at all (a temporary directory beside it, renamed).  An existing directory
  // is replaced only when it holds nothing but the files written here.
  std::string output_dir;
  std::string model_type = "bpe";  // "bpe" | "unigram"
  int vocab_size = 32000;
  double character_coverage = 0.9995;
  bool byte_fallback = true;
  std::vector<std::string> user_defined_symbols;
  int64_t max_sentences = 0;  // sampled when there are more; 0: all
  int threads = 0;            // 0: one a hardware thread
  // tokenizer_config.json's model_max_length: the longest sequence models using it expect.
  int64_t model_max_length = 4096;
};

struct TokenizerTrainSummary {
  size_t documents = 0;
  size_t sentences = 0;  // non-blank lines of the documents, given to the trainer
  BadLineCounts skipped;
  size_t blank_lines = 0;
  size_t vocab_size = 0;
  double seconds = 0;
};

TokenizerTrainSummary train_tokenizer(const TokenizerTrainOptions& o);

}  // namespace hibari
