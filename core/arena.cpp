#include "core/arena.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace hibari {

void Arena::Free::operator()(void* p) const { std::free(p); }

size_t Arena::plan_floats(size_t count) {
  check(base_ == nullptr, "Arena: plan after commit");
  offsets_.push_back(total_bytes_);
  size_t bytes = count * sizeof(float);
  total_bytes_ += (bytes + alignment - 1) / alignment * alignment;
  return offsets_.size() - 1;
}

void Arena::commit() {
  check(base_ == nullptr, "Arena: committed twice");
  size_t bytes = total_bytes_ == 0 ? alignment : total_bytes_;
  void* p = std::aligned_alloc(alignment, bytes);
  if (p == nullptr) fail("out of memory: cannot allocate " + std::to_string(bytes >> 20) + " MiB");
  std::memset(p, 0, bytes);
  base_.reset(p);
}

float* Arena::floats(size_t slot) const {
  check(base_ != nullptr && slot < offsets_.size(), "Arena: slot not committed");
  return reinterpret_cast<float*>(static_cast<char*>(base_.get()) + offsets_[slot]);
}

}  // namespace hibari
