// kernels/cpu/rowwise_matmul.cpp — see rowwise_matmul.h.
// Register tiles of up to 4 rows x 4 outputs, each accumulator a 16-float vector (one AVX-512
// register; GCC splits it where vectors are narrower).  Every tile shape runs the same per-element
// operations (templates over the shape only change how many elements share a loop), so edge tiles
// give the bits of full ones.
#include "kernels/cpu/rowwise_matmul.h"

#include <algorithm>
#include <cstring>

namespace hibari::cpu {

namespace {

using Vec16 = float __attribute__((vector_size(64)));
constexpr size_t kLanes = 16;
constexpr size_t kTileRows = 4, kTileCols = 4;
// Outputs per thread's block: the block's weight rows (kBlockCols x K) are reused by every row
// tile while they are in cache.
constexpr size_t kBlockCols = 64;

Vec16 load(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <size_t R, size_t CC>
void tile(float* out, size_t ldo, const float* x, const float* w, size_t K) {
  Vec16 acc[R][CC];
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < CC; ++c) acc[r][c] = Vec16{};
  size_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    Vec16 xv[R], wv[CC];
    for (size_t r = 0; r < R; ++r) xv[r] = load(x + r * K + k);
    for (size_t c = 0; c < CC; ++c) wv[c] = load(w + c * K + k);
    for (size_t r = 0; r < R; ++r)
      for (size_t c = 0; c < CC; ++c) acc[r][c] += xv[r] * wv[c];
  }
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < CC; ++c) {
      float sum = 0.0f;
      for (size_t j = 0; j < kLanes; ++j) sum += acc[r][c][j];
      for (size_t kk = k; kk < K; ++kk) sum += x[r * K + kk] * w[c * K + kk];
      out[r * ldo + c] = sum;
    }
}

using TileFn = void (*)(float*, size_t, const float*, const float*, size_t);

template <size_t R>
constexpr TileFn tile_of_cols(size_t cols) {
  switch (cols) {
    case 1:
      return tile<R, 1>;
    case 2:
      return tile<R, 2>;
    case 3:
      return tile<R, 3>;
    default:
      return tile<R, 4>;
  }
}

TileFn tile_of(size_t rows, size_t cols) {
  switch (rows) {
    case 1:
      return tile_of_cols<1>(cols);
    case 2:
      return tile_of_cols<2>(cols);
    case 3:
      return tile_of_cols<3>(cols);
    default:
      return tile_of_cols<4>(cols);
  }
}

}  // namespace

void matmul_rowwise(float* out, const float* inp, const float* weight, size_t M, size_t N, size_t K,
                    size_t ldo) {
  if (M == 0 || N == 0) return;
  if (ldo == 0) ldo = N;
  const size_t blocks = (N + kBlockCols - 1) / kBlockCols;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < blocks; ++b) {
    const size_t n0 = b * kBlockCols, n1 = std::min(N, n0 + kBlockCols);
    for (size_t m = 0; m < M; m += kTileRows) {
      const size_t rows = std::min(kTileRows, M - m);
      for (size_t n = n0; n < n1; n += kTileCols) {
        const size_t cols = std::min(kTileCols, n1 - n);
        tile_of(rows, cols)(out + m * ldo + n, ldo, inp + m * K, weight + n * K, K);
      }
    }
  }
}

}  // namespace hibari::cpu
