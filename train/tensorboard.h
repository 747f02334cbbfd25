// train/tensorboard.h — a TensorBoard event-file writer for scalar metrics, with no dependencies.
// The file is a TFRecord stream (per record: uint64 LE length, masked CRC32C of the length bytes,
// the data, masked CRC32C of the data) of hand-encoded tensorflow `Event` protobufs: first an
// Event{wall_time, file_version "brain.Event:2"}, then one Event{wall_time, step,
// summary{value{tag, simple_value}}} per scalar. Point `tensorboard --logdir` at the directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace hibari {

namespace tensorboard {

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven. crc32c("123456789") is
// 0xE3069283. `crc` continues a running checksum (pass a previous result to extend it).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }

// The TFRecord mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
constexpr uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// The pieces the writer is made of, exposed so tests can compare them byte for byte with files
// written by TensorFlow. Serialized Event{wall_time, file_version "brain.Event:2"}:
std::string file_version_event(double wall_time);
// Serialized Event{wall_time, step, summary{value{tag, simple_value}}}:
std::string scalar_event(double wall_time, int64_t step, std::string_view tag, float value);
// One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data.
std::string frame_record(std::string_view data);

}  // namespace tensorboard

// Writes `events.out.tfevents.<unix seconds>.<hostname>` in `dir` (created if missing; if that name
// is already taken, ".<pid>" and then ".<pid>.<n>" are appended so an earlier run is never
// overwritten). Scalars are buffered and written out by `flush()` — call it once per step, after
// that step's scalars. `add_scalar` also flushes by itself when the step changes, so a crash loses
// at most the current step. Not thread-safe; one writer per file.
class TensorBoardWriter {
 public:
  // Throws hibari::Error naming the path if the directory or the file cannot be created.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // `value` is stored as a float (TensorBoard's simple_value). Throws hibari::Error on a write
  // error.
  void add_scalar(const std::string& tag, double value, int64_t step);
  // Hands everything written so far to the operating system (fflush). Throws on a write error.
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& bytes);

  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t last_step_ = 0;
  bool unflushed_ = false;
};

}  // namespace hibari
