// fuzz/run_toml_fuzz.cpp — load_run_config (train/run_config.h): a run file in TOML.
#include "fuzz/fuzz_common.h"
#include "train/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string path = fuzz::write_input("run.toml", data, size);
  fuzz::value_or_error([&] { (void)load_run_config(path); });
  return 0;
}
