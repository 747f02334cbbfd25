// core/dtype.h: bf16 <-> fp32 conversion (round to nearest even, NaN preserved).
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>

namespace hibari {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_STREQ(dtype_name(DType::f32), "F32");
  EXPECT_STREQ(dtype_name(DType::bf16), "BF16");
}

TEST(Bf16, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    ASSERT_EQ(to_bits(f), h << 16);  // the upper half of the fp32
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
}

TEST(Bf16, KnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(3.140625f), 0x4049);  // pi to 8 significant bits
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_EQ(f32_to_bf16(std::numbers::pi_v<float>), 0x4049);  // 3.14159... rounds to 3.140625
}

TEST(Bf16, RoundsToNearestEven) {
  // bf16 keeps 7 mantissa bits: around 1.0 the step is 2^-7.
  const float step = 1.0f / 128;
  EXPECT_EQ(f32_to_bf16(1.0f + step / 2), 0x3f80);          // tie, 1.0 is even: down
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * step / 2), 0x3f82);      // tie, 1 + step is odd: up
  EXPECT_EQ(f32_to_bf16(1.0f + step / 2 + 1e-6f), 0x3f81);  // above the tie: up
  EXPECT_EQ(f32_to_bf16(1.0f + step / 2 - 1e-6f), 0x3f80);  // below the tie: down
  EXPECT_EQ(f32_to_bf16(-(1.0f + step / 2)), 0xbf80);       // symmetric in sign
  EXPECT_EQ(f32_to_bf16(-(1.0f + 3 * step / 2)), 0xbf82);
  // Bit patterns: the lower 16 bits 0x8000 are the tie.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  // A carry into the exponent: the largest value below 2 rounds up to 2.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3fffffffu)), 0x4000);
  // Subnormals round the same way.
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);
}

TEST(Bf16, InfinityAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32_to_bf16(inf), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-inf), 0xff80);
  EXPECT_EQ(bf16_to_f32(0x7f80), inf);
  // FLT_MAX lies above the largest bf16's halfway point: rounds to infinity, as IEEE does.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);  // below the tie: largest finite
}

TEST(Bf16, NanStaysNan) {
  const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,
                           0x7fffffffu, 0x7f80ffffu, 0x7fbfffffu};
  for (uint32_t bits : nans) {
    uint16_t h = f32_to_bf16(from_bits(bits));
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << bits << " -> " << h;
    EXPECT_EQ(h & 0x8000u, (bits >> 16) & 0x8000u) << "sign of " << std::hex << bits;
    EXPECT_TRUE(h & 0x0040u) << "quiet " << std::hex << bits;
  }
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::signaling_NaN()))));
}

}  // namespace
}  // namespace hibari
