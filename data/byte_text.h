// data/byte_text.h — UTF-8 text read as bytes: the stand-in tokenizer until real tokenizers land.
// Token ids 0..255 are byte values; 256 is BOS and 257 is EOS, so a model needs vocab_size >= 258.
// Files are concatenated, each followed by EOS.
//
// Sample order: sample i of a split is the window of T + 1 tokens starting at a counter-based
// random offset drawn from (seed, i).  It depends only on the seed and the sample index — never on
// threads or processes — so a resumed run sees exactly the samples it would have seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hibari {

constexpr int32_t byte_bos = 256;
constexpr int32_t byte_eos = 257;
constexpr size_t byte_vocab_size = 258;

std::vector<int32_t> byte_encode(const std::string& text);
// Bytes back to text; BOS/EOS and ids >= 256 are dropped.  Invalid UTF-8 is passed through.
std::string byte_decode(const std::vector<int32_t>& tokens);

struct ByteCorpus {
  std::vector<int32_t> train;  // token stream
  std::vector<int32_t> valid;  // the last `valid_fraction` of the stream
};

// Reads every file (an error names a missing or empty file).
ByteCorpus load_byte_corpus(const std::vector<std::string>& paths, double valid_fraction);

// Fills inputs (B, T) and targets (B, T) with samples first_sample .. first_sample + B - 1 of
// `stream`; `rng_stream` separates the train and validation orders.
void byte_batch(int32_t* inputs, int32_t* targets, const std::vector<int32_t>& stream, size_t B,
                size_t T, uint64_t seed, uint32_t rng_stream, uint64_t first_sample);

}  // namespace hibari
