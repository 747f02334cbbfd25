// core/rng.h — a counter-based random number generator (Philox4x32-10, Salmon et al. 2011).
// The n-th number of stream s under seed k is a pure function of (k, s, n), so a tensor initialized
// by any number of threads, in any order, gets the same values.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace hibari {

inline std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> ctr,
                                          std::array<uint32_t, 2> key) {
  constexpr uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;  // Philox multipliers
  constexpr uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;  // Weyl key increments
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(m0) * ctr[0];
    uint64_t p1 = uint64_t(m1) * ctr[2];
    ctr = {uint32_t(p1 >> 32) ^ ctr[1] ^ key[0], uint32_t(p1), uint32_t(p0 >> 32) ^ ctr[3] ^ key[1],
           uint32_t(p0)};
    key[0] += w0;
    key[1] += w1;
  }
  return ctr;
}

// Uniform in (0, 1]: never 0, so log() is safe.
inline double uniform_open0(uint32_t bits) { return (double(bits) + 1.0) * (1.0 / 4294967296.0); }

// The n-th standard normal of stream `stream` under `seed` (Box-Muller on one Philox block).
inline double random_normal(uint64_t seed, uint32_t stream, uint64_t n) {
  auto r = philox4x32({uint32_t(n), uint32_t(n >> 32), stream, 0x6e6f726du},
                      {uint32_t(seed), uint32_t(seed >> 32)});
  double u1 = uniform_open0(r[0]);
  double u2 = uniform_open0(r[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// The n-th uniform integer in [0, bound) of a stream (bound < 2^32; bias < 2^-32, negligible).
inline uint32_t random_below(uint64_t seed, uint32_t stream, uint64_t n, uint32_t bound) {
  auto r = philox4x32({uint32_t(n), uint32_t(n >> 32), stream, 0x696e7420u},
                      {uint32_t(seed), uint32_t(seed >> 32)});
  uint64_t wide = (uint64_t(r[0]) << 32) | r[1];
  return uint32_t((static_cast<unsigned __int128>(wide) * bound) >> 64);
}

// Uniform in [0, 1), for sampling.
inline double random_uniform(uint64_t seed, uint32_t stream, uint64_t n) {
  auto r = philox4x32({uint32_t(n), uint32_t(n >> 32), stream, 0x756e6966u},
                      {uint32_t(seed), uint32_t(seed >> 32)});
  return double((uint64_t(r[0]) << 21) ^ r[1]) * 0x1.0p-53 * 1.0;
}

}  // namespace hibari
