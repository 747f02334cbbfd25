// fuzz/jsonl_fuzz.cpp — JsonlReader (data/jsonl_reader.h): a corpus file in JSON Lines, plain,
// gzip or zstd (named by the input's magic bytes, as a user would name it).  Read to the end under
// both bad-line policies, with small blocks so lines straddle them.
#include <cstring>

#include "data/jsonl_reader.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  std::string name = "x.jsonl";
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) name += ".gz";
  if (size >= 4 && std::memcmp(data, "\x28\xb5\x2f\xfd", 4) == 0) name += ".zst";
  const std::string path = fuzz::write_input(name, data, size);
  for (BadLinePolicy policy : {BadLinePolicy::fail, BadLinePolicy::skip}) {
    fuzz::value_or_error([&] {
      JsonlReader reader(path, {.key = "text", .bad_lines = policy, .block_size = 64});
      JsonlDocument doc;
      while (reader.next(doc)) {
        if (!is_valid_utf8(doc.text) || doc.text.empty()) std::abort();
      }
      (void)reader.skipped().to_string();
    });
  }
  return 0;
}
