// fuzz/safetensors_header_fuzz.cpp — safetensors_read (checkpoint/safetensors.h) on any bytes.
// An input starting with '{' is taken as the JSON header alone and framed here (size prefix, 256
// data bytes), so mutations reach the header checks instead of dying on the size field; any other
// input is the whole file.  Every tensor of a file that loads is read: the validation must make
// those reads safe.
#include <cstring>
#include <vector>

#include "checkpoint/safetensors.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  std::vector<uint8_t> file;
  if (size > 0 && data[0] == '{') {
    uint64_t n = size;
    file.resize(8 + size + 256, 0);
    std::memcpy(file.data(), &n, 8);
    std::memcpy(file.data() + 8, data, size);
  } else {
    file.assign(data, data + size);
  }
  const std::string path = fuzz::write_input("x.safetensors", file.data(), file.size());
  fuzz::value_or_error([&] {
    SafeTensorsFile st = safetensors_read(path);
    for (const SafeTensorInfo& t : st.tensors) {
      (void)st.bytes(t);
      if (t.dtype == StDtype::I32 || t.dtype == StDtype::I64) {
        fuzz::value_or_error([&] { (void)st.read_i64(t.name); });
      } else if (t.dtype != StDtype::U8) {
        fuzz::value_or_error([&] { (void)st.read_f32(t.name); });
      }
    }
  });
  return 0;
}
