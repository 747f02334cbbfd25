// parallel/quant.cpp — blockwise int8 quantization with double-quantized scales (format in quant.h)
// and the quantized all-gather.
//
// Error bound, for x in a block with dequantized scale s > 0 (u = 2^-24, the float unit roundoff):
//   q = fl(x / s) = (x / s)(1 + d1),         |d1| <= u
//   code = round_half_even(q),               |q - code| <= 1/2,  |code| <= 127
//   deq = fl(code * s) = code s (1 + d2) + e, |d2| <= u, |e| <= 2^-150 (only where deq is
//   subnormal) |x - deq| <= s |x/s - q| + s |q - code| + |code s| u + |e|
//             <= |x| u + s/2 + 127 s u + 2^-150.
// No code overflows: c_b is chosen with fl(127 s) >= absmax_b >= |x|, so x / s <= 127 (1 + u) and q
// rounds to at most 127. (The clamp in quantize_block never changes a value; it keeps the int8
// conversion defined whatever the input.)
#include "parallel/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"

namespace hibari {
namespace {

// Where the three sections of a packed buffer of n floats start (quant.h, "Byte layout").
struct PackedLayout {
  size_t n = 0;                   // floats
  size_t blocks = 0;              // ceil(n / kQuantBlock)
  size_t groups = 0;              // ceil(blocks / kQuantScaleGroup)
  size_t block_codes_offset = 0;  // after the groups fp32 group scales at offset 0
  size_t codes_offset = 0;        // after the blocks uint8 block scale codes
  size_t bytes = 0;               // codes_offset + n
};

PackedLayout packed_layout(size_t n) {
  PackedLayout layout;
  layout.n = n;
  layout.blocks = (n + kQuantBlock - 1) / kQuantBlock;
  layout.groups = (layout.blocks + kQuantScaleGroup - 1) / kQuantScaleGroup;
  layout.block_codes_offset = layout.groups * sizeof(float);
  layout.codes_offset = layout.block_codes_offset + layout.blocks;
  layout.bytes = layout.codes_offset + n;
  return layout;
}

// The dequantized scale of block scale code c in a group with scale S. c / 255 is 1 exactly for
// c = 255, so the largest code gives S itself; the one formula serves quantize and dequantize.
float block_scale(float group_scale, uint8_t c) { return group_scale * (float(c) / 255.0f); }

// max |x| over a block, by the bits: with the sign bit cleared a float's bits order like its value,
// and every NaN sorts above infinity, so a NaN anywhere makes the result non-finite (a float max
// would drop it). An integer max also vectorizes cleanly.
float block_absmax(const float* x, size_t len) {
  uint32_t max_bits = 0;
  for (size_t i = 0; i < len; ++i)
    max_bits = std::max(max_bits, std::bit_cast<uint32_t>(x[i]) & 0x7fffffffu);
  return std::bit_cast<float>(max_bits);
}

// The smallest block scale code whose dequantized scale covers absmax (s * 127 >= absmax): the
// scale rounds up, never down. 0 only for a block of zeros.
uint8_t block_scale_code(float group_scale, float group_absmax, float absmax) {
  if (absmax == 0.0f) return 0;
  // The ratio gives the code to within one; the loops settle it exactly as the float test sees it.
  int c = int(std::ceil(255.0f * (absmax / group_absmax)));
  c = std::clamp(c, 1, 255);
  while (c > 1 && block_scale(group_scale, uint8_t(c - 1)) * 127.0f >= absmax) --c;
  while (c < 255 && block_scale(group_scale, uint8_t(c)) * 127.0f < absmax) ++c;
  return uint8_t(c);
}

void quantize_block(int8_t* codes, const float* x, size_t len, float scale) {
  if (scale == 0.0f) {  // a block of zeros
    std::memset(codes, 0, len);
    return;
  }
  for (size_t i = 0; i < len; ++i) {
    float q = std::nearbyint(x[i] / scale);  // round half to even (the default rounding mode)
    q = std::min(127.0f, std::max(-127.0f, q));
    codes[i] = int8_t(int(q));
  }
}

void dequantize_block(float* out, const int8_t* codes, size_t len, float scale) {
  for (size_t i = 0; i < len; ++i) out[i] = float(codes[i]) * scale;
}

// Group g of `in` into `packed`; false if the group holds a non-finite value.
bool quantize_group(uint8_t* packed, const float* in, const PackedLayout& layout, size_t g) {
  const size_t first_block = g * kQuantScaleGroup;
  const size_t nblocks = std::min(kQuantScaleGroup, layout.blocks - first_block);
  float absmax[kQuantScaleGroup];
  float group_absmax = 0.0f;
  for (size_t b = 0; b < nblocks; ++b) {
    const size_t begin = (first_block + b) * kQuantBlock;
    absmax[b] = block_absmax(in + begin, std::min(kQuantBlock, layout.n - begin));
    if (!std::isfinite(absmax[b])) return false;  // before a float max, which would drop a NaN
    group_absmax = std::max(group_absmax, absmax[b]);
  }
  // S = max scale_b = group_absmax / 127, nudged up until S * 127 covers group_absmax (it may round
  // down, or to zero for the smallest subnormals).
  float group_scale = group_absmax / 127.0f;
  while (group_scale * 127.0f < group_absmax)
    group_scale = std::nextafter(group_scale, std::numeric_limits<float>::infinity());
  std::memcpy(packed + g * sizeof(float), &group_scale, sizeof(float));

  uint8_t* block_codes = packed + layout.block_codes_offset;
  int8_t* codes = reinterpret_cast<int8_t*>(packed + layout.codes_offset);
  for (size_t b = 0; b < nblocks; ++b) {
    const size_t begin = (first_block + b) * kQuantBlock;
    const uint8_t c = block_scale_code(group_scale, group_absmax, absmax[b]);
    block_codes[first_block + b] = c;
    quantize_block(codes + begin, in + begin, std::min(kQuantBlock, layout.n - begin),
                   block_scale(group_scale, c));
  }
  return true;
}

// Group g of `packed` into `out` (all n floats of the packed buffer).
void dequantize_group(float* out, const uint8_t* packed, const PackedLayout& layout, size_t g) {
  float group_scale;
  std::memcpy(&group_scale, packed + g * sizeof(float), sizeof(float));
  const uint8_t* block_codes = packed + layout.block_codes_offset;
  const int8_t* codes = reinterpret_cast<const int8_t*>(packed + layout.codes_offset);
  const size_t first_block = g * kQuantScaleGroup;
  const size_t last_block = std::min(first_block + kQuantScaleGroup, layout.blocks);
  for (size_t b = first_block; b < last_block; ++b) {
    const size_t begin = b * kQuantBlock;
    dequantize_block(out + begin, codes + begin, std::min(kQuantBlock, layout.n - begin),
                     block_scale(group_scale, block_codes[b]));
  }
}

void check_packed_size(const char* what, size_t bytes, size_t n) {
  check(bytes == quantized_bytes(n), std::string(what) + ": packed buffer of " +
                                         std::to_string(bytes) + " bytes is not the " +
                                         std::to_string(quantized_bytes(n)) + " bytes that " +
                                         std::to_string(n) + " floats pack into");
}

}  // namespace

size_t quantized_bytes(size_t n) { return packed_layout(n).bytes; }

void quantize_blockwise(std::span<uint8_t> out, std::span<const float> in) {
  check_packed_size("quantize_blockwise", out.size(), in.size());
  const PackedLayout layout = packed_layout(in.size());
  bool finite = true;
  // A group (16384 values) is enough work for a thread; one group runs on the calling thread.
#pragma omp parallel for schedule(static) reduction(&& : finite) if (layout.groups > 1)
  for (size_t g = 0; g < layout.groups; ++g)
    finite = quantize_group(out.data(), in.data(), layout, g) && finite;
  check(finite, "quantize_blockwise: the input holds a non-finite value (inf or NaN) among its " +
                    std::to_string(in.size()) + " floats");
}

void dequantize_blockwise(std::span<float> out, std::span<const uint8_t> in) {
  check_packed_size("dequantize_blockwise", in.size(), out.size());
  const PackedLayout layout = packed_layout(out.size());
#pragma omp parallel for schedule(static) if (layout.groups > 1)
  for (size_t g = 0; g < layout.groups; ++g) dequantize_group(out.data(), in.data(), layout, g);
}

void all_gather_quantized(Comm& comm, std::span<float> out, std::span<const float> in,
                          QuantBuffers& buffers) {
  const size_t p = size_t(comm.size);
  check(out.size() == in.size() * p,
        "all_gather_quantized: output of " + std::to_string(out.size()) + " floats is not " +
            std::to_string(p) + " blocks of " + std::to_string(in.size()));
  const PackedLayout layout = packed_layout(in.size());
  // resize keeps the capacity, so after the first call of a given size nothing is allocated.
  buffers.send.resize(layout.bytes);
  buffers.recv.resize(layout.bytes * p);
  quantize_blockwise(buffers.send, in);
  all_gather_bytes(comm, buffers.recv, buffers.send);
  // Every rank's block, this rank's own included, is dequantized from the bytes that travelled, so
  // all ranks end with the same bits. One parallel loop over (rank, group) keeps all threads busy
  // even when each rank's block is a single group.
  const size_t tasks = p * layout.groups;
  const uint8_t* recv = buffers.recv.data();
  float* dst = out.data();
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (size_t t = 0; t < tasks; ++t) {
    const size_t r = t / layout.groups, g = t % layout.groups;
    dequantize_group(dst + r * layout.n, recv + r * layout.bytes, layout, g);
  }
}

}  // namespace hibari
