#include "core/arena.h"

#include <sys/sysinfo.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"

namespace hibari {

namespace {

// RAM plus swap: an allocation larger than this can never be backed, so it is refused up front
// (with overcommit it could otherwise "succeed" and be killed while zero-filling).
size_t memory_limit_bytes() {
  struct sysinfo info {};
  if (sysinfo(&info) != 0) return SIZE_MAX;
  const unsigned __int128 total =
      (unsigned __int128)(info.totalram + info.totalswap) * (info.mem_unit ? info.mem_unit : 1);
  return total > SIZE_MAX ? SIZE_MAX : size_t(total);
}

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB", double(bytes) / double(size_t(1) << 30));
  return text;
}

}  // namespace

void Arena::Free::operator()(void* p) const { std::free(p); }

size_t Arena::plan_floats(size_t count) {
  check(base_ == nullptr, "Arena: plan after commit");
  offsets_.push_back(total_bytes_);
  const size_t bytes = checked_mul(count, sizeof(float), "Arena");
  const size_t padded = checked_add(bytes, alignment - 1, "Arena") / alignment * alignment;
  total_bytes_ = checked_add(total_bytes_, padded, "Arena");
  return offsets_.size() - 1;
}

void Arena::commit(std::string_view file, std::string_view what) {
  check(base_ == nullptr, "Arena: committed twice");
  const size_t bytes = total_bytes_ == 0 ? alignment : total_bytes_;
  const size_t limit = memory_limit_bytes();
  void* p = bytes > limit ? nullptr : std::aligned_alloc(alignment, bytes);
  if (p == nullptr) {
    std::string problem = "out of memory: " + std::string(what) + " need " + std::to_string(bytes) +
                          " bytes (" + gib(bytes) + ")";
    if (limit != SIZE_MAX) problem += "; this machine has " + gib(limit) + " of RAM and swap";
    if (file.empty()) fail(problem);
    fail_file(file, problem);
  }
  std::memset(p, 0, bytes);
  base_.reset(p);
}

float* Arena::floats(size_t slot) const {
  check(base_ != nullptr && slot < offsets_.size(), "Arena: slot not committed");
  return reinterpret_cast<float*>(static_cast<char*>(base_.get()) + offsets_[slot]);
}

}  // namespace hibari
