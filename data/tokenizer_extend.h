// data/tokenizer_extend.h — adds tokens learned from a corpus to a Hugging Face BPE tokenizer.json,
// as the Swallow team extended Llama-2's 32k vocabulary with Japanese tokens before continual
// pretraining (the new embedding rows are then trained).
//
// How: a SentencePiece BPE model is trained on the corpus (one sentence per line of a document);
// its pieces, in merge order, are the candidates.  Each is written in the base's token alphabet:
// as it is ("▁" for a space) for a byte-fallback / Metaspace base (Llama-2, Mistral), or as a
// space-for-"▁" text mapped byte by byte through GPT-2's bytes_to_unicode for a ByteLevel base
// (Llama-3, Qwen3).  Candidates the base already has, control/byte pieces, and texts the base's
// pre-tokenizer would split are skipped.  A candidate is added when the current (already
// extended) BPE encodes it as exactly two tokens: the merge of those two is appended to "merges",
// so ids of existing text never change except where a new token forms.  A single character missing
// from a byte-fallback vocabulary is added without a merge (BPE looks characters up directly).
// Passes repeat, so longer candidates become reachable once their parts are in.
//
// Ids: the new tokens take the ids right after the largest id in use, model vocabulary and added
// tokens alike (Llama-2: 32000..., Llama-3: 128256... after its 256 specials), in the order they
// were added.  Every existing token keeps its id; "added_tokens" is unchanged.  Added tokens the
// model vocabulary lacks (Llama-3's, Qwen3's specials) are also written into it with their ids, as
// Llama-2's file has its <s>: HF `tokenizers` would otherwise renumber them from the model
// vocabulary's size, which the new tokens change.
//
// The written tokenizer.json is loaded back with hibari::Tokenizer and every new token's text must
// encode to that token (appended merges have the lowest priority, so this is checked, not assumed);
// a token that fails is dropped, with the tokens built on it.
//
// Measured: 11,000 tokens learned from Debian's manpages-ja (4.4M chars) take the Japanese Debian
// handbook (held out, 366k chars) from 1.16 to 2.36 chars/token on the Mistral-style Llama-2 32k
// vocabulary, and from 1.81 to 2.67 on Llama-3's (about 3 minutes each on 2 cores, mostly the
// SentencePiece training).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/jsonl_reader.h"

namespace hibari {

struct TokenizerExtendOptions {
  // A tokenizer.json with a BPE model, or a directory holding one (its tokenizer_config.json and
  // special_tokens_map.json, when present, are copied to the output).
  std::string base;
  // JSON Lines corpora (plain, .gz or .zst); the document is under jsonl.key.
  std::vector<std::string> inputs;
  JsonlOptions jsonl;
  // At most this many new tokens (>= 1).
  int64_t add = 0;
  // The directory written (atomically: a temporary sibling, then rename).  It must not exist, or
  // be an empty directory.
  std::string output;
  // The SentencePiece model learns this many pieces per token asked for (many of them the base
  // already has).
  int candidates_per_token = 3;
  // SentencePiece training threads; 0: one a hardware thread.
  int num_threads = 0;
};

struct TokenizerExtendReport {
  size_t added = 0;            // new tokens
  size_t candidates = 0;       // SentencePiece pieces new to the base, before reachability
  size_t passes = 0;           // passes over the candidates
  size_t base_vocab_size = 0;  // one past the largest id, before and after
  size_t vocab_size = 0;
  int32_t first_new_id = 0;         // new ids are first_new_id .. vocab_size - 1
  uint64_t documents = 0;           // documents read
  uint64_t chars = 0;               // Unicode characters in them
  uint64_t tokens_before = 0;       // their tokens under the base and the extended tokenizer
  uint64_t tokens_after = 0;        //   (no special tokens)
  BadLineCounts skipped;            // bad lines skipped under BadLinePolicy::skip
  std::vector<std::string> tokens;  // the new tokens' strings, by id

  double chars_per_token_before() const;
  double chars_per_token_after() const;
};

// Reads the corpora, extends the base and writes options.output.  Errors (a base that is not BPE,
// a missing corpus file, a bad line under BadLinePolicy::fail, add < 1, an output in the way) are
// hibari::Error naming the file or the option; on any error nothing is left at options.output.
TokenizerExtendReport extend_tokenizer(const TokenizerExtendOptions& options);

}  // namespace hibari
