// fuzz/tokenizer_json_fuzz.cpp — a Hugging Face tokenizer.json loaded by Tokenizer
// (data/tokenizer.h, load_tokenizer_spec).  A tokenizer that loads also encodes and decodes a
// fixed text, so a spec that loads but breaks the encoder (an id out of range, a bad pattern) is
// found too.
#include "data/tokenizer.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string path = fuzz::write_input("tokenizer.json", data, size);
  fuzz::value_or_error([&] {
    Tokenizer t(path);
    static const char* text = "Hello, world!  It's 2024 <s></s><unk> こんにちは世界 \t\n x";
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = t.encode(text, special);
      ids.push_back(0);
      ids.push_back(static_cast<int32_t>(t.vocab_size()));
      (void)t.decode(ids, special);
    }
    (void)t.token(0);
    (void)t.token_id("a");
  });
  return 0;
}
