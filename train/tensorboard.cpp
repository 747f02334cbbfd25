// train/tensorboard.cpp — TFRecord framing, CRC32C and the hand-encoded Event protobuf.
#include "train/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/file_io.h"

namespace hibari {

namespace tensorboard {

namespace {

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = make_table();

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace tensorboard

namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(uint8_t(v)));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (uint64_t(field) << 3) | wire_type);
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}

void put_double(std::string& out, uint32_t field, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}

void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, uint64_t(v));  // negative int64 is the 10-byte two's complement varint
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string name(buf);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name;
}

// Event field numbers (tensorflow/core/util/event.proto).
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5;
// Summary.value = 1; Summary.Value.tag = 1, Summary.Value.simple_value = 2.
constexpr uint32_t kSummaryValue = 1, kValueTag = 1, kValueSimpleValue = 2;

}  // namespace

namespace tensorboard {

std::string file_version_event(double wall_time) {
  std::string event;
  put_double(event, kEventWallTime, wall_time);
  put_bytes(event, kEventFileVersion, "brain.Event:2");
  return event;
}

std::string scalar_event(double wall_time, int64_t step, std::string_view tag, float value) {
  std::string v;
  put_bytes(v, kValueTag, tag);
  put_float(v, kValueSimpleValue, value);
  std::string summary;
  put_bytes(summary, kSummaryValue, v);
  std::string event;
  put_double(event, kEventWallTime, wall_time);
  put_int64(event, kEventStep, step);
  put_bytes(event, kEventSummary, summary);
  return event;
}

std::string frame_record(std::string_view data) {
  std::string record;
  record.reserve(data.size() + 16);
  put_le(record, data.size(), 8);
  put_le(record, mask_crc(crc32c(record.data(), 8)), 4);
  record.append(data);
  put_le(record, mask_crc(crc32c(data)), 4);
  return record;
}

}  // namespace tensorboard

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  const std::string d = dir.empty() ? std::string(".") : dir;
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec) fail_file(d, "cannot create the TensorBoard log directory: " + ec.message());

  const std::string base = d + (d.back() == '/' ? "" : "/") + "events.out.tfevents." +
                           std::to_string(int64_t(std::time(nullptr))) + "." + host_name();
  // O_EXCL: never overwrite an earlier run's file that happens to share the second and host.
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    path_ = base;
    if (attempt > 0) path_ += "." + std::to_string(getpid());
    if (attempt > 1) path_ += "." + std::to_string(attempt - 1);
    fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    fail_errno(path_, "cannot create the event file", errno);
  }
  file_ = fdopen(fd, "wb");
  if (file_ == nullptr) {
    const int err = errno;
    close(fd);
    fail_errno(path_, "cannot open the event file", err);
  }

  try {
    write(tensorboard::frame_record(tensorboard::file_version_event(now_seconds())));
    unflushed_ = true;
    flush();
  } catch (...) {
    std::fclose(file_);  // no destructor runs for a constructor that throws
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);  // flushes; a destructor has no one to report to
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  if (unflushed_ && step != last_step_) flush();  // the previous step is complete

  write(
      tensorboard::frame_record(tensorboard::scalar_event(now_seconds(), step, tag, float(value))));

  last_step_ = step;
  unflushed_ = true;
}

void TensorBoardWriter::flush() {
  if (!unflushed_) return;
  if (std::fflush(file_) != 0) {
    fail_errno(path_, "cannot write the event file", errno);
  }
  unflushed_ = false;
}

void TensorBoardWriter::write(const std::string& bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    fail_errno(path_, "cannot write the event file", errno);
  }
}

}  // namespace hibari
