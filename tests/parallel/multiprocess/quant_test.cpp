// all_gather_quantized (parallel/quant.h) on 2, 3 and 4 processes: every rank ends with
// dequantize(quantize(block of rank r)) for every r, bit for bit the same on all ranks, and the
// bytes sent are the packed size, about a quarter of what a float all-gather sends.
#include "parallel/quant.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "parallel/comm.h"

namespace hibari {
namespace {

// Rank r's block: normal values whose magnitude depends on r, so ranks' scales differ.
std::vector<float> block_of(int rank, size_t n) {
  std::vector<float> v(n);
  const float std_dev = 0.01f * float(rank + 1);
  for (size_t i = 0; i < n; ++i) v[i] = std_dev * float(random_normal(99, uint32_t(rank), i));
  return v;
}

// What every rank must hold after the gather: each rank's block through the round trip.
std::vector<float> round_trips_in_rank_order(int size, size_t n) {
  std::vector<float> want(size_t(size) * n);
  std::vector<uint8_t> packed(quantized_bytes(n));
  for (int r = 0; r < size; ++r) {
    quantize_blockwise(packed, block_of(r, n));
    dequantize_blockwise(std::span<float>(want).subspan(size_t(r) * n, n), packed);
  }
  return want;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  // (memcmp of an empty vector's null data pointer is undefined even for 0 bytes)
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST(QuantizedAllGather, EveryRankHoldsEveryRoundTripBitForBit) {
  Comm world = comm_world();
  QuantBuffers buffers;  // one set across sizes, as a ZeRO-3 layer loop would use it
  // 0, less than a block, not a multiple of a block, of a group, and several groups.
  for (size_t n : {0u, 1u, 63u, 1000u, 16384u, 16384u * 3 + 77u}) {
    const std::vector<float> in = block_of(world.rank, n);
    std::vector<float> out(size_t(world.size) * n);
    all_gather_quantized(world, out, in, buffers);
    EXPECT_TRUE(same_bits(out, round_trips_in_rank_order(world.size, n))) << "n=" << n;
    // The same bits on every rank: rank 0's result, broadcast, equals this rank's.
    std::vector<float> from_root = out;
    broadcast(world, from_root, 0);
    EXPECT_TRUE(same_bits(out, from_root)) << "n=" << n;
    // Not the identity: the own block went through quantization too.
    if (n >= 64) {
      const std::vector<float> own(out.begin() + world.rank * n,
                                   out.begin() + (world.rank + 1) * n);
      EXPECT_FALSE(same_bits(own, in)) << "n=" << n;
    }
  }
}

TEST(QuantizedAllGather, SendsAQuarterOfTheFloatBytes) {
  Comm world = comm_world();
  const uint64_t p = uint64_t(world.size);
  const size_t n = 100000;  // per rank: 1563 blocks in 7 groups
  const std::vector<float> in = block_of(world.rank, n);
  std::vector<float> out(p * n);
  QuantBuffers buffers;

  all_gather_quantized(world, out, in, buffers);
  const uint64_t quantized = world.bytes.all_gather;
  // (p-1)/p of the gathered packed buffer, p * quantized_bytes(n) bytes.
  EXPECT_EQ(quantized, (p - 1) * p * quantized_bytes(n) / p);
  EXPECT_EQ(quantized_bytes(n), n + 1563 + 4 * 7);

  all_gather(world, out, in);
  const uint64_t exact = world.bytes.all_gather - quantized;
  EXPECT_EQ(exact, (p - 1) * p * n * 4 / p);

  const double ratio = double(exact) / double(quantized);
  if (world.rank == 0)
    std::printf("np=%d, n=%zu per rank: float all-gather %llu bytes, quantized %llu, ratio %.4f\n",
                world.size, n, (unsigned long long)exact, (unsigned long long)quantized, ratio);
  EXPECT_GT(ratio, 3.8);
  EXPECT_LT(ratio, 4.0);
}

}  // namespace
}  // namespace hibari
