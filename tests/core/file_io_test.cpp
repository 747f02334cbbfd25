// core/file_io: complete writes, atomic files and directories (a failure leaves the old contents
// and no temp file), read-only mappings, and errors that name the path and carry errno's text.
#include "core/file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

// Everything in `dir` whose name contains ".tmp.": what a failed atomic write must not leave.
std::vector<std::string> temps_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) out.push_back(name);
  }
  return out;
}

using test::error_of;

TEST(FileIo, WriteFileAtomicCreatesAndReplaces) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("a.txt");
  write_file_atomic(path, "first");
  EXPECT_EQ(test::read_file(path), "first");
  write_file_atomic(path, "second, longer");
  EXPECT_EQ(test::read_file(path), "second, longer");
  write_file_atomic(path, "");
  EXPECT_EQ(test::read_file(path), "");
  EXPECT_TRUE(temps_in(dir.path).empty());
}

TEST(FileIo, AtomicFileWithoutCommitLeavesOldFileAndNoTemp) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("a.bin");
  write_file_atomic(path, "old contents");
  {
    AtomicFile f(path);
    f.write("new", 3);
    EXPECT_FALSE(temps_in(dir.path).empty());
  }  // an exception on the way would end here
  EXPECT_EQ(test::read_file(path), "old contents");
  EXPECT_TRUE(temps_in(dir.path).empty());
}

// A real write failure: the file size limit makes write(2) fail with EFBIG half way through.
TEST(FileIo, FailedAtomicWriteLeavesOldFileAndNoTemp) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("a.bin");
  write_file_atomic(path, "old contents");

  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a killed process
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(1 << 20, 'x');
  const std::string msg = error_of([&] { write_file_atomic(path, big); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(msg.find("a.bin.tmp."), std::string::npos) << msg;
  EXPECT_NE(msg.find("write failed: File too large"), std::string::npos) << msg;
  EXPECT_EQ(test::read_file(path), "old contents");
  EXPECT_TRUE(temps_in(dir.path).empty());
}

TEST(FileIo, FailedRenameLeavesNoTemp) {
  test::ScratchDir dir("file_io");
  const fs::path target = dir.path / "busy";
  fs::create_directories(target / "child");  // rename(2) cannot replace a non-empty directory
  const std::string msg = error_of([&] { write_file_atomic(target.string(), "x"); });
  EXPECT_EQ(msg.rfind(target.string() + ": cannot rename", 0), 0u) << msg;
  EXPECT_TRUE(fs::is_directory(target / "child"));
  EXPECT_TRUE(temps_in(dir.path).empty());
}

TEST(FileIo, CreateInMissingDirectoryNamesPathAndErrno) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("no/such/dir/a.bin");
  const std::string msg = error_of([&] { write_file_atomic(path, "x"); });
  EXPECT_EQ(msg.rfind(path + ": cannot create", 0), 0u) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST(FileIo, WriteAllReportsThePath) {
  const std::string msg = error_of([] { write_all(-1, "x", 1, "/some/file"); });
  EXPECT_EQ(msg, "/some/file: write failed: Bad file descriptor");
}

TEST(FileIo, WriteAllWritesEverything) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("w.bin");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 131);
  write_all(fd, data.data(), data.size(), path);
  fsync_file(fd, path);
  ::close(fd);
  EXPECT_EQ(test::read_file(path), data);
}

TEST(FileIo, MappedFileViewsTheBytes) {
  test::ScratchDir dir("file_io");
  const std::string path = dir.file("m.bin");
  test::write_file(path, "mapped bytes");
  MappedFile m(path);
  ASSERT_EQ(m.size, 12u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data), m.size), "mapped bytes");
  const unsigned char* before = m.data;
  MappedFile moved = std::move(m);
  EXPECT_EQ(moved.data, before);  // moving keeps the mapping where it is
  EXPECT_EQ(m.data, nullptr);

  test::write_file(dir.file("empty"), "");
  MappedFile empty(dir.file("empty"));
  EXPECT_EQ(empty.data, nullptr);
  EXPECT_EQ(empty.size, 0u);
}

TEST(FileIo, MappingErrorsNameThePath) {
  test::ScratchDir dir("file_io");
  const std::string missing = dir.file("missing.bin");
  EXPECT_EQ(error_of([&] { MappedFile m(missing); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(error_of([&] { MappedFile m(dir.path.string()); }),
            dir.path.string() + ": not a regular file");
}

TEST(FileIo, AtomicDirAppearsOnlyOnCommit) {
  test::ScratchDir dir("file_io");
  const std::string out = dir.file("model");
  {
    AtomicDir d(out);
    write_file_atomic(d.file("a.json"), "{}");
    EXPECT_FALSE(fs::exists(out));
    d.commit();
  }
  EXPECT_EQ(test::read_file(fs::path(out) / "a.json"), "{}");
  EXPECT_TRUE(temps_in(dir.path).empty());

  // Not committed: nothing at the target, no temp directory.
  const std::string other = dir.file("other");
  {
    AtomicDir d(other);
    write_file_atomic(d.file("a.json"), "{}");
  }
  EXPECT_FALSE(fs::exists(other));
  EXPECT_TRUE(temps_in(dir.path).empty());

  // An empty directory is replaced; a non-empty one is refused before anything is written.
  fs::create_directories(other);
  {
    AtomicDir d(other);
    write_file_atomic(d.file("b"), "b");
    d.commit();
  }
  EXPECT_EQ(test::read_file(fs::path(other) / "b"), "b");
  const std::string msg = error_of([&] { AtomicDir d(out); });
  EXPECT_EQ(msg.rfind(out + ": already exists", 0), 0u) << msg;
  EXPECT_EQ(test::read_file(fs::path(out) / "a.json"), "{}");
  EXPECT_TRUE(temps_in(dir.path).empty());
}

TEST(FileIo, ParentDir) {
  EXPECT_EQ(parent_dir("a/b/c.bin"), "a/b");
  EXPECT_EQ(parent_dir("c.bin"), ".");
  EXPECT_EQ(parent_dir("/c.bin"), "/");
}

}  // namespace
}  // namespace hibari
