// fuzz/safetensors_index_fuzz.cpp — safetensors_open_model (checkpoint/safetensors.h) with any
// model.safetensors.index.json beside two valid shards, a.safetensors and b.safetensors.
#include "checkpoint/safetensors.h"
#include "fuzz/fuzz_common.h"

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    using namespace hibari;
    std::string d = fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(d);
    static const float values[6] = {1, 2, 3, 4, 5, 6};
    safetensors_write(d + "/a.safetensors", {{"x.weight", StDtype::F32, {2, 3}, values}});
    safetensors_write(d + "/b.safetensors", {{"y.weight", StDtype::BF16, {6}, values, true}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string& dir = model_dir();
  fuzz::write_bytes(dir + "/" + kSafetensorsIndexName, data, size);
  fuzz::value_or_error([&] {
    SafeTensorsModel m = safetensors_open_model(dir);
    for (const auto& [name, where] : m.tensors) (void)where.first->read_f32(name);
  });
  return 0;
}
