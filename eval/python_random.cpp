// eval/python_random.cpp — CPython's random.Random (see the header for what and from where).
#include "eval/python_random.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace hibari {
namespace {

constexpr size_t kN = 624;
constexpr size_t kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

void init_genrand(PythonRandom& rnd, uint32_t s) {
  auto& mt = rnd.mt;
  mt[0] = s;
  for (size_t i = 1; i < kN; ++i) {
    mt[i] = 1812433253U * (mt[i - 1] ^ (mt[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  rnd.index = kN;
}

void init_by_array(PythonRandom& rnd, const std::vector<uint32_t>& key) {
  auto& mt = rnd.mt;
  init_genrand(rnd, 19650218U);
  size_t i = 1;
  size_t j = 0;
  for (size_t k = std::max(kN, key.size()); k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] +
            static_cast<uint32_t>(j);  // non-linear
    ++i;
    ++j;
    if (i >= kN) {
      mt[0] = mt[kN - 1];
      i = 1;
    }
    if (j >= key.size()) j = 0;
  }
  for (size_t k = kN - 1; k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt[0] = mt[kN - 1];
      i = 1;
    }
  }
  mt[0] = 0x80000000U;  // MSB is 1, assuring a non-zero initial array
}

}  // namespace

void python_random_seed(PythonRandom& rnd, uint64_t seed) {
  // The int's 32-bit words, least significant first, as many as its bit length needs (at least
  // one, so 0 gives [0]).
  std::vector<uint32_t> key{static_cast<uint32_t>(seed)};
  if (seed >> 32) key.push_back(static_cast<uint32_t>(seed >> 32));
  init_by_array(rnd, key);
}

PythonRandom python_random_with_seed(uint64_t seed) {
  PythonRandom rnd;
  python_random_seed(rnd, seed);
  return rnd;
}

uint32_t python_random_u32(PythonRandom& rnd) {
  static constexpr uint32_t mag01[2] = {0x0U, kMatrixA};
  auto& mt = rnd.mt;
  if (rnd.index >= kN) {  // generate kN words at one time
    size_t kk = 0;
    for (; kk < kN - kM; ++kk) {
      uint32_t y = (mt[kk] & kUpperMask) | (mt[kk + 1] & kLowerMask);
      mt[kk] = mt[kk + kM] ^ (y >> 1) ^ mag01[y & 0x1U];
    }
    for (; kk < kN - 1; ++kk) {
      uint32_t y = (mt[kk] & kUpperMask) | (mt[kk + 1] & kLowerMask);
      mt[kk] = mt[kk + kM - kN] ^ (y >> 1) ^ mag01[y & 0x1U];
    }
    uint32_t y = (mt[kN - 1] & kUpperMask) | (mt[0] & kLowerMask);
    mt[kN - 1] = mt[kM - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
    rnd.index = 0;
  }
  uint32_t y = mt[rnd.index++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t python_getrandbits(PythonRandom& rnd, int k) {
  check(k >= 0 && k <= 64, "python_getrandbits: k must be in [0, 64]");
  if (k == 0) return 0;
  if (k <= 32) return python_random_u32(rnd) >> (32 - k);
  // Words from the least significant up; the last one keeps its top bits.
  uint64_t low = python_random_u32(rnd);
  uint64_t high = python_random_u32(rnd) >> (64 - k);
  return low | (high << 32);
}

double python_random(PythonRandom& rnd) {
  uint32_t a = python_random_u32(rnd) >> 5;
  uint32_t b = python_random_u32(rnd) >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint64_t python_randbelow(PythonRandom& rnd, uint64_t n) {
  if (n == 0) return 0;
  int k = std::bit_width(n);  // n.bit_length(), not (n - 1)'s: n can be 1
  uint64_t r = python_getrandbits(rnd, k);
  while (r >= n) r = python_getrandbits(rnd, k);
  return r;
}

void python_shuffle_indices(PythonRandom& rnd, std::vector<size_t>& x) { python_shuffle(rnd, x); }

std::vector<size_t> python_sample_indices(PythonRandom& rnd, size_t n, size_t k) {
  check(k <= n, "sample of " + std::to_string(k) + " from a population of " + std::to_string(n) +
                    ": sample larger than population");
  std::vector<size_t> result(k);
  // Python picks the branch by memory: a pool list of n against a set of k.  Both the float log
  // and the power are computed as Python does, since the branch changes the draws.
  uint64_t setsize = 21;
  if (k > 5) {
    double e = std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0));
    setsize = e >= 32 ? UINT64_MAX : setsize + (uint64_t{1} << (2 * static_cast<int>(e)));
  }
  if (n <= setsize) {
    // Invariant: the non-selected are pool[0, n - i).
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    for (size_t i = 0; i < k; ++i) {
      size_t j = python_randbelow(rnd, n - i);
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];  // move a non-selected item into the vacancy
    }
  } else {
    std::unordered_set<size_t> selected;
    for (size_t i = 0; i < k; ++i) {
      size_t j = python_randbelow(rnd, n);
      while (selected.contains(j)) j = python_randbelow(rnd, n);
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

std::vector<size_t> harness_stratified_sample(PythonRandom& rnd,
                                              const std::vector<std::string>& targets, size_t k) {
  check(!targets.empty(), "stratified few-shot sample from no documents");  // Python: 1/0
  // Targets in first-seen order (the harness's defaultdict), each with its documents.
  std::vector<std::string> order;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < targets.size(); ++i) {
    size_t g = 0;
    while (g < order.size() && order[g] != targets[i]) ++g;
    if (g == order.size()) {
      order.push_back(targets[i]);
      groups.emplace_back();
    }
    groups[g].push_back(i);
  }
  // ratio = len(group) / len(docs) and int(ratio * k), in doubles as Python.
  std::vector<size_t> counts(groups.size());
  size_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    double ratio = static_cast<double>(groups[g].size()) / static_cast<double>(targets.size());
    counts[g] = static_cast<size_t>(ratio * static_cast<double>(k));
    total += counts[g];
  }
  // The rounding shortfall goes one at a time to the first target with the fewest.
  for (; total < k; ++total) {
    size_t smallest = 0;
    for (size_t g = 1; g < counts.size(); ++g) {
      if (counts[g] < counts[smallest]) smallest = g;
    }
    ++counts[smallest];
  }
  std::vector<size_t> samples;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t j : python_sample_indices(rnd, groups[g].size(), counts[g])) {
      samples.push_back(groups[g][j]);
    }
  }
  python_shuffle(rnd, samples);  // so the targets do not come in a fixed order
  return samples;
}

std::vector<size_t> harness_fewshot_indices(PythonRandom& rnd, size_t pool_size, size_t num_fewshot,
                                            const std::vector<std::string>* stratify_by) {
  if (num_fewshot == 0) return {};  // fewshot_context draws nothing then
  if (stratify_by) {
    check(stratify_by->size() == pool_size, "stratified few-shot: one target per document");
    return harness_stratified_sample(rnd, *stratify_by, num_fewshot);
  }
  return python_sample_indices(rnd, pool_size, num_fewshot);
}

std::vector<size_t> harness_fewshot_indices_without_training(
    PythonRandom& rnd, size_t pool_size, size_t num_fewshot,
    const std::function<bool(size_t)>& equals_current,
    const std::vector<std::string>* stratify_by) {
  if (num_fewshot == 0) return {};
  std::vector<size_t> drawn = harness_fewshot_indices(rnd, pool_size, num_fewshot + 1, stratify_by);
  std::vector<size_t> kept;
  for (size_t i : drawn) {
    if (kept.size() < num_fewshot && !equals_current(i)) kept.push_back(i);
  }
  return kept;
}

}  // namespace hibari
