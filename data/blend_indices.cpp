// data/blend_indices.cpp — Megatron-LM core's dataset blending; see blend_indices.h.
#include "data/blend_indices.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "core/error.h"

namespace hibari {

namespace {

// Megatron's helpers.cpp is built without FMA, so `w * x - taken` rounds the product before the
// subtraction.  With -march=native the compiler may fuse the two into one FMA, which can break
// near-ties between datasets differently; a product it cannot see through keeps the rounding.
[[gnu::noinline]] double rounded_product(double a, double b) { return a * b; }

}  // namespace

double numpy_sum(std::span<const double> a) {
  // numpy/core/src/umath/loops_utils.h.src pairwise_sum: below 8 a plain loop, up to 128 eight
  // accumulators combined as a tree, above that two halves cut at a multiple of 8.
  const size_t n = a.size();
  if (n < 8) {
    double res = 0.0;
    for (double x : a) res += x;
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8) {
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_sum(a.first(n2)) + numpy_sum(a.subspan(n2));
}

std::vector<double> normalize_weights(std::span<const double> weights) {
  const double sum = numpy_sum(weights);
  std::vector<double> out(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) out[i] = weights[i] / sum;
  return out;
}

BlendPlan plan_blend(std::span<const double> raw_weights, int64_t num_samples, double surplus) {
  check(!raw_weights.empty() && raw_weights.size() < 32767, "blend: need 1 to 32766 datasets");
  for (double w : raw_weights) check(w > 0, "blend: every weight must be positive");
  check(num_samples >= 0, "blend: num_samples < 0");
  // BlendedMegatronDatasetBuilder normalizes the user's weights and derives the sizes from them;
  // BlendedDataset normalizes what it is given once more (which may move the last bit).
  const std::vector<double> weights = normalize_weights(raw_weights);
  BlendPlan plan;
  plan.weights = normalize_weights(weights);
  for (double w : weights) {
    const double target = std::ceil(static_cast<double>(num_samples) * w);
    plan.target.push_back(static_cast<int64_t>(target));
    plan.num_samples.push_back(static_cast<int64_t>(std::ceil(target * (1.0 + surplus))));
    plan.size += plan.target.back();
  }
  return plan;
}

size_t blend_next_dataset(std::span<const double> weights, std::span<const int64_t> taken,
                          int64_t i) {
  const double x = std::max(static_cast<double>(i), 1.0);
  size_t best = 0;
  double best_error = rounded_product(weights[0], x) - static_cast<double>(taken[0]);
  for (size_t d = 1; d < weights.size(); ++d) {
    const double error = rounded_product(weights[d], x) - static_cast<double>(taken[d]);
    if (error > best_error) {
      best_error = error;
      best = d;
    }
  }
  return best;
}

BlendIndices build_blending_indices(std::span<const double> weights, int64_t size) {
  check(!weights.empty() && weights.size() < 32767, "blend: need 1 to 32766 datasets");
  check(size >= 0, "blend: size < 0");
  BlendIndices out;
  out.dataset_index.resize(static_cast<size_t>(size));
  out.dataset_sample_index.resize(static_cast<size_t>(size));
  std::vector<int64_t> taken(weights.size(), 0);
  for (int64_t i = 0; i < size; ++i) {
    const size_t best = blend_next_dataset(weights, taken, i);
    out.dataset_index[static_cast<size_t>(i)] = static_cast<int16_t>(best);
    out.dataset_sample_index[static_cast<size_t>(i)] = taken[best]++;
  }
  return out;
}

BlendIndices build_exhaustive_blending_indices(std::span<const int64_t> sizes) {
  check(!sizes.empty() && sizes.size() < 32767, "blend: need 1 to 32766 datasets");
  int64_t total = 0;
  for (int64_t s : sizes) {
    check(s > 0, "blend: every dataset size must be positive");
    total += s;
  }
  std::vector<double> weights(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) {
    weights[d] = static_cast<double>(sizes[d]) / static_cast<double>(total);
  }
  // helpers.cpp drops a dataset once its count reaches its size (an empty one never would).
  std::set<size_t> unspent;
  for (size_t d = 0; d < sizes.size(); ++d) unspent.insert(d);
  std::vector<int64_t> taken(sizes.size(), 0);
  BlendIndices out;
  out.dataset_index.reserve(static_cast<size_t>(total));
  out.dataset_sample_index.reserve(static_cast<size_t>(total));
  for (int64_t i = 0; !unspent.empty(); ++i) {
    const double x = std::max(static_cast<double>(i), 1.0);
    size_t best = 0;
    double best_error = std::numeric_limits<double>::lowest();
    for (size_t d : unspent) {
      const double error = rounded_product(weights[d], x) - static_cast<double>(taken[d]);
      if (error > best_error) {
        best_error = error;
        best = d;
      }
    }
    out.dataset_index.push_back(static_cast<int16_t>(best));
    out.dataset_sample_index.push_back(taken[best]++);
    if (taken[best] == sizes[best]) unspent.erase(best);
  }
  return out;
}

}  // namespace hibari
