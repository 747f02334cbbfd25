#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/file_io.h"

namespace hibari {

// The format is little-endian and hibari copies integers to and from it with memcpy.
static_assert(std::endian::native == std::endian::little, "MMIDIDX support assumes little-endian");

namespace {

constexpr unsigned char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr size_t kHeaderSize = 34;  // magic 9 + version 8 + dtype code 1 + S 8 + D 8
constexpr size_t kBufferBytes = size_t(1) << 20;

bool known_dtype(uint8_t code) { return (code >= 1 && code <= 5) || code == 8; }

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Appends ids as T, or throws (leaving `out` as it was) when one does not fit: numpy would wrap
// silently, which would corrupt the data.
template <typename T>
void encode(std::vector<unsigned char>& out, const int32_t* ids, size_t n, TokenDtype dtype,
            const std::string& path) {
  const size_t old = out.size();
  out.resize(old + n * sizeof(T));
  unsigned char* dst = out.data() + old;
  for (size_t k = 0; k < n; ++k) {
    const int64_t id = ids[k];
    if (id < int64_t(std::numeric_limits<T>::min()) ||
        id > int64_t(std::numeric_limits<T>::max())) {
      out.resize(old);
      fail_file(path, "token id " + std::to_string(id) + " does not fit dtype " +
                          token_dtype_name(dtype));
    }
    const T v = T(id);
    std::memcpy(dst + k * sizeof(T), &v, sizeof(T));
  }
}

template <typename T>
void decode(const unsigned char* src, size_t n, int32_t* out, const std::string& path) {
  for (size_t k = 0; k < n; ++k) {
    const T v = load<T>(src + k * sizeof(T));
    if constexpr (sizeof(T) > sizeof(int32_t)) {
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        fail_file(path, "token id " + std::to_string(v) + " does not fit int32");
    }
    out[k] = int32_t(v);
  }
}

}  // namespace

size_t token_dtype_size(TokenDtype dtype) {
  switch (dtype) {
    case TokenDtype::u8:
    case TokenDtype::i8:
      return 1;
    case TokenDtype::i16:
    case TokenDtype::u16:
      return 2;
    case TokenDtype::i32:
      return 4;
    case TokenDtype::i64:
      return 8;
  }
  fail("token_dtype_size: bad dtype");
}

const char* token_dtype_name(TokenDtype dtype) {
  switch (dtype) {
    case TokenDtype::u8:
      return "uint8";
    case TokenDtype::i8:
      return "int8";
    case TokenDtype::i16:
      return "int16";
    case TokenDtype::i32:
      return "int32";
    case TokenDtype::i64:
      return "int64";
    case TokenDtype::u16:
      return "uint16";
  }
  return "?";
}

TokenDtype token_dtype_for_vocab(size_t vocab_size) {
  // Megatron's threshold, not 65536: files must match what preprocess_data.py writes.
  return vocab_size < 65500 ? TokenDtype::u16 : TokenDtype::i32;
}

// ---- writer ----

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, TokenDtype dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  // The output prefix may name a folder not made yet (out/corpus): make it, or name it.
  const std::filesystem::path folder = std::filesystem::path(prefix_).parent_path();
  std::error_code ec;
  if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
    std::filesystem::create_directories(folder, ec);
    if (ec) fail_file(folder.string(), "cannot create the output folder: " + ec.message());
  }
  const std::string tmp = prefix_ + ".bin.tmp";
  bin_fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (bin_fd_ < 0) fail_file(tmp, "cannot create: " + errno_text(errno));
  buffer_.reserve(kBufferBytes + 4096);
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (!finished_) remove_temps();
}

void IndexedDatasetWriter::remove_temps() noexcept {
  if (bin_fd_ >= 0) ::close(bin_fd_);
  bin_fd_ = -1;
  ::unlink((prefix_ + ".bin.tmp").c_str());
  ::unlink((prefix_ + ".idx.tmp").c_str());
}

void IndexedDatasetWriter::flush_bin() {
  write_all(bin_fd_, buffer_.data(), buffer_.size(), prefix_ + ".bin.tmp");
  buffer_.clear();
}

void IndexedDatasetWriter::add_sequence(const int32_t* ids, size_t n) {
  const std::string path = prefix_ + ".bin.tmp";
  if (finished_) fail_file(path, "add_sequence after finish()");
  // The .idx stores lengths as int32.
  if (n > size_t(std::numeric_limits<int32_t>::max()))
    fail_file(path, "sequence of " + std::to_string(n) + " tokens exceeds the int32 length field");
  switch (dtype_) {
    case TokenDtype::u8:
      encode<uint8_t>(buffer_, ids, n, dtype_, path);
      break;
    case TokenDtype::i8:
      encode<int8_t>(buffer_, ids, n, dtype_, path);
      break;
    case TokenDtype::i16:
      encode<int16_t>(buffer_, ids, n, dtype_, path);
      break;
    case TokenDtype::i32:
      encode<int32_t>(buffer_, ids, n, dtype_, path);
      break;
    case TokenDtype::i64:
      encode<int64_t>(buffer_, ids, n, dtype_, path);
      break;
    case TokenDtype::u16:
      encode<uint16_t>(buffer_, ids, n, dtype_, path);
      break;
  }
  lengths_.push_back(int32_t(n));
  if (buffer_.size() >= kBufferBytes) flush_bin();
}

void IndexedDatasetWriter::end_document() {
  if (finished_) fail_file(prefix_ + ".idx.tmp", "end_document after finish()");
  document_indices_.push_back(int64_t(lengths_.size()));
}

void IndexedDatasetWriter::finish() {
  const std::string bin_tmp = prefix_ + ".bin.tmp", idx_tmp = prefix_ + ".idx.tmp";
  const std::string bin_path = prefix_ + ".bin", idx_path = prefix_ + ".idx";
  if (finished_) fail_file(idx_path, "finish() called twice");
  // Megatron's reader asserts document_indices[-1] == sequence count; do not write what it rejects.
  if (size_t(document_indices_.back()) != lengths_.size())
    fail_file(idx_path, std::to_string(lengths_.size() - size_t(document_indices_.back())) +
                            " sequence(s) added after the last end_document()");

  flush_bin();
  // Without fsync a crash after the rename can leave a renamed but empty file.
  fsync_file(bin_fd_, bin_tmp);
  const int bin_fd = bin_fd_;
  bin_fd_ = -1;
  if (::close(bin_fd) != 0) fail_file(bin_tmp, "close failed: " + errno_text(errno));

  const int fd = ::open(idx_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_file(idx_tmp, "cannot create: " + errno_text(errno));
  try {
    // The header, field by field as _IndexWriter: struct.pack("<Q", 1) etc.
    unsigned char header[kHeaderSize];
    const uint64_t version = 1, seq_count = lengths_.size(), doc_count = document_indices_.size();
    const uint8_t code = uint8_t(dtype_);
    std::memcpy(header, kMagic, 9);
    std::memcpy(header + 9, &version, 8);
    std::memcpy(header + 17, &code, 1);
    std::memcpy(header + 18, &seq_count, 8);
    std::memcpy(header + 26, &doc_count, 8);
    write_all(fd, header, kHeaderSize, idx_tmp);
    write_all(fd, lengths_.data(), lengths_.size() * sizeof(int32_t), idx_tmp);
    // Pointers are computed in chunks rather than held: 8 bytes per sequence adds up.
    std::vector<int64_t> pointers;
    pointers.reserve(std::min(lengths_.size(), kBufferBytes / 8));
    int64_t ptr = 0;
    const int64_t item = int64_t(token_dtype_size(dtype_));
    for (int32_t len : lengths_) {
      pointers.push_back(ptr);
      ptr += int64_t(len) * item;
      if (pointers.size() == kBufferBytes / 8) {
        write_all(fd, pointers.data(), pointers.size() * 8, idx_tmp);
        pointers.clear();
      }
    }
    write_all(fd, pointers.data(), pointers.size() * 8, idx_tmp);
    write_all(fd, document_indices_.data(), document_indices_.size() * 8, idx_tmp);
    fsync_file(fd, idx_tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail_file(idx_tmp, "close failed: " + errno_text(errno));

  // A reader takes the .idx as the sign that the pair is complete, so an old .idx goes first and
  // the new one comes last: no moment shows a new .bin beside an old .idx.
  if (::unlink(idx_path.c_str()) != 0 && errno != ENOENT)
    fail_file(idx_path, "cannot remove the old file: " + errno_text(errno));
  if (std::rename(bin_tmp.c_str(), bin_path.c_str()) != 0)
    fail_file(bin_path, "cannot rename " + bin_tmp + " over it: " + errno_text(errno));
  if (std::rename(idx_tmp.c_str(), idx_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(bin_path.c_str());  // a .bin without its .idx is useless
    fail_file(idx_path, "cannot rename " + idx_tmp + " over it: " + errno_text(err));
  }
  finished_ = true;

  fsync_dir(parent_dir(bin_path));  // make the renames themselves durable
}

// ---- reader ----

IndexedDataset::~IndexedDataset() {
  unmap_readonly(idx_, idx_size_);
  unmap_readonly(bin_, bin_size_);
}

IndexedDataset::IndexedDataset(IndexedDataset&& other) noexcept { *this = std::move(other); }

IndexedDataset& IndexedDataset::operator=(IndexedDataset&& other) noexcept {
  if (this == &other) return *this;
  unmap_readonly(idx_, idx_size_);
  unmap_readonly(bin_, bin_size_);
  idx_path_ = std::move(other.idx_path_);
  bin_path_ = std::move(other.bin_path_);
  idx_ = std::exchange(other.idx_, nullptr);
  idx_size_ = std::exchange(other.idx_size_, 0);
  bin_ = std::exchange(other.bin_, nullptr);
  bin_size_ = std::exchange(other.bin_size_, 0);
  dtype_ = other.dtype_;
  sequence_count_ = std::exchange(other.sequence_count_, 0);
  document_index_count_ = std::exchange(other.document_index_count_, 0);
  token_count_ = std::exchange(other.token_count_, 0);
  has_modes_ = std::exchange(other.has_modes_, false);
  return *this;
}

IndexedDataset IndexedDataset::open(const std::string& prefix) {
  IndexedDataset ds;  // owns each mapping as soon as it exists, so a throw below unmaps it
  ds.idx_path_ = prefix + ".idx";
  ds.bin_path_ = prefix + ".bin";
  const std::string& idx_path = ds.idx_path_;
  ds.idx_ = map_readonly(idx_path, &ds.idx_size_);
  const unsigned char* idx = ds.idx_;
  const size_t size = ds.idx_size_;

  // Header.
  if (size < 9 ? (size == 0 || std::memcmp(idx, kMagic, size) != 0)
               : std::memcmp(idx, kMagic, 9) != 0)
    fail_file(idx_path, "not a Megatron indexed dataset index (no MMIDIDX magic)");
  if (size < kHeaderSize)
    fail_file(idx_path, "truncated: " + std::to_string(size) + " bytes, shorter than the " +
                            std::to_string(kHeaderSize) + "-byte header");
  const uint64_t version = load<uint64_t>(idx + 9);
  if (version != 1)
    fail_file(idx_path, "version " + std::to_string(version) + ", only version 1 exists");
  const uint8_t code = idx[17];
  if (code == 6 || code == 7)
    fail_file(idx_path, std::string("dtype ") + (code == 6 ? "float64" : "float32") + " (code " +
                            std::to_string(code) + ") cannot hold token ids");
  if (!known_dtype(code)) fail_file(idx_path, "unknown dtype code " + std::to_string(code));
  ds.dtype_ = TokenDtype(code);
  const uint64_t seq_count = load<uint64_t>(idx + 18), doc_count = load<uint64_t>(idx + 26);

  // Sizes, without overflow: S and D come from the file and may be anything.
  const size_t body = size - kHeaderSize;
  const std::string counts = std::to_string(seq_count) + " sequences and " +
                             std::to_string(doc_count) + " document indices";
  if (seq_count > body / 12 || doc_count > (body - seq_count * 12) / 8)
    fail_file(idx_path,
              "truncated: " + std::to_string(size) + " bytes cannot hold the header's " + counts);
  const size_t expected = kHeaderSize + seq_count * 12 + doc_count * 8;
  // Multimodal files carry one int8 mode per sequence after the document indices.
  if (size == expected + seq_count && seq_count > 0) {
    ds.has_modes_ = true;
  } else if (size != expected) {
    fail_file(idx_path, std::to_string(size) + " bytes, but the header's " + counts + " need " +
                            std::to_string(expected) + (size < expected ? " (truncated)" : ""));
  }
  ds.sequence_count_ = size_t(seq_count);
  ds.document_index_count_ = size_t(doc_count);

  // Document indices: 0, non-decreasing, ending at S (Megatron asserts the last).
  const unsigned char* docs = idx + kHeaderSize + seq_count * 12;
  if (doc_count == 0) fail_file(idx_path, "no document indices (the list always starts with 0)");
  if (load<int64_t>(docs) != 0)
    fail_file(idx_path,
              "document_indices[0] is " + std::to_string(load<int64_t>(docs)) + ", not 0");
  for (size_t d = 1; d < doc_count; ++d) {
    const int64_t prev = load<int64_t>(docs + (d - 1) * 8), cur = load<int64_t>(docs + d * 8);
    if (cur < prev)
      fail_file(idx_path, "document_indices[" + std::to_string(d) + "] = " + std::to_string(cur) +
                              " is below the previous entry " + std::to_string(prev));
  }
  const int64_t last = load<int64_t>(docs + (doc_count - 1) * 8);
  if (uint64_t(last) != seq_count)
    fail_file(idx_path, "the last document index is " + std::to_string(last) + ", not the " +
                            std::to_string(seq_count) + " sequences");

  // The .bin, then every pointer: sequence i starts where i - 1 ends, as Megatron's writer lays
  // them out, and the last one ends inside the .bin.  After this no read can leave the mapping.
  ds.bin_ = map_readonly(ds.bin_path_, &ds.bin_size_);
  const size_t item = token_dtype_size(ds.dtype_);
  uint64_t end = 0;  // stays <= bin size, so end + len * item cannot overflow
  for (size_t i = 0; i < seq_count; ++i) {
    const int32_t len = load<int32_t>(idx + kHeaderSize + i * 4);
    const int64_t ptr = load<int64_t>(idx + kHeaderSize + seq_count * 4 + i * 8);
    if (len < 0)
      fail_file(idx_path, "sequence " + std::to_string(i) + " has length " + std::to_string(len));
    if (ptr < 0 || uint64_t(ptr) != end)
      fail_file(idx_path, "sequence " + std::to_string(i) + " points at byte " +
                              std::to_string(ptr) + ", but the lengths before it end at byte " +
                              std::to_string(end));
    end += uint64_t(len) * item;
    if (end > ds.bin_size_)
      fail_file(ds.bin_path_, std::to_string(ds.bin_size_) + " bytes, but sequence " +
                                  std::to_string(i) + " of " + idx_path + " ends at byte " +
                                  std::to_string(end) + " (truncated .bin?)");
    ds.token_count_ += size_t(len);
  }
  return ds;
}

size_t IndexedDataset::document_index(size_t d) const {
  if (d >= document_index_count_)
    fail_file(idx_path_, "document index " + std::to_string(d) + " out of range (" +
                             std::to_string(document_index_count_) + " entries)");
  return size_t(load<int64_t>(idx_ + kHeaderSize + sequence_count_ * 12 + d * 8));
}

size_t IndexedDataset::sequence_length(size_t i) const {
  if (i >= sequence_count_)
    fail_file(idx_path_, "sequence " + std::to_string(i) + " out of range (" +
                             std::to_string(sequence_count_) + " sequences)");
  return size_t(load<int32_t>(idx_ + kHeaderSize + i * 4));
}

int64_t IndexedDataset::sequence_pointer(size_t i) const {
  return load<int64_t>(idx_ + kHeaderSize + sequence_count_ * 4 + i * 8);
}

void IndexedDataset::read(size_t i, size_t offset, size_t length, int32_t* out) const {
  const size_t len = sequence_length(i);  // checks i
  if (offset > len || length > len - offset)
    fail_file(bin_path_, "tokens [" + std::to_string(offset) + ", " +
                             std::to_string(offset + length) + ") of sequence " +
                             std::to_string(i) + " out of range (length " + std::to_string(len) +
                             ")");
  if (length == 0) return;  // bin_ may be nullptr for an empty .bin
  const size_t item = token_dtype_size(dtype_);
  const unsigned char* src = bin_ + size_t(sequence_pointer(i)) + offset * item;
  switch (dtype_) {
    case TokenDtype::u8:
      decode<uint8_t>(src, length, out, bin_path_);
      break;
    case TokenDtype::i8:
      decode<int8_t>(src, length, out, bin_path_);
      break;
    case TokenDtype::i16:
      decode<int16_t>(src, length, out, bin_path_);
      break;
    case TokenDtype::i32:
      std::memcpy(out, src, length * 4);
      break;
    case TokenDtype::i64:
      decode<int64_t>(src, length, out, bin_path_);
      break;
    case TokenDtype::u16:
      decode<uint16_t>(src, length, out, bin_path_);
      break;
  }
}

std::vector<int32_t> IndexedDataset::sequence(size_t i) const {
  std::vector<int32_t> tokens(sequence_length(i));
  read(i, 0, tokens.size(), tokens.data());
  return tokens;
}

}  // namespace hibari
