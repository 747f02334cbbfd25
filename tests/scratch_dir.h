// tests/scratch_dir.h — a fresh directory for one test's files, and whole-file read and write:
// shared by the tests that write files (datasets, checkpoints, reference fixtures).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

namespace hibari::test {

// A fresh, empty directory `<root>/test_tmp/<name>/<suite>.<test>.<pid>`, where root is the build
// directory (HIBARI_BINARY_DIR) or else the system's temporary directory; removed, with all it
// holds, when the ScratchDir goes.  The test and process in the name keep it apart from every other
// test's: ctest runs test cases as parallel processes.
struct ScratchDir {
  std::filesystem::path path;

  explicit ScratchDir(const std::string& name) {
#ifdef HIBARI_BINARY_DIR
    const std::filesystem::path root = HIBARI_BINARY_DIR;
#else
    const std::filesystem::path root = std::filesystem::temp_directory_path();
#endif
    std::string test = "no_test";
    if (const auto* info = testing::UnitTest::GetInstance()->current_test_info()) {
      test = std::string(info->test_suite_name()) + "." + info->name();
      for (char& c : test) {
        if (c == '/') c = '_';  // parameterized names: Suite/Fixture.Test/0
      }
    }
    path = root / "test_tmp" / name / (test + "." + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // The path of `name` inside the directory, as a string.
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A file's bytes ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces (or creates) a file with `bytes`; fails the test when the write fails.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

}  // namespace hibari::test
