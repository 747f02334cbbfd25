#include "train/peak_flops.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace hibari {

double measure_sgemm_flops(size_t n, int repeats) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  cpu::gemm(c.data(), a.data(), b.data(), n, n, n);  // warm-up: page in, spin up threads
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    cpu::gemm(c.data(), a.data(), b.data(), n, n, n);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  return 2.0 * double(n) * double(n) * double(n) / best;
}

}  // namespace hibari
