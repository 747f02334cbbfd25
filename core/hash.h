// core/hash.h — XXH64 (libxxhash), the checksum of checkpoints and of the data a batch holds.
// Fast (several GB/s), stable across machines and versions, and what other tools can verify.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace hibari {

inline uint64_t xxhash64(const void* data, size_t size, uint64_t seed = 0) {
  return XXH64(data, size, seed);
}

// The hash of a stream of pieces: the same as xxhash64 of the pieces concatenated.
struct Xxhash64Stream {
  explicit Xxhash64Stream(uint64_t seed = 0) : state(XXH64_createState(), XXH64_freeState) {
    XXH64_reset(state.get(), seed);
  }
  void update(const void* data, size_t size) { XXH64_update(state.get(), data, size); }
  uint64_t digest() const { return XXH64_digest(state.get()); }
  std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> state;
};

}  // namespace hibari
