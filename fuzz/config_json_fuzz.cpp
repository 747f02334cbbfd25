// fuzz/config_json_fuzz.cpp — load_model_config (model/config.h): a Hugging Face config.json.
// A config that loads is also sized (parameter_count) and written back, as train and convert do.
#include <nlohmann/json.hpp>

#include "fuzz/fuzz_common.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string path = fuzz::write_input("config.json", data, size);
  fuzz::value_or_error([&] {
    ModelConfig c = load_model_config(path);
    (void)parameter_count(c);
    (void)model_config_to_json(c);
  });
  return 0;
}
