// core/arena.h — memory planned once. A model lists every buffer it needs (plan), the arena makes
// one aligned allocation (commit), and the planned offsets become pointers. Nothing is allocated
// after commit, so the steady-state training step never touches the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace hibari {

class Arena {
 public:
  static constexpr size_t alignment = 64;  // one cache line; also the widest SIMD register

  // Reserve `count` floats; returns a slot index, resolved to a pointer by `floats` after commit.
  // A total that would not fit in size_t is an Error (never a wrapped, too-small allocation).
  size_t plan_floats(size_t count);
  // Allocates everything planned (zero-filled). Planning after commit is an error.  Out of memory
  // is an Error "file: out of memory: <what> need N bytes (...)" (no prefix when file is empty):
  // the caller names the file whose sizes asked for it.
  void commit(std::string_view file = {}, std::string_view what = "the planned buffers");
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
