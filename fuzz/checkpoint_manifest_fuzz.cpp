// fuzz/checkpoint_manifest_fuzz.cpp — load_checkpoint and load_latest_checkpoint
// (checkpoint/native_checkpoint.h): any manifest.json in a folder holding a real checkpoint's
// files (fuzz/fuzz_checkpoint.h), so a mutated manifest can name, size and checksum them.
#include <nlohmann/json.hpp>

#include "fuzz/fuzz_checkpoint.h"
#include "fuzz/fuzz_common.h"

namespace {

const std::string& step_dir() {
  static const std::string dir =
      hibari::fuzz::write_tiny_checkpoint(hibari::fuzz::scratch_dir() + "/ckpt");
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string& dir = step_dir();
  fuzz::write_bytes(dir + "/manifest.json", data, size);
  fuzz::value_or_error([&] {
    LoadedCheckpoint c = load_checkpoint(dir);
    for (const auto& [stem, file] : c.tensor_files)
      for (const SafeTensorInfo& t : file.tensors) (void)file.read_f32(t.name);
  });
  fuzz::value_or_error([&] {
    std::vector<std::string> notes;
    (void)load_latest_checkpoint(fuzz::scratch_dir() + "/ckpt", &notes);
  });
  return 0;
}
