// fuzz/sentencepiece_fuzz.cpp — a SentencePiece .model file: SentencePieceTokenizer
// (data/sentencepiece_tokenizer.h, through load_text_tokenizer) and its conversion to a
// tokenizer.json (sentencepiece_bpe_to_tokenizer_json).  A model that loads encodes and decodes a
// fixed text.
#include "data/text_tokenizer.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string path = fuzz::write_input("tokenizer.model", data, size);
  fuzz::value_or_error([&] {
    TextTokenizer t = load_text_tokenizer(path);
    std::vector<int32_t> ids = t.encode("Hello, world! こんにちは 123", true);
    ids.push_back(-1);
    ids.push_back(static_cast<int32_t>(t.vocab_size()));
    (void)t.decode(ids, false);
    (void)t.decode(ids, true);
  });
  fuzz::value_or_error([&] { (void)sentencepiece_bpe_to_tokenizer_json(path); });
  return 0;
}
