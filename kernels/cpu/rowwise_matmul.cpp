// kernels/cpu/rowwise_matmul.cpp — see rowwise_matmul.h.
// Register tiles of up to kTileRows rows x one panel (two 16-float vectors: AVX-512 registers;
// GCC splits them where vectors are narrower): 2 kTileRows accumulators, each k-step loads the
// panel's two vectors once and broadcasts one x per row.  Every tile height runs the same
// per-element operations, so a row's bits do not depend on the tile it lands in.
#include "kernels/cpu/rowwise_matmul.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace hibari::cpu {

namespace {

using Vec16 = float __attribute__((vector_size(64)));
constexpr size_t kLanes = 16;
static_assert(kRowwisePanel == 2 * kLanes);
constexpr size_t kTileRows = 12;
// Rows per block: a thread walks its panels for one block of rows, so the block's x (up to
// kBlockRows x K) stays in its cache while the panels stream past.
constexpr size_t kBlockRows = 96;

Vec16 load(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// out (R, cols) = x (R rows, ldx apart) @ panel, cols <= kRowwisePanel valid columns.
template <size_t R>
void tile(float* out, size_t ldo, const float* x, size_t ldx, const float* panel, size_t K,
          size_t cols) {
  Vec16 acc[R][2];
  for (size_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Vec16{};
  for (size_t k = 0; k < K; ++k) {
    const Vec16 w0 = load(panel + k * kRowwisePanel);
    const Vec16 w1 = load(panel + k * kRowwisePanel + kLanes);
    for (size_t r = 0; r < R; ++r) {
      const float xv = x[r * ldx + k];
      acc[r][0] += xv * w0;
      acc[r][1] += xv * w1;
    }
  }
  for (size_t r = 0; r < R; ++r) {
    float* o = out + r * ldo;
    if (cols == kRowwisePanel) {
      std::memcpy(o, &acc[r][0], sizeof(Vec16));
      std::memcpy(o + kLanes, &acc[r][1], sizeof(Vec16));
    } else {
      float full[kRowwisePanel];
      std::memcpy(full, &acc[r][0], sizeof(Vec16));
      std::memcpy(full + kLanes, &acc[r][1], sizeof(Vec16));
      std::memcpy(o, full, cols * sizeof(float));
    }
  }
}

using TileFn = void (*)(float*, size_t, const float*, size_t, const float*, size_t, size_t);

template <size_t... R>
constexpr TileFn tile_of(size_t rows, std::index_sequence<R...>) {
  TileFn fn = nullptr;
  ((rows == R + 1 ? (fn = tile<R + 1>, 0) : 0), ...);
  return fn;
}

TileFn tile_of(size_t rows) { return tile_of(rows, std::make_index_sequence<kTileRows>{}); }

}  // namespace

size_t rowwise_packed_floats(size_t N, size_t K) {
  return (N + kRowwisePanel - 1) / kRowwisePanel * kRowwisePanel * K;
}

void rowwise_pack(float* packed, const float* weight, size_t N, size_t K) {
  const size_t panels = (N + kRowwisePanel - 1) / kRowwisePanel;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < panels; ++p) {
    float* dst = packed + p * K * kRowwisePanel;
    for (size_t k = 0; k < K; ++k)
      for (size_t c = 0; c < kRowwisePanel; ++c) {
        const size_t n = p * kRowwisePanel + c;
        dst[k * kRowwisePanel + c] = n < N ? weight[n * K + k] : 0.0f;
      }
  }
}

void matmul_rowwise(float* out, const float* inp, const float* packed, size_t M, size_t N, size_t K,
                    size_t ldo) {
  if (M == 0 || N == 0) return;
  if (ldo == 0) ldo = N;
  const size_t panels = (N + kRowwisePanel - 1) / kRowwisePanel;
  const size_t blocks = (M + kBlockRows - 1) / kBlockRows;
  // Work items (row block, panel), row block outermost: a thread's contiguous share of them is a
  // run of panels over mostly one row block.
#pragma omp parallel for schedule(static)
  for (size_t item = 0; item < blocks * panels; ++item) {
    const size_t b = item / panels, p = item % panels;
    const size_t n = p * kRowwisePanel, cols = std::min(kRowwisePanel, N - n);
    const float* panel = packed + p * K * kRowwisePanel;
    const size_t m1 = std::min(M, (b + 1) * kBlockRows);
    for (size_t m = b * kBlockRows; m < m1; m += kTileRows) {
      const size_t rows = std::min(kTileRows, m1 - m);
      tile_of(rows)(out + m * ldo + n, ldo, inp + m * K, K, panel, K, cols);
    }
  }
}

}  // namespace hibari::cpu
