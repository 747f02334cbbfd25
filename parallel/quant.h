// parallel/quant.h — blockwise int8 quantization with double-quantized scales, and the all-gather
// that sends parameters in that form (PLaMo-13B's quantized ZeRO-3 gather): about a quarter of the
// fp32 bytes on the wire.
//
// Format. n floats are cut into blocks of kQuantBlock = 64 values (the last one may be short) and
// the blocks into groups of kQuantScaleGroup = 256 blocks (the last one may be short).
//   block b:  absmax_b = max |x|,  scale_b = absmax_b / 127          (symmetric absmax int8)
//   group g:  S_g = max over its blocks of scale_b, stored as fp32, rounded up so S_g*127 >= absmax
//   block b:  c_b = the smallest uint8 with  s(c_b) * 127 >= absmax_b,  s(c) = S_g * (c / 255)
//             (the dequantized scale is rounded UP, so no code can overflow; c = 255 gives S_g)
//   value i:  code_i = round_half_even(x_i / s(c_b)) in [-127, 127];  dequantized  code_i * s(c_b)
// A block of zeros gets c_b = 0, codes 0, and dequantizes to exact zeros.
//
// Byte layout of the packed form of n floats (no padding, no alignment assumed by the reader):
//   [ G group scales: fp32, host byte order ][ B block scale codes: uint8 ][ n codes: int8 ]
//   B = ceil(n / 64),  G = ceil(B / 256),  bytes = 4 G + B + n   (quantized_bytes(n))
// For large n that is n (1 + 1/64 + 1/4096) bytes: 4 n fp32 bytes / that = 3.94x fewer.
//
// Error: for value x in a block with dequantized scale s (derivation in quant.cpp),
//   |x - deq(q(x))| <= s/2 + u (|x| + 127 s) + 2^-149,  u = 2^-24 (float rounding).
//
// Each group is quantized independently of the others, so groups run in parallel (OpenMP, the
// thread count of core/threads.h) and the bits never depend on the thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "parallel/comm.h"

namespace hibari {

inline constexpr size_t kQuantBlock = 64;        // values per int8 block (one scale each)
inline constexpr size_t kQuantScaleGroup = 256;  // block scales per group (one fp32 each)

// Bytes of the packed form of n floats: 4 ceil(ceil(n/64)/256) + ceil(n/64) + n.
size_t quantized_bytes(size_t n);

// out (quantized_bytes(in.size()) bytes) = the packed form of in. Every value must be finite.
void quantize_blockwise(std::span<uint8_t> out, std::span<const float> in);
// out = the floats that in (quantized_bytes(out.size()) bytes) packs.
void dequantize_blockwise(std::span<float> out, std::span<const uint8_t> in);

// The packed buffers of all_gather_quantized; kept by the caller and reused, so they grow once.
struct QuantBuffers {
  std::vector<uint8_t> send, recv;
};

// in is this rank's block; out (p * in.size()) = dequantize(quantize(in_r)) of every rank r in rank
// order, the same bits on every rank: this rank's own block goes through quantization too, so all
// replicas compute with identical weights. Sends (p-1) * quantized_bytes(in.size()) bytes
// (counted in comm.bytes.all_gather).
void all_gather_quantized(Comm& comm, std::span<float> out, std::span<const float> in,
                          QuantBuffers& buffers);

}  // namespace hibari
