// checkpoint/safetensors.cpp — reader (validate everything, then copy) and atomic writer.
#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"

namespace hibari {

namespace {

using nlohmann::json;

// Real headers are kilobytes to a few megabytes; anything larger is a corrupt length field, and
// believing it would mean allocating whatever the file claims.
constexpr uint64_t kMaxHeaderSize = 100u * 1000u * 1000u;

constexpr StDtype kAllDtypes[] = {StDtype::F32, StDtype::F16, StDtype::BF16, StDtype::F64,
                                  StDtype::I32, StDtype::I64, StDtype::U8};

bool parse_dtype(const std::string& s, StDtype* out) {
  for (StDtype t : kAllDtypes) {
    if (s == st_dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Names and parser messages come from the file; keep error messages to one printable line.
std::string printable(std::string_view s, size_t max_len = 200) {
  std::string out;
  for (char c : s.substr(0, max_len)) {
    out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  }
  if (s.size() > max_len) out += "...";
  return out;
}

std::string single_quoted(std::string_view name) { return "'" + printable(name) + "'"; }

std::string errno_str(int err) { return std::strerror(err); }

// numel and byte size of a shape, or false if either overflows size_t.
bool shape_bytes(const std::vector<int64_t>& shape, size_t elem_size, size_t* bytes) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, uint64_t(d), &n)) return false;
  }
  return !__builtin_mul_overflow(n, elem_size, bytes);
}

// A non-negative JSON integer that fits in uint64 (floats, negatives and strings do not).
bool json_uint(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

SafeTensorInfo parse_entry(const std::string& path, const std::string& name, const json& j,
                           size_t data_size) {
  const std::string what = "tensor " + single_quoted(name);
  if (!j.is_object()) fail_file(path, what + ": header entry is not an object");
  SafeTensorInfo info;
  info.name = name;

  auto dt = j.find("dtype");
  if (dt == j.end()) fail_file(path, what + ": missing \"dtype\"");
  if (!dt->is_string()) fail_file(path, what + ": \"dtype\" is not a string");
  if (!parse_dtype(dt->get_ref<const std::string&>(), &info.dtype)) {
    fail_file(path, what + ": unknown dtype " + single_quoted(dt->get_ref<const std::string&>()));
  }

  auto sh = j.find("shape");
  if (sh == j.end()) fail_file(path, what + ": missing \"shape\"");
  if (!sh->is_array()) fail_file(path, what + ": \"shape\" is not an array");
  for (const json& d : *sh) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) {
      fail_file(path, what + ": negative dimension " + std::to_string(d.get<int64_t>()));
    }
    uint64_t v;
    if (!json_uint(d, &v)) fail_file(path, what + ": \"shape\" holds a non-integer");
    if (v > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail_file(path, what + ": dimension " + std::to_string(v) + " is too large");
    }
    info.shape.push_back(int64_t(v));
  }

  auto off = j.find("data_offsets");
  if (off == j.end()) fail_file(path, what + ": missing \"data_offsets\"");
  uint64_t begin, end;
  if (!off->is_array() || off->size() != 2 || !json_uint((*off)[0], &begin) ||
      !json_uint((*off)[1], &end)) {
    fail_file(path, what + ": \"data_offsets\" is not a pair of non-negative integers");
  }
  if (begin > end) {
    fail_file(path, what + ": data_offsets begin " + std::to_string(begin) + " > end " +
                        std::to_string(end));
  }
  if (end > data_size) {
    fail_file(path, what + ": data_offsets end " + std::to_string(end) +
                        " is beyond the data section (" + std::to_string(data_size) + " bytes)");
  }
  info.begin = size_t(begin);
  info.end = size_t(end);

  size_t bytes;
  if (!shape_bytes(info.shape, st_dtype_size(info.dtype), &bytes)) {
    fail_file(path, what + ": shape " + shape_str(info.shape) + " overflows");
  }
  if (bytes != info.end - info.begin) {
    fail_file(path, what + ": data_offsets span " + std::to_string(info.end - info.begin) +
                        " bytes but " + st_dtype_name(info.dtype) + " " + shape_str(info.shape) +
                        " needs " + std::to_string(bytes));
  }
  return info;
}

// An open file read front to back; the data section goes straight into its final vector, so a
// multi-gigabyte checkpoint is held in memory once.
class InFile {
 public:
  explicit InFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail_file(path_, "cannot open: " + errno_str(errno));
    // A throwing constructor runs no destructor: close by hand on these failures.
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
      int err = errno;
      ::close(fd_);
      fail_file(path_, "cannot stat: " + errno_str(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail_file(path_, "not a regular file");
    }
    size_ = size_t(st.st_size);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  ~InFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  size_t size() const { return size_; }

  void read(void* dst, size_t n) {
    auto* p = static_cast<uint8_t*>(dst);
    while (n > 0) {
      ssize_t got = ::read(fd_, p, n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail_file(path_, "read failed: " + errno_str(errno));
      if (got == 0) fail_file(path_, "file shrank while being read");
      p += got;
      n -= size_t(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  size_t size_ = 0;
};

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in fp32.
    float f = float(mant) * 0x1p-24f;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN with its payload
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the data section has no alignment guarantee
  return v;
}

// fopen/fwrite/fsync/rename with cleanup; every failure removes the temp file.
class TempFile {
 public:
  TempFile(const std::string& path)
      : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail_file(path_, "cannot create " + tmp_ + ": " + errno_str(errno));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }

  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) fail_file(path_, "write failed: " + errno_str(errno));
  }

  void commit() {
    if (std::fflush(f_) != 0) fail_file(path_, "write failed: " + errno_str(errno));
    // Without fsync a crash after the rename can leave a renamed but empty file.
    if (::fsync(::fileno(f_)) != 0) fail_file(path_, "fsync failed: " + errno_str(errno));
    int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) fail_file(path_, "close failed: " + errno_str(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      fail_file(path_, "cannot rename " + tmp_ + " over it: " + errno_str(errno));
    }
    committed_ = true;
    // Make the rename itself durable; best effort, some filesystems refuse fsync on directories.
    std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

}  // namespace

size_t st_dtype_size(StDtype t) {
  switch (t) {
    case StDtype::F64:
    case StDtype::I64:
      return 8;
    case StDtype::F32:
    case StDtype::I32:
      return 4;
    case StDtype::F16:
    case StDtype::BF16:
      return 2;
    case StDtype::U8:
      return 1;
  }
  return 0;
}

const char* st_dtype_name(StDtype t) {
  switch (t) {
    case StDtype::F32:
      return "F32";
    case StDtype::F16:
      return "F16";
    case StDtype::BF16:
      return "BF16";
    case StDtype::F64:
      return "F64";
    case StDtype::I32:
      return "I32";
    case StDtype::I64:
      return "I64";
    case StDtype::U8:
      return "U8";
  }
  return "?";
}

size_t SafeTensorInfo::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

const SafeTensorInfo* SafeTensorsFile::find(const std::string& name) const {
  for (const SafeTensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<float> SafeTensorsFile::read_f32(const std::string& name,
                                             const std::vector<int64_t>& expected_shape) const {
  const SafeTensorInfo* t = find(name);
  if (!t) fail_file(path, "no tensor " + single_quoted(name));
  if (!expected_shape.empty() && t->shape != expected_shape) {
    fail_file(path, "tensor " + single_quoted(name) + " has shape " + shape_str(t->shape) +
                        ", expected " + shape_str(expected_shape));
  }
  const size_t n = t->numel();
  const uint8_t* p = data.data() + t->begin;
  std::vector<float> out(n);
  switch (t->dtype) {
    case StDtype::F32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case StDtype::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(p + 2 * i));
      break;
    case StDtype::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load<uint16_t>(p + 2 * i));
      break;
    case StDtype::F64:
      for (size_t i = 0; i < n; ++i) out[i] = float(load<double>(p + 8 * i));
      break;
    default:
      fail_file(path, "tensor " + single_quoted(name) + " has dtype " + st_dtype_name(t->dtype) +
                          ", expected F32, F16, BF16 or F64");
  }
  return out;
}

std::vector<int64_t> SafeTensorsFile::read_i64(const std::string& name) const {
  const SafeTensorInfo* t = find(name);
  if (!t) fail_file(path, "no tensor " + single_quoted(name));
  const size_t n = t->numel();
  const uint8_t* p = data.data() + t->begin;
  std::vector<int64_t> out(n);
  switch (t->dtype) {
    case StDtype::I64:
      if (n) std::memcpy(out.data(), p, n * 8);
      break;
    case StDtype::I32:
      for (size_t i = 0; i < n; ++i) out[i] = load<int32_t>(p + 4 * i);
      break;
    default:
      fail_file(path, "tensor " + single_quoted(name) + " has dtype " + st_dtype_name(t->dtype) +
                          ", expected I32 or I64");
  }
  return out;
}

SafeTensorsFile safetensors_read(const std::string& path) {
  InFile in(path);
  const size_t file_size = in.size();
  if (file_size < 8) {
    fail_file(path, "too short for a safetensors file (" + std::to_string(file_size) +
                        " bytes, the header size alone takes 8)");
  }
  uint8_t len[8];
  in.read(len, 8);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | len[i];
  if (header_size > kMaxHeaderSize) {
    fail_file(path, "header size " + std::to_string(header_size) +
                        " is absurd (over 100 MB); not a safetensors file?");
  }
  if (header_size > file_size - 8) {
    fail_file(path, "header size " + std::to_string(header_size) + " exceeds the file size (" +
                        std::to_string(file_size) + " bytes); truncated?");
  }
  std::string text(size_t(header_size), '\0');
  in.read(text.data(), text.size());
  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep line/column and cause.
    std::string msg = e.what();
    size_t bracket = msg.find("] ");
    if (bracket != std::string::npos) msg = msg.substr(bracket + 2);
    fail_file(path, "header is not valid JSON: " + printable(msg));
  }
  if (!header.is_object()) fail_file(path, "header is not a JSON object");

  SafeTensorsFile file;
  file.path = path;
  const size_t data_size = file_size - 8 - size_t(header_size);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail_file(path, "\"__metadata__\" is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail_file(path, "metadata " + single_quoted(mk) + " is not a string");
        file.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    file.tensors.push_back(parse_entry(path, key, value, data_size));
  }

  // The tensors must tile the data section: no overlap (two names aliasing bytes) and no holes
  // (bytes nobody owns), as the reference implementation requires.
  std::sort(file.tensors.begin(), file.tensors.end(),
            [](const SafeTensorInfo& a, const SafeTensorInfo& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  size_t cursor = 0;
  const SafeTensorInfo* prev = nullptr;
  for (const SafeTensorInfo& t : file.tensors) {
    if (t.begin < cursor) {
      fail_file(path, "tensor " + single_quoted(t.name) + " overlaps tensor " +
                          single_quoted(prev->name) + " in the data section");
    }
    if (t.begin > cursor) {
      fail_file(path, "hole in the data section: bytes " + std::to_string(cursor) + ".." +
                          std::to_string(t.begin) + " before tensor " + single_quoted(t.name) +
                          " belong to no tensor");
    }
    cursor = t.end;
    prev = &t;
  }
  if (cursor != data_size) {
    fail_file(path, "hole in the data section: bytes " + std::to_string(cursor) + ".." +
                        std::to_string(data_size) + " at the end belong to no tensor");
  }

  file.data.resize(data_size);
  in.read(file.data.data(), data_size);
  return file;
}

void safetensors_write(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Sorted by name: the header order and the data layout, so equal inputs give equal files.
  std::vector<const SafeTensorOut*> sorted;
  for (const SafeTensorOut& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const SafeTensorOut* a, const SafeTensorOut* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<size_t> sizes;
  size_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafeTensorOut& t = *sorted[i];
    const std::string what = "tensor " + single_quoted(t.name);
    if (t.name == "__metadata__") fail_file(path, "a tensor may not be named \"__metadata__\"");
    if (i > 0 && sorted[i - 1]->name == t.name) fail_file(path, "duplicate " + what);
    size_t bytes;
    if (!shape_bytes(t.shape, st_dtype_size(t.dtype), &bytes)) {
      fail_file(path, what + ": invalid shape " + shape_str(t.shape));
    }
    if (bytes && !t.data) fail_file(path, what + ": no data");
    header[t.name] = {{"dtype", st_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception&) {
    fail_file(path, "cannot encode the header (names and metadata must be UTF-8)");
  }
  // Spaces up to a multiple of 8, as the reference writer does, so the data section is aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  TempFile out(path);
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < sorted.size(); ++i) out.write(sorted[i]->data, sizes[i]);
  out.commit();
}

}  // namespace hibari
