// core/file_io.h — the POSIX file plumbing that every file format of hibari shares: complete
// writes, fsync, atomic replacement (temp + fsync + rename + directory fsync), read-only mappings,
// and errors that carry errno's text and the path.  Formats (checkpoint/, data/, train/) build on
// these and never call write(2), fsync(2) or mmap(2) themselves.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/hash.h"

namespace hibari {

// strerror(err) as a string.
std::string errno_text(int err);
// Throws Error "path: what: <errno text>".
[[noreturn]] void fail_errno(std::string_view path, std::string_view what, int err);

// Writes all n bytes to fd, retrying short writes and EINTR; `path` names fd in the error.
void write_all(int fd, const void* data, size_t n, const std::string& path);
// fsync(fd), or an Error naming `path`.
void fsync_file(int fd, const std::string& path);
// Makes entries created or renamed in `dir` durable.  Best effort: some filesystems refuse fsync on
// a directory, and by then the data itself is safe.
void fsync_dir(const std::string& dir) noexcept;
// The directory holding `path` ("." for a bare name).
std::string parent_dir(const std::string& path);

// A whole file mapped read-only (mmap, MAP_SHARED).  An empty file gives data == nullptr, size 0
// (mmap refuses length 0).  The raw pair is for owners that keep it in their own fields; prefer
// MappedFile.
const unsigned char* map_readonly(const std::string& path, size_t* size);
void unmap_readonly(const unsigned char* data, size_t size) noexcept;

struct MappedFile {
  std::string path;
  const unsigned char* data = nullptr;
  size_t size = 0;

  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  // Moving keeps the mapping where it is, so pointers into it stay valid.
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
};

// A file that appears at `path` complete or not at all: bytes go to `path.tmp.<pid>`; commit()
// fsyncs, renames it over `path` and fsyncs the directory.  Destroyed without commit() (an error
// on the way) it removes the temp file and `path` keeps its old contents.
struct AtomicFile {
  std::string path, tmp_path;
  int fd = -1;
  bool committed = false;
  Xxhash64Stream* hash =
      nullptr;  // when set, every byte written is hashed too (checkpoint checksums)

  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();
};

// `bytes` as the whole contents of `path`, through an AtomicFile.
void write_file_atomic(const std::string& path, std::string_view bytes);

// A directory that appears at `path` complete or not at all: fill `tmp_path` (created empty, a
// sibling `path.tmp.<pid>`), then commit() fsyncs it and renames it to `path`, which must not exist
// or be an empty directory (a non-empty one is an error: hibari does not delete what it did not
// write).  Missing parent directories are created.  Destroyed without commit() it removes
// `tmp_path` with everything in it.
struct AtomicDir {
  std::string path, tmp_path;
  bool committed = false;

  explicit AtomicDir(std::string path);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  // tmp_path + "/" + name.
  std::string file(const std::string& name) const;
  void commit();
};

}  // namespace hibari
