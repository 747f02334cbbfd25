// data/numpy_random.h: numpy's legacy RandomState, checked against numbers numpy itself produces
// (tests/reference/megatron_indices.py rng, run with HIBARI_PYTHON) and a few known values.
#include "data/numpy_random.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "data/gpt_indices.h"
#include "tests/scratch_dir.h"

#if !defined(HIBARI_PYTHON) || !defined(HIBARI_SOURCE_DIR)
#error "needs HIBARI_PYTHON and HIBARI_SOURCE_DIR"
#endif

namespace hibari {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> load(const fs::path& path) { return npy_as_int64(read_npy(path.string())); }

// Seeds written as Python gets them: 0, small, large, and the largest legacy seed 2^32 - 1.
const std::vector<uint32_t> kSeeds = {0, 1, 42, 1234, 2147483647u, 4294967295u};
// Sizes around powers of two, where random_interval's mask changes.
const std::vector<int64_t> kSizes = {0,   1,    2,    3,    7,    8,     9,     255,   256,
                                     257, 1000, 1023, 1024, 1025, 65535, 65536, 65537, 100003};
// Bounds for random_interval, through the 32- to 64-bit switch at 2^32 - 1.
const std::vector<uint64_t> kMaxes = {0,
                                      1,
                                      2,
                                      3,
                                      5,
                                      7,
                                      8,
                                      255,
                                      256,
                                      1023,
                                      65536,
                                      2147483647ull,
                                      2147483648ull,
                                      4294967294ull,
                                      4294967295ull,
                                      4294967296ull,
                                      4294967297ull,
                                      8589934597ull,
                                      1099511627775ull,
                                      (1ull << 62) + 12345,
                                      (1ull << 63) - 2};

template <typename T>
std::string join(const std::vector<T>& v) {
  std::string s;
  for (const T& x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

TEST(NumpyRandom, KnownValues) {
  // numpy.random.RandomState(42).randint(0, 2**32, size=3, dtype=numpy.uint32)
  NumpyRandomState rs(42);
  EXPECT_EQ(rs.next_u32(), 1608637542u);
  EXPECT_EQ(rs.next_u32(), 3421126067u);
  EXPECT_EQ(rs.next_u32(), 4083286876u);
  // MT19937's reference: the 10000th output for the default seed 5489.
  NumpyRandomState mt(5489);
  uint32_t x = 0;
  for (int i = 0; i < 10000; ++i) x = mt.next_u32();
  EXPECT_EQ(x, 4123659995u);
  // numpy.random.RandomState(1).permutation(10)
  EXPECT_EQ(NumpyRandomState(1).permutation(10),
            (std::vector<int64_t>{2, 9, 6, 4, 0, 3, 1, 7, 8, 5}));
  // a = numpy.arange(10, dtype=numpy.int32); numpy.random.RandomState(42).shuffle(a)
  std::vector<int32_t> a = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  NumpyRandomState(42).shuffle(std::span<int32_t>(a));
  EXPECT_EQ(a, (std::vector<int32_t>{8, 1, 5, 0, 7, 2, 9, 4, 3, 6}));
  // rs = RandomState(42); [rs.randint(0, m + 1, dtype=numpy.int64) for m in maxes]: 32-bit
  // draws up to 2^32 - 1, 64-bit (high word first) beyond.
  NumpyRandomState r(42);
  const std::vector<uint64_t> maxes = {1, 5, 1023, 4294967295ull, 1099511627775ull, 8589934597ull};
  const std::vector<uint64_t> want = {0, 3, 860, 787846414, 458615280711ull, 2563451924};
  for (size_t i = 0; i < maxes.size(); ++i) EXPECT_EQ(r.random_interval(maxes[i]), want[i]);
}

TEST(NumpyRandom, MatchesNumpy) {
  test::ScratchDir dir("numpy_random");
  const std::string cmd = std::string(HIBARI_PYTHON) +
                          " " HIBARI_SOURCE_DIR "/tests/reference/megatron_indices.py rng --out " +
                          dir.path.string() + " --seeds " + join(kSeeds) + " --sizes " +
                          join(kSizes) + " --maxes " + join(kMaxes);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  for (uint32_t seed : kSeeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string s = std::to_string(seed);
    {
      const std::vector<int64_t> want = load(dir.path / ("u32_" + s + ".npy"));
      NumpyRandomState rs(seed);
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(rs.next_u32(), want[i]) << i;
    }
    {
      const std::vector<int64_t> want = load(dir.path / ("interval_" + s + ".npy"));
      ASSERT_EQ(want.size(), kMaxes.size());
      NumpyRandomState rs(seed);
      for (size_t i = 0; i < kMaxes.size(); ++i) {
        EXPECT_EQ(rs.random_interval(kMaxes[i]), static_cast<uint64_t>(want[i])) << kMaxes[i];
      }
    }
    for (int64_t n : kSizes) {
      std::vector<int64_t> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = i;
      NumpyRandomState(seed).shuffle(std::span<int64_t>(x));
      EXPECT_EQ(x, load(dir.path / ("shuffle_" + s + "_" + std::to_string(n) + ".npy")))
          << "n = " << n;
    }
    EXPECT_EQ(NumpyRandomState(seed).permutation(1000),
              load(dir.path / ("permutation_" + s + ".npy")));
    {
      // One state through shuffles of int32, uint32 and int64 arrays in a row.
      NumpyRandomState rs(seed);
      std::vector<int32_t> a(100);
      std::vector<uint32_t> b(257);
      std::vector<int64_t> c(64);
      for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int32_t>(i);
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint32_t>(i);
      for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<int64_t>(i);
      rs.shuffle(std::span<int32_t>(a));
      rs.shuffle(std::span<uint32_t>(b));
      rs.shuffle(std::span<int64_t>(c));
      std::vector<int64_t> got(a.begin(), a.end());
      got.insert(got.end(), b.begin(), b.end());
      got.insert(got.end(), c.begin(), c.end());
      EXPECT_EQ(got, load(dir.path / ("chain_" + s + ".npy")));
    }
  }
}

}  // namespace
}  // namespace hibari
