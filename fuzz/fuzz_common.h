// fuzz/fuzz_common.h — what every libFuzzer target of fuzz/ shares.
//
// The contract each target checks: a parser given any bytes either returns a value or throws
// hibari::Error.  Only Error is caught here; another exception escapes LLVMFuzzerTestOneInput and
// aborts, which libFuzzer reports as a crash, as it does an ASan or UBSan report.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hibari::fuzz {

// A folder of this process in /dev/shm (memory, not disk: a target rewrites its files at every
// input), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string d = "/dev/shm/hibari-fuzz-" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all("/dev/shm/hibari-fuzz-" + std::to_string(getpid()), ec);
    });
    return d;
  }();
  return dir;
}

// Writes bytes to `path` whole (the parsers under test read files by name).
inline void write_bytes(const std::string& path, const void* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// scratch_dir()/name holding the bytes; returns its path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  write_bytes(path, data, size);
  return path;
}

// Runs f; a hibari::Error is the parser refusing the input, which is fine.
template <class F>
void value_or_error(F&& f) {
  try {
    f();
  } catch (const hibari::Error&) {
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace hibari::fuzz
