// tests/cli/byte_level_fixtures.h — a byte-level tokenizer and a dataset of its ids for the CLI
// tests that train, generate and convert a tiny model end to end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace hibari::test {

// A byte-level BPE tokenizer.json without merges: token id = byte value (GPT-2's byte-to-unicode
// alphabet), plus one special token; ids fit the model's 264 rows.
inline void write_byte_tokenizer(const std::filesystem::path& path) {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  for (int b = 0, n = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < bs.size(); ++i) {
    const int c = cs[i];
    std::string utf8 = c < 0x80 ? std::string(1, char(c))
                                : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    vocab[utf8] = bs[i];
  }
  nlohmann::json byte_level = {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", true},
                               {"use_regex", true}};
  nlohmann::json j = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens",
                       {{{"id", 256},
                         {"content", "<|end|>"},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}}}},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", byte_level},
                      {"post_processor", nullptr},
                      {"decoder", byte_level},
                      {"model",
                       {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"vocab", vocab},
                        {"merges", nlohmann::json::array()}}}};
  std::ofstream(path) << j.dump();
}

// Twelve documents of the bytes of one Japanese and English line (each starting one byte later),
// as `text` in `dir`.
inline void write_text_dataset(const std::filesystem::path& dir) {
  const std::string text = "日本語と English のテキスト。 some text to train on, long enough.\n";
  hibari::IndexedDatasetWriter writer((dir / "text").string(), hibari::TokenDtype::u16);
  for (int d = 0; d < 12; ++d) {
    std::vector<int32_t> ids;
    for (size_t i = size_t(d); i < text.size(); ++i) ids.push_back(int32_t(uint8_t(text[i])));
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
}

}  // namespace hibari::test
