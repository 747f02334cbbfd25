// bench/quant_bench.cpp — speed of parallel/quant.h: quantize_blockwise and dequantize_blockwise
// on one thread and on --threads, and, under mpirun, the float all-gather against the quantized
// one (time and bytes sent per rank).
//
//   quant_bench [--n FLOATS] [--repeats R] [--threads T]
//   mpirun -np 2 quant_bench ...        (the all-gather comparison needs 2 or more ranks)
// Defaults: --n 16777216 (64 MiB of fp32 per rank), --repeats 7, --threads 0 (core/threads.h's
// default). Times are medians; GB/s counts the fp32 bytes (4 n) per second. GB = 1e9 bytes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "parallel/comm.h"
#include "parallel/quant.h"

namespace {

using namespace hibari;

double median_seconds(int repeats, const std::function<void()>& run) {
  std::vector<double> seconds;
  run();  // warm-up: page faults, buffer growth
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Comm world = comm_init(&argc, &argv);
  size_t n = size_t(1) << 24;
  int repeats = 7, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--n")
      n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--repeats")
      repeats = std::atoi(argv[i + 1]);
    else if (flag == "--threads")
      threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "quant_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  set_num_threads(threads);
  const int all_threads = num_threads();
  const bool root = world.rank == 0;

  std::vector<float> in(n), back(n);
  for (size_t i = 0; i < n; ++i) in[i] = 0.02f * float(random_normal(1, uint32_t(world.rank), i));
  std::vector<uint8_t> packed(quantized_bytes(n));

  if (root) {
    std::printf("n = %zu floats per rank, packed %zu bytes (fp32 / packed = %.4f), %d ranks\n\n", n,
                packed.size(), 4.0 * double(n) / double(packed.size()), world.size);
    std::printf(
        "| threads | quantize ms | GB/s | dequantize ms | GB/s |\n|---:|---:|---:|---:|---:|\n");
  }
  for (int t : {1, all_threads}) {
    set_num_threads(t);
    const double q = median_seconds(repeats, [&] { quantize_blockwise(packed, in); });
    const double d = median_seconds(repeats, [&] { dequantize_blockwise(back, packed); });
    if (root)
      std::printf("| %d | %.2f | %.2f | %.2f | %.2f |\n", t, q * 1e3, 4.0 * double(n) / q / 1e9,
                  d * 1e3, 4.0 * double(n) / d / 1e9);
    if (t == all_threads) break;
  }
  set_num_threads(all_threads);

  double err2 = 0, x2 = 0;
  for (size_t i = 0; i < n; ++i) {
    err2 += (double(in[i]) - back[i]) * (double(in[i]) - back[i]);
    x2 += double(in[i]) * in[i];
  }
  if (root) std::printf("\nrelative rms error (normal data): %.5f\n", std::sqrt(err2 / x2));

  if (world.size > 1) {
    std::vector<float> out(size_t(world.size) * n);
    QuantBuffers buffers;
    Comm float_comm = world, quant_comm = world;  // separate byte counters
    const double f = median_seconds(repeats, [&] { all_gather(float_comm, out, in); });
    const double qg =
        median_seconds(repeats, [&] { all_gather_quantized(quant_comm, out, in, buffers); });
    const double calls = repeats + 1;
    if (root) {
      std::printf("\n| all-gather | ms | bytes sent per rank | theory |\n|---|---:|---:|---:|\n");
      const uint64_t p = uint64_t(world.size);
      std::printf("| fp32 | %.2f | %.0f | %llu |\n", f * 1e3,
                  double(float_comm.bytes.all_gather) / calls,
                  (unsigned long long)((p - 1) * n * 4));
      std::printf("| quantized | %.2f | %.0f | %llu |\n", qg * 1e3,
                  double(quant_comm.bytes.all_gather) / calls,
                  (unsigned long long)((p - 1) * quantized_bytes(n)));
    }
  }
  comm_finalize();
  return 0;
}
