// data/tokenize_job.h — JSON Lines corpora to a Megatron indexed dataset (PREFIX.bin/.idx), as
// Megatron-LM's tools/preprocess_data.py without sentence splitting: one sequence per document,
// [BOS] + encode(text, add_special_tokens=false) + [EOD], with any tokenizer
// (data/text_tokenizer.h: a HF tokenizer.json or a SentencePiece .model).
//
// The main thread reads documents (data/jsonl_reader.h) and hands them out in batches; `workers`
// threads tokenize the batches; the main thread writes the results in input order.  So the files
// are byte-identical for any number of workers.  At most 2 * workers + 1 batches are in flight, so
// memory stays bounded whatever the corpus size.  PREFIX.bin/.idx appear only when everything
// succeeded (IndexedDatasetWriter writes temporaries and renames them at the end).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/jsonl_reader.h"
#include "data/tokenizer.h"

namespace hibari {

struct TextTokenizer;  // data/text_tokenizer.h

struct TokenizeOptions {
  std::vector<std::string> inputs;  // JSON Lines files (.jsonl, .jsonl.gz, .jsonl.zst), in order
  std::string output_prefix;        // writes output_prefix.bin and output_prefix.idx
  size_t workers = 1;               // tokenizing threads
  std::string json_key = "text";
  BadLinePolicy bad_lines = BadLinePolicy::fail;
  bool add_bos = false;    // put the tokenizer's BOS first in each document
  bool append_eod = true;  // put the tokenizer's EOS last in each document (Megatron's EOD)
  // What a special-token string inside a document becomes (data/tokenizer.h); ignore keeps web
  // text from injecting a real EOD.
  SpecialTokensInText special_tokens_in_text = SpecialTokensInText::match;
  size_t batch_documents = 512;          // documents per batch, at most
  size_t batch_bytes = size_t{1} << 20;  // text bytes per batch, at most (after the first document)
};

struct TokenizeProgress {
  size_t documents = 0;     // written so far
  size_t tokens = 0;        // written so far, BOS and EOD included
  uint64_t bytes_read = 0;  // of the input files (compressed bytes for .gz/.zst)
  double seconds = 0;
};

struct TokenizeSummary {
  TokenizeProgress totals;
  BadLineCounts skipped;   // bad lines skipped (BadLinePolicy::skip), by reason
  size_t blank_lines = 0;  // whitespace-only lines, which hold no document
};

// Tokenizes every document of options.inputs and writes the dataset.  `progress`, when set, is
// called on the calling thread after each batch is written.  Errors (unreadable input, a bad line
// under BadLinePolicy::fail, a missing BOS/EOS token) are hibari::Error, and leave no output files.
TokenizeSummary tokenize_to_indexed_dataset(
    const TextTokenizer& tokenizer, const TokenizeOptions& options,
    const std::function<void(const TokenizeProgress&)>& progress = {});

}  // namespace hibari
