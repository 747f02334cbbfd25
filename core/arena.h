// core/arena.h — memory planned once. A model lists every buffer it needs (plan), the arena makes
// one aligned allocation (commit), and the planned offsets become pointers. Nothing is allocated
// after commit, so the steady-state training step never touches the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace hibari {

class Arena {
 public:
  static constexpr size_t alignment = 64;  // one cache line; also the widest SIMD register

  // Reserve `count` floats; returns a slot index, resolved to a pointer by `floats` after commit.
  size_t plan_floats(size_t count);
  // Allocates everything planned (zero-filled). Planning after commit is an error.
  void commit();
  float* floats(size_t slot) const;
  size_t bytes() const { return total_bytes_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::vector<size_t> offsets_;  // in bytes
  size_t total_bytes_ = 0;
  std::unique_ptr<void, Free> base_;
};

}  // namespace hibari
