// fuzz/idx_fuzz.cpp — IndexedDataset::open (data/indexed_dataset.h): a Megatron .idx file.  The
// input is the .idx followed by two bytes giving the size of the .bin beside it (little-endian), so
// the pointer checks meet both short and long .bin files.  Every sequence of a dataset that opens
// is read.
#include <algorithm>
#include <vector>

#include "data/indexed_dataset.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  if (size < 2) return 0;
  const size_t bin_size = data[size - 2] | (size_t{data[size - 1]} << 8);
  const std::string prefix = fuzz::scratch_dir() + "/ds";
  fuzz::write_bytes(prefix + ".idx", data, size - 2);
  std::vector<uint8_t> bin(bin_size);
  for (size_t i = 0; i < bin_size; ++i) bin[i] = static_cast<uint8_t>(i * 7);
  fuzz::write_bytes(prefix + ".bin", bin.data(), bin.size());
  fuzz::value_or_error([&] {
    IndexedDataset ds = IndexedDataset::open(prefix);
    for (size_t d = 0; d <= std::min<size_t>(ds.document_count(), 64); ++d)
      (void)ds.document_index(d);
    for (size_t i = 0; i < std::min<size_t>(ds.sequence_count(), 64); ++i) {
      const size_t n = ds.sequence_length(i);
      fuzz::value_or_error([&] { (void)ds.sequence(i); });
      if (n > 1) {
        std::vector<int32_t> out(n - 1);
        fuzz::value_or_error([&] { ds.read(i, 1, n - 1, out.data()); });
      }
    }
  });
  return 0;
}
