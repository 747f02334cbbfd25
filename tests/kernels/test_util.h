// tests/kernels/test_util.h — random test data and error measures shared by the kernel tests.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace hibari::test {

// n values uniform in [lo, hi) from a fixed-seed generator owned by the test.
inline std::vector<float> uniform(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

template <typename T>
std::vector<double> to_double(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// max|a - b| / max(1, max|b|): relative for large values, absolute for values below one.
template <typename A, typename B>
double scaled_max_error(const std::vector<A>& a, const std::vector<B>& b) {
  double diff = 0, scale = 1;
  for (size_t i = 0; i < b.size(); ++i) {
    double d = std::abs(double(a[i]) - double(b[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return a.size() == b.size() ? diff / scale : INFINITY;
}

// ||a - b|| / ||b|| (2-norms) over n entries: for arrays whose entries are all much smaller than
// one.
template <typename A, typename B>
double norm_relative_error(const A* a, const B* b, size_t n) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    diff += d * d;
    norm += double(b[i]) * double(b[i]);
  }
  if (std::isnan(diff)) return INFINITY;
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

template <typename A, typename B>
double norm_relative_error(const std::vector<A>& a, const std::vector<B>& b) {
  return a.size() == b.size() ? norm_relative_error(a.data(), b.data(), b.size()) : INFINITY;
}

// Restores OpenMP's thread count when a test that changes it ends, failed assertions included.
class SavedThreadCount {
 public:
  SavedThreadCount() : saved_(omp_get_max_threads()) {}
  ~SavedThreadCount() { omp_set_num_threads(saved_); }
  SavedThreadCount(const SavedThreadCount&) = delete;
  SavedThreadCount& operator=(const SavedThreadCount&) = delete;

 private:
  int saved_;
};

// The parts written one after another: for test names ("T" + std::to_string(T) trips a false
// -Wrestrict in GCC 12's std::string at -O3).
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}

}  // namespace hibari::test
