// fuzz/npy_fuzz.cpp — read_npy (data/gpt_indices.h): a .npy file, converted as the sample-order
// cache reads it.
#include "data/gpt_indices.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string path = fuzz::write_input("x.npy", data, size);
  fuzz::value_or_error([&] {
    NpyArray a = read_npy(path);
    fuzz::value_or_error([&] { (void)npy_as_int64(a); });
    fuzz::value_or_error([&] { (void)npy_as_double(a); });
  });
  return 0;
}
