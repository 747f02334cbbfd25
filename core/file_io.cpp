// core/file_io.cpp — see file_io.h.
#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace hibari {

std::string errno_text(int err) { return std::strerror(err); }

void fail_errno(std::string_view path, std::string_view what, int err) {
  fail_file(path, std::string(what) + ": " + errno_text(err));
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Linux moves at most 0x7ffff000 bytes per call; ask for no more so the loop is the same
    // everywhere.
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail_errno(path, "write failed", errno);
    if (w == 0) fail_file(path, "write failed: no progress");
    p += w;
    n -= size_t(w);
  }
}

void fsync_file(int fd, const std::string& path) {
  // Without fsync a crash after a rename can leave a renamed but empty file.
  if (::fsync(fd) != 0) fail_errno(path, "fsync failed", errno);
}

void fsync_dir(const std::string& dir) noexcept {
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// ---- mappings ----

const unsigned char* map_readonly(const std::string& path, size_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail_errno(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_file(path, "not a regular file");
  }
  *size = size_t(st.st_size);
  if (*size == 0) {
    ::close(fd);
    return nullptr;
  }
  void* p = ::mmap(nullptr, *size, PROT_READ, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) fail_errno(path, "cannot mmap", err);
  return static_cast<const unsigned char*>(p);
}

void unmap_readonly(const unsigned char* data, size_t size) noexcept {
  if (data) ::munmap(const_cast<unsigned char*>(data), size);
}

MappedFile::MappedFile(const std::string& p) : path(p) { data = map_readonly(path, &size); }

MappedFile::~MappedFile() { unmap_readonly(data, size); }

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this == &other) return *this;
  unmap_readonly(data, size);
  path = std::move(other.path);
  data = std::exchange(other.data, nullptr);
  size = std::exchange(other.size, 0);
  return *this;
}

// ---- atomic files ----

AtomicFile::AtomicFile(std::string p)
    : path(std::move(p)), tmp_path(path + ".tmp." + std::to_string(::getpid())) {
  // 0666 and the umask, as fopen(3) would create it.
  fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail_errno(path, "cannot create " + tmp_path, errno);
}

AtomicFile::~AtomicFile() {
  if (fd >= 0) ::close(fd);
  if (!committed) ::unlink(tmp_path.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd < 0) fail_file(path, "write after commit");
  write_all(fd, data, n, tmp_path);
  if (hash) hash->update(data, n);
}

void AtomicFile::commit() {
  if (fd < 0) fail_file(path, "commit called twice");
  fsync_file(fd, tmp_path);
  const int closing = std::exchange(fd, -1);
  if (::close(closing) != 0) fail_errno(tmp_path, "close failed", errno);
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    fail_errno(path, "cannot rename " + tmp_path + " over it", errno);
  }
  committed = true;
  fsync_dir(parent_dir(path));  // makes the rename itself durable
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

// ---- atomic directories ----

namespace {

// True when `path` is absent or an empty directory: the only targets a directory rename replaces.
bool free_for_dir(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::symlink_status(path, ec);
  if (ec || st.type() == std::filesystem::file_type::not_found) return true;
  if (st.type() != std::filesystem::file_type::directory) return false;
  return std::filesystem::is_empty(path, ec) && !ec;
}

}  // namespace

AtomicDir::AtomicDir(std::string p) : path(std::move(p)) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  tmp_path = path + ".tmp." + std::to_string(::getpid());
  if (!free_for_dir(path)) {
    fail_file(path, "already exists and is not an empty directory; remove it or choose another");
  }
  std::error_code ec;
  std::filesystem::create_directories(parent_dir(path), ec);  // as save_pretrained's makedirs
  std::filesystem::remove_all(tmp_path, ec);  // a leftover of a killed run with our pid
  if (::mkdir(tmp_path.c_str(), 0777) != 0) fail_errno(path, "cannot create " + tmp_path, errno);
}

AtomicDir::~AtomicDir() {
  if (committed) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_path, ec);
}

std::string AtomicDir::file(const std::string& name) const { return tmp_path + "/" + name; }

void AtomicDir::commit() {
  if (committed) fail_file(path, "commit called twice");
  const int dfd = ::open(tmp_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail_errno(tmp_path, "cannot open", errno);
  const bool synced = ::fsync(dfd) == 0;
  const int err = errno;
  ::close(dfd);
  if (!synced && err != EINVAL) fail_errno(tmp_path, "fsync failed", err);
  // rename(2) replaces an empty directory and refuses a non-empty one (ENOTEMPTY / EEXIST).
  if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
    fail_errno(path, "cannot rename " + tmp_path + " to it", errno);
  }
  committed = true;
  fsync_dir(parent_dir(path));
}

}  // namespace hibari
