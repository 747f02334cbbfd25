// data/numpy_random.cpp — see numpy_random.h for the numpy functions mirrored here.
#include "data/numpy_random.h"

#include <utility>

namespace hibari {

uint64_t NumpyRandomState::random_interval(uint64_t max) {
  if (max == 0) return 0;
  // Smallest 2^k - 1 >= max.
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value;
  if (max <= 0xffffffffu) {
    while ((value = (next_u32() & mask)) > max) {
    }
  } else {
    while ((value = (next_u64() & mask)) > max) {
    }
  }
  return value;
}

namespace {

// numpy's `_shuffle_raw`: Fisher-Yates from the end.
template <typename T>
void shuffle_raw(NumpyRandomState& rs, std::span<T> x) {
  for (size_t i = x.size() > 0 ? x.size() - 1 : 0; i >= 1; --i) {
    const size_t j = static_cast<size_t>(rs.random_interval(i));
    std::swap(x[i], x[j]);
  }
}

}  // namespace

void NumpyRandomState::shuffle(std::span<int32_t> x) { shuffle_raw(*this, x); }
void NumpyRandomState::shuffle(std::span<uint32_t> x) { shuffle_raw(*this, x); }
void NumpyRandomState::shuffle(std::span<int64_t> x) { shuffle_raw(*this, x); }

std::vector<int64_t> NumpyRandomState::permutation(int64_t n) {
  std::vector<int64_t> out(static_cast<size_t>(n > 0 ? n : 0));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(i);
  shuffle(std::span<int64_t>(out));
  return out;
}

}  // namespace hibari
