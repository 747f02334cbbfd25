#include "train/peak_flops.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rowwise_matmul.h"

namespace hibari {

namespace {

// FLOP/s of n x n x n `multiply`, best of `repeats` timed runs after a warm-up (page in, spin up
// threads).
template <typename Multiply>
double best_rate(size_t n, int repeats, Multiply multiply) {
  multiply();
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    multiply();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  return 2.0 * double(n) * double(n) * double(n) / best;
}

}  // namespace

double measure_sgemm_flops(size_t n, int repeats) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  return best_rate(n, repeats, [&] { cpu::gemm(c.data(), a.data(), b.data(), n, n, n); });
}

double measure_rowwise_flops(size_t n, int repeats) {
  std::vector<float> a(n * n, 0.5f), packed(cpu::rowwise_packed_floats(n, n), 0.25f), c(n * n);
  return best_rate(n, repeats,
                   [&] { cpu::matmul_rowwise(c.data(), a.data(), packed.data(), n, n, n); });
}

}  // namespace hibari
