// parallel/quant.h in one process: the packed size, the error bound of quant.cpp on random and
// adversarial data (read back through the byte layout quant.h documents), exact round trips,
// independence from the thread count, and the size errors. all_gather_quantized on a 1-rank world.
#include "parallel/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "tests/error_matchers.h"
#include "tests/parallel/mpi_environment.h"

namespace hibari {
namespace {

constexpr size_t kGroupValues = kQuantBlock * kQuantScaleGroup;  // 16384

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// The packed form read through the layout of quant.h:  [G fp32][B uint8][n int8].
struct Packed {
  std::vector<uint8_t> bytes;
  size_t n = 0, blocks = 0, groups = 0;
  float group_scale(size_t g) const {
    float s;
    std::memcpy(&s, bytes.data() + 4 * g, 4);
    return s;
  }
  uint8_t block_code(size_t b) const { return bytes[4 * groups + b]; }
  int8_t code(size_t i) const { return int8_t(bytes[4 * groups + blocks + i]); }
  // The dequantized scale of the block holding value i, as quant.h defines it.
  float scale_of_value(size_t i) const {
    const size_t b = i / kQuantBlock;
    return group_scale(b / kQuantScaleGroup) * (float(block_code(b)) / 255.0f);
  }
};

Packed quantize(const std::vector<float>& in) {
  Packed p;
  p.n = in.size();
  p.blocks = ceil_div(p.n, kQuantBlock);
  p.groups = ceil_div(p.blocks, kQuantScaleGroup);
  p.bytes.resize(quantized_bytes(p.n));
  quantize_blockwise(p.bytes, in);
  return p;
}

std::vector<float> dequantize(const Packed& p) {
  std::vector<float> out(p.n);
  dequantize_blockwise(out, p.bytes);
  return out;
}

float block_absmax(const std::vector<float>& x, size_t b) {
  float m = 0.0f;
  for (size_t i = b * kQuantBlock; i < std::min(x.size(), (b + 1) * kQuantBlock); ++i)
    m = std::max(m, std::fabs(x[i]));
  return m;
}

// Checks everything quant.h promises about one round trip of x; returns the dequantized values.
// The bound (derived in quant.cpp), in double so the check itself does not round:
//   |x - deq| <= s/2 + u (|x| + 127 s) + 2^-149,  u = 2^-24.
std::vector<float> round_trip_within_bound(const std::vector<float>& x) {
  const Packed p = quantize(x);
  const std::vector<float> y = dequantize(p);
  const double u = std::ldexp(1.0, -24), tiny = std::ldexp(1.0, -149);
  size_t failures = 0;
  for (size_t i = 0; i < x.size() && failures < 5; ++i) {
    const double s = p.scale_of_value(i);
    const double bound = s / 2 + u * (std::fabs(double(x[i])) + 127 * s) + tiny;
    const double err = std::fabs(double(x[i]) - double(y[i]));
    if (!(err <= bound)) {
      ++failures;
      ADD_FAILURE() << "value " << i << ": x=" << x[i] << " deq=" << y[i] << " error " << err
                    << " > bound " << bound << " (scale " << s << ")";
    }
    EXPECT_GE(p.code(i), -127) << i;  // -128 would be an overflow of the negative side
  }
  for (size_t b = 0; b < p.blocks; ++b) {
    const float group_scale = p.group_scale(b / kQuantScaleGroup);
    const uint8_t c = p.block_code(b);
    const float absmax = block_absmax(x, b);
    const float s = group_scale * (float(c) / 255.0f);
    // The dequantized scale was rounded up (covers absmax) by the smallest step that does.
    EXPECT_GE(s * 127.0f, absmax) << "block " << b;
    if (c > 1) {
      EXPECT_LT(group_scale * (float(c - 1) / 255.0f) * 127.0f, absmax) << "block " << b;
    }
    EXPECT_EQ(c == 0, absmax == 0.0f) << "block " << b;  // zeros, and only zeros, get code 0
  }
  return y;
}

std::vector<float> normal(size_t n, uint64_t seed, float std_dev) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std_dev * float(random_normal(seed, 0, i));
  return v;
}

TEST(Quant, PackedSizeIsTheExactFormula) {
  // 4 bytes per group scale, 1 per block scale, 1 per value.
  EXPECT_EQ(quantized_bytes(0), 0u);
  EXPECT_EQ(quantized_bytes(1), 1u + 1 + 4);
  EXPECT_EQ(quantized_bytes(64), 64u + 1 + 4);
  EXPECT_EQ(quantized_bytes(65), 65u + 2 + 4);
  EXPECT_EQ(quantized_bytes(kGroupValues), kGroupValues + 256 + 4);
  EXPECT_EQ(quantized_bytes(kGroupValues + 1), kGroupValues + 1 + 257 + 8);
  for (size_t n : {2u, 63u, 100u, 1000u, 16383u, 50000u, 1234567u}) {
    const size_t blocks = ceil_div(n, 64);
    EXPECT_EQ(quantized_bytes(n), n + blocks + 4 * ceil_div(blocks, 256)) << n;
  }
  // Large n: 4n / (n (1 + 1/64 + 1/4096)) = 4 / (4161/4096) = 3.9375...
  const size_t n = size_t(1) << 26;
  EXPECT_EQ(quantized_bytes(n), n + n / 64 + n / 4096);
  const double ratio = 4.0 * double(n) / double(quantized_bytes(n));
  EXPECT_DOUBLE_EQ(ratio, 4.0 * 4096 / 4161);
  EXPECT_GT(ratio, 3.9);
  std::printf("fp32 bytes / packed bytes at n = 2^26: %.4f\n", ratio);
}

TEST(Quant, RandomNormalWithinBoundAndSmallRmsError) {
  // Three full groups, a partial group and a partial last block.
  const size_t n = 3 * kGroupValues + 1000 + 5;
  const std::vector<float> x = normal(n, 7, 0.02f);
  const std::vector<float> y = round_trip_within_bound(x);
  double err2 = 0, x2 = 0;
  for (size_t i = 0; i < n; ++i) {
    err2 += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    x2 += double(x[i]) * x[i];
  }
  // Rounding to a step s ~ absmax/127 ~ 3 sigma/127 leaves an rms error of s/sqrt(12) ~ 0.7% of
  // sigma; the rounded-up block scale costs at most a few percent more.
  const double relative_rms = std::sqrt(err2 / x2);
  std::printf("normal data: relative rms error %.5f\n", relative_rms);
  EXPECT_LT(relative_rms, 0.009);
  EXPECT_GT(relative_rms, 0.004);  // it is a lossy format: a no-op would pass the bound trivially
}

TEST(Quant, OneHugeValuePerBlock) {
  // Every block holds one value far above the others (a different magnitude per group), so the
  // rest of the block rounds to few or no levels; the huge value itself takes the top code and
  // comes back to within float rounding.
  const size_t n = 2 * kGroupValues + 64 * 7 + 31;
  const float huge_of_group[] = {1.0e4f, 3.0e30f, 40.0f};
  std::vector<float> x = normal(n, 11, 1.0f);
  auto huge_index = [&](size_t b) { return std::min(n - 1, b * 64 + (b * 37) % 64); };
  for (size_t b = 0; b < ceil_div(n, 64); ++b)
    x[huge_index(b)] = (b % 2 ? -1.0f : 1.0f) * huge_of_group[b / kQuantScaleGroup];
  const std::vector<float> y = round_trip_within_bound(x);
  const Packed p = quantize(x);
  for (size_t b = 0; b < p.blocks; ++b) {
    const size_t i = huge_index(b);
    EXPECT_EQ(int(p.code(i)), b % 2 ? -127 : 127) << "block " << b;
    EXPECT_LE(std::fabs(y[i] - x[i]), 1e-6f * std::fabs(x[i])) << "block " << b;
  }
}

TEST(Quant, ZerosStayExactZeros) {
  // All zeros, over several groups.
  const std::vector<float> zeros(2 * kGroupValues + 100, 0.0f);
  const Packed pz = quantize(zeros);
  for (size_t g = 0; g < pz.groups; ++g) EXPECT_EQ(pz.group_scale(g), 0.0f);
  EXPECT_EQ(dequantize(pz), zeros);
  // Zero blocks (and -0) inside a group with nonzero blocks.
  std::vector<float> x = normal(kGroupValues + 300, 3, 5.0f);
  for (size_t b : {0u, 1u, 17u, 255u, 256u, 260u})
    for (size_t i = b * 64; i < std::min(x.size(), (b + 1) * 64); ++i)
      x[i] = (i % 2) ? -0.0f : 0.0f;
  const std::vector<float> y = round_trip_within_bound(x);
  for (size_t b : {0u, 1u, 17u, 255u, 256u, 260u})
    for (size_t i = b * 64; i < std::min(x.size(), (b + 1) * 64); ++i) EXPECT_EQ(y[i], 0.0f) << i;
}

TEST(Quant, Denormals) {
  const float min_sub = std::numeric_limits<float>::denorm_min();  // 2^-149
  // A group entirely subnormal, then a group mixing subnormal and normal blocks.
  std::vector<float> x = normal(2 * kGroupValues, 5, 1.0e-39f);
  for (size_t i = kGroupValues; i < 2 * kGroupValues; i += 128) x[i] = 1.0f;  // every other block
  x[3] = min_sub;
  round_trip_within_bound(x);
  // Values of +-1 and 0 ulps of the smallest subnormal: the scale is the smallest subnormal itself,
  // and the round trip is exact.
  std::vector<float> ulps(1000);
  for (size_t i = 0; i < ulps.size(); ++i) ulps[i] = min_sub * float(int(i % 3) - 1);
  const std::vector<float> y = round_trip_within_bound(ulps);
  EXPECT_EQ(y, ulps);
}

TEST(Quant, ExactlyRepresentableValuesRoundTripExactly) {
  // Values k 2^e, |k| <= 127, where every block of a group holds +-127 2^e (within its first 16
  // values, so the partial last block does too): the scale is 2^e exactly (block code 255), so
  // every value is a code times the scale. One exponent per group, from subnormal to huge, and a
  // few zero blocks among them.
  const int exponents[] = {-149, -140, -126, -60, -7, 0, 3, 40, 100};
  std::vector<float> x;
  for (int e : exponents) {
    for (size_t i = 0; i < kGroupValues; ++i) {
      const size_t b = i / 64;
      int k = int(random_below(17, uint32_t(e + 200), i, 255)) - 127;
      if (i % 64 == b % 16) k = (b % 2) ? 127 : -127;
      if (b % 50 == 7) k = 0;
      x.push_back(std::ldexp(float(k), e));
    }
  }
  x.resize(x.size() - 1000);  // the last group partial
  const std::vector<float> y = round_trip_within_bound(x);
  size_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) mismatches += y[i] != x[i];
  EXPECT_EQ(mismatches, 0u);
  // Small integers with 127 in every block: group scale 1, round trip exact.
  std::vector<float> ints(5000);
  for (size_t i = 0; i < ints.size(); ++i)
    ints[i] = (i % 64 == 0) ? 127.0f : float(int(i % 255) - 127);
  EXPECT_EQ(dequantize(quantize(ints)), ints);
}

TEST(Quant, MixedMagnitudesAcrossBlocksOfOneGroup) {
  // Blocks of one group from 1e-30 to 1e30: the bound holds with each block's own scale. Blocks
  // far below the group's largest scale (below S/255) get the smallest code and keep only their
  // largest values: that is the cost of 8-bit block scales, and the bound states it.
  std::vector<float> x = normal(kGroupValues + 64 * 40, 9, 1.0f);
  for (size_t b = 0; b < ceil_div(x.size(), 64); ++b) {
    const float magnitude = std::pow(10.0f, float(int(b % 61) - 30));
    for (size_t i = b * 64; i < std::min(x.size(), (b + 1) * 64); ++i) x[i] *= magnitude;
  }
  round_trip_within_bound(x);
  // Within a factor 10 of the group's largest block, the error stays within 1% of the block's max.
  std::vector<float> near(kGroupValues);
  for (size_t i = 0; i < near.size(); ++i)
    near[i] = float(random_normal(13, 0, i)) * std::pow(10.0f, -float((i / 64) % 2));
  const std::vector<float> y = round_trip_within_bound(near);
  for (size_t b = 0; b < near.size() / 64; ++b) {
    const float absmax = block_absmax(near, b);
    for (size_t i = b * 64; i < (b + 1) * 64; ++i)
      ASSERT_LE(std::fabs(near[i] - y[i]), 0.01f * absmax) << i;
  }
}

TEST(Quant, BitsDoNotDependOnTheThreadCount) {
  const size_t n = 9 * kGroupValues + 333;
  const std::vector<float> x = normal(n, 21, 0.1f);
  const int threads_before = num_threads();
  set_num_threads(1);
  const Packed one = quantize(x);
  const std::vector<float> y_one = dequantize(one);
  set_num_threads(4);
  const Packed four = quantize(x);
  const std::vector<float> y_four = dequantize(four);
  set_num_threads(threads_before);
  EXPECT_EQ(one.bytes, four.bytes);
  EXPECT_EQ(std::memcmp(y_one.data(), y_four.data(), n * sizeof(float)), 0);
}

TEST(Quant, SizeMismatchAndNonFiniteAreErrors) {
  using test::error_of;
  const std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> small(quantized_bytes(100) - 1), big(quantized_bytes(100) + 1);
  const std::string too_small = error_of([&] { quantize_blockwise(small, x); });
  EXPECT_NE(too_small.find("quantize_blockwise: packed buffer of 105 bytes is not the 106 bytes"),
            std::string::npos)
      << too_small;
  EXPECT_EQ(too_small.find('\n'), std::string::npos);
  EXPECT_NE(error_of([&] { quantize_blockwise(big, x); }), "");
  std::vector<float> out(101);
  const std::vector<uint8_t> packed(quantized_bytes(100));
  const std::string bad_dequantize = error_of([&] { dequantize_blockwise(out, packed); });
  EXPECT_NE(bad_dequantize.find("dequantize_blockwise: packed buffer of 106 bytes is not the 107"),
            std::string::npos)
      << bad_dequantize;
  std::vector<uint8_t> fits(quantized_bytes(100));
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    std::vector<float> y = x;
    y[42] = bad;
    const std::string msg = error_of([&] { quantize_blockwise(fits, y); });
    EXPECT_NE(msg.find("non-finite"), std::string::npos) << bad << ": " << msg;
  }
  // Empty is fine.
  quantize_blockwise({}, {});
  dequantize_blockwise({}, {});
}

TEST(Quant, OneRankAllGatherIsTheRoundTrip) {
  Comm world = comm_world();
  ASSERT_EQ(world.size, 1);
  const std::vector<float> x = normal(kGroupValues + 77, 4, 0.3f);
  const std::vector<float> want = dequantize(quantize(x));
  QuantBuffers buffers;
  std::vector<float> out(x.size());
  all_gather_quantized(world, out, x, buffers);
  EXPECT_EQ(std::memcmp(out.data(), want.data(), x.size() * sizeof(float)), 0);
  const uint8_t* send = buffers.send.data();
  const uint8_t* recv = buffers.recv.data();
  all_gather_quantized(world, out, x, buffers);  // the buffers are reused, not reallocated
  EXPECT_EQ(buffers.send.data(), send);
  EXPECT_EQ(buffers.recv.data(), recv);
  EXPECT_EQ(world.bytes.all_gather, 0u);
  std::vector<float> wrong(x.size() + 1);
  const std::string msg = test::error_of([&] { all_gather_quantized(world, wrong, x, buffers); });
  EXPECT_NE(msg.find("all_gather_quantized: output of 16462 floats is not 1 blocks of 16461"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace hibari
