// tests/kernels/gradcheck.h — finite-difference checks of the reference backward passes, in double.
// A test builds a scalar objective L = sum(out * w) with fixed random weights w, runs the reference
// backward with dout = w to get the analytic gradient, and compares it with central differences.
#pragma once

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace hibari::test {

constexpr double gradcheck_step = 1e-6;
constexpr double gradcheck_tolerance = 1e-6;

// n doubles uniform in [lo, hi).
inline std::vector<double> uniform_double(size_t n, std::mt19937& rng, double lo = -1.0,
                                          double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> x(n);
  for (double& v : x) v = dist(rng);
  return x;
}

// sum(out * w): the scalar objective whose gradient with respect to out is w.
inline double weighted_sum(const std::vector<double>& out, const std::vector<double>& w) {
  double sum = 0;
  for (size_t i = 0; i < out.size(); ++i) sum += out[i] * w[i];
  return sum;
}

// dL/dx by central differences.  `loss` reads x (captured by reference), which is perturbed one
// element at a time and restored.  The divisor is the step as actually represented.
template <typename Loss>
std::vector<double> numeric_gradient(std::vector<double>& x, Loss&& loss,
                                     double h = gradcheck_step) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    const double plus = xi + h, minus = xi - h;
    x[i] = plus;
    const double loss_plus = loss();
    x[i] = minus;
    const double loss_minus = loss();
    x[i] = xi;
    grad[i] = (loss_plus - loss_minus) / (plus - minus);
  }
  return grad;
}

// ||analytic - numeric|| / ||numeric|| over the whole gradient.
inline double gradient_error(const std::vector<double>& analytic,
                             const std::vector<double>& numeric) {
  if (analytic.size() != numeric.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    diff += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]);
    norm += numeric[i] * numeric[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace hibari::test
