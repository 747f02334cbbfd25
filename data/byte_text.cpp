#include "data/byte_text.h"

#include <cstdint>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace hibari {

std::vector<int32_t> byte_encode(const std::string& text) {
  std::vector<int32_t> tokens;
  tokens.reserve(text.size());
  for (unsigned char ch : text) tokens.push_back(int32_t(ch));
  return tokens;
}

std::string byte_decode(const std::vector<int32_t>& tokens) {
  std::string text;
  for (int32_t t : tokens)
    if (t >= 0 && t < 256) text.push_back(char(t));
  return text;
}

ByteCorpus load_byte_corpus(const std::vector<std::string>& paths, double valid_fraction) {
  if (paths.empty()) fail("data: no text files given");
  if (!(valid_fraction >= 0 && valid_fraction < 1)) fail("data: valid_fraction must be in [0, 1)");
  std::vector<int32_t> all;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_file(path, "cannot open text file");
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    if (text.empty()) fail_file(path, "text file is empty");
    for (unsigned char ch : text) all.push_back(int32_t(ch));
    all.push_back(byte_eos);
  }
  ByteCorpus corpus;
  size_t valid = size_t(double(all.size()) * valid_fraction);
  corpus.train.assign(all.begin(), all.end() - long(valid));
  corpus.valid.assign(all.end() - long(valid), all.end());
  return corpus;
}

void byte_batch(int32_t* inputs, int32_t* targets, const std::vector<int32_t>& stream, size_t B,
                size_t T, uint64_t seed, uint32_t rng_stream, uint64_t first_sample) {
  if (stream.size() < T + 1)
    fail("data: " + std::to_string(stream.size()) + " tokens cannot fill a sequence of " +
         std::to_string(T + 1));
  if (stream.size() - T > UINT32_MAX)
    fail("data: byte-level text beyond 4 GiB is not supported; tokenize it into .bin/.idx");
  uint32_t starts = uint32_t(stream.size() - T);  // windows of T + 1 tokens
  for (size_t b = 0; b < B; ++b) {
    size_t start = random_below(seed, rng_stream, first_sample + b, starts);
    for (size_t t = 0; t < T; ++t) {
      inputs[b * T + t] = stream[start + t];
      targets[b * T + t] = stream[start + t + 1];
    }
  }
}

}  // namespace hibari
