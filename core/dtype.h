// core/dtype.h — element types and the bf16 <-> fp32 conversions.
// bf16 is the upper half of an IEEE fp32; conversion to bf16 rounds to nearest even, NaN stays NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hibari {

enum class DType : uint8_t { f32, bf16 };

constexpr size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
constexpr const char* dtype_name(DType t) { return t == DType::f32 ? "F32" : "BF16"; }

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return uint16_t((bits >> 16) | 0x0040u);  // quiet NaN, keep the sign
  }
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t((bits + rounding) >> 16);
}

}  // namespace hibari
