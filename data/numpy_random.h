// data/numpy_random.h — numpy's legacy `numpy.random.RandomState`, bit for bit, for the parts
// Megatron-LM's dataset indices use (seeding, `shuffle`, `permutation`).  A run moved from
// Megatron-LM must see the same samples in the same order, and Megatron draws every document and
// sample order from `numpy.random.RandomState(seed)`.
//
// What numpy does (numpy/random/_mt19937.pyx, distributions.c), and so what this class does:
//   RandomState(seed), 0 <= seed < 2^32: MT19937 `init_genrand(seed)` (`_legacy_seeding` calls
//     `mt19937_seed`, not `init_by_array`), which is exactly std::mt19937(seed).
//   next_uint64 = (next_uint32 << 32) | next_uint32 (first draw is the high word).
//   random_interval(max): the smallest all-ones mask >= max; draw (32 bits when max < 2^32, else
//     64 bits) & mask until the value is <= max.
//   shuffle(x): for i = n-1 down to 1: swap(x[i], x[random_interval(i)]).
// Checked against numpy 1.24 by tests/data/numpy_random_test.cpp.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace hibari {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(uint32_t seed) : mt_(seed) {}

  uint32_t next_u32() { return static_cast<uint32_t>(mt_()); }
  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    return hi << 32 | next_u32();
  }
  // A uniform integer in [0, max], as numpy's `random_interval` (masked rejection sampling).
  // Equals `RandomState.randint(0, max + 1, dtype=np.int64)` draw for draw.
  uint64_t random_interval(uint64_t max);

  // `RandomState.shuffle` of a 1-D array; the draws depend only on the length, not the dtype.
  void shuffle(std::span<int32_t> x);
  void shuffle(std::span<uint32_t> x);
  void shuffle(std::span<int64_t> x);
  // `RandomState.permutation(n)`: arange(n) shuffled.
  std::vector<int64_t> permutation(int64_t n);

 private:
  std::mt19937 mt_;  // the standard fixes its sequence: the same MT19937 as numpy's
};

}  // namespace hibari
