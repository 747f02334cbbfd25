// fuzz/cli_values_fuzz.cpp — the small string parsers behind options and run-file values:
// parse_split (data/loader.h), parse_lr_decay (optim/schedule.h), parse_byte_size
// (model/hf_weights.h) and parse_task_format (eval/task.h).  The first byte picks the parser.
#include "data/loader.h"
#include "eval/task.h"
#include "fuzz/fuzz_common.h"
#include "model/hf_weights.h"
#include "optim/schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  if (size < 1) return 0;
  const std::string text(fuzz::as_text(data + 1, size - 1));
  fuzz::value_or_error([&] {
    switch (data[0] % 4) {
      case 0: {
        for (double share : parse_split(text)) {
          if (!(share >= 0 && share <= 1)) std::abort();  // shares are normalized
        }
        break;
      }
      case 1:
        (void)parse_lr_decay(text);
        break;
      case 2:
        (void)parse_byte_size(text, "--max-shard-size");
        break;
      default:
        (void)task_format_name(parse_task_format(text));
    }
  });
  return 0;
}
