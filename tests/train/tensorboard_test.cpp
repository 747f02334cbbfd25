// tests/train/tensorboard_test.cpp — the event file read back two ways: by a small C++ reader here
// (framing, both CRCs, protobuf fields) and by tests/reference/read_tfevents.py (pure Python).
#include "train/tensorboard.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;
using tensorboard::crc32c;
using tensorboard::mask_crc;
using test::read_file;

// ---- a minimal reader, independent of the writer's encoding code ----

struct Scalar {
  std::string tag;
  float value = 0;
};

struct Event {
  std::optional<double> wall_time;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<Scalar> scalars;
};

uint64_t load_le(const std::string& b, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(b[pos + i])) << (8 * i);
  return v;
}

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t scalar = 0;  // varint, fixed64 or fixed32 bits
  std::string bytes;    // length-delimited payload
};

// Splits one protobuf message into fields; returns false if it is malformed.
bool parse_fields(const std::string& msg, std::vector<Field>* fields) {
  size_t pos = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos >= msg.size()) return false;
      uint8_t b = uint8_t(msg[pos++]);
      *v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (pos < msg.size()) {
    uint64_t key;
    if (!varint(&key)) return false;
    Field f;
    f.number = uint32_t(key >> 3);
    f.wire = uint32_t(key & 7);
    if (f.wire == 0) {
      if (!varint(&f.scalar)) return false;
    } else if (f.wire == 1 || f.wire == 5) {
      int n = f.wire == 1 ? 8 : 4;
      if (pos + n > msg.size()) return false;
      f.scalar = load_le(msg, pos, n);
      pos += n;
    } else if (f.wire == 2) {
      uint64_t n;
      if (!varint(&n) || n > msg.size() - pos) return false;
      f.bytes = msg.substr(pos, n);
      pos += n;
    } else {
      return false;
    }
    fields->push_back(std::move(f));
  }
  return true;
}

// Returns "" and fills `events`, or says what is wrong with the file.
std::string read_events(const std::string& path, std::vector<Event>* events) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open " + path;
  std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  for (int index = 0; pos < blob.size(); ++index) {
    const std::string where = "record " + std::to_string(index) + ": ";
    if (pos + 12 > blob.size()) return where + "truncated header";
    const uint64_t length = load_le(blob, pos, 8);
    if (mask_crc(crc32c(blob.data() + pos, 8)) != load_le(blob, pos + 8, 4)) {
      return where + "CRC mismatch in the length";
    }
    pos += 12;
    if (length + 4 > blob.size() - pos) return where + "truncated data";
    const std::string data = blob.substr(pos, length);
    if (mask_crc(crc32c(data)) != load_le(blob, pos + length, 4)) {
      return where + "CRC mismatch in the data";
    }
    pos += length + 4;

    Event e;
    std::vector<Field> fields;
    if (!parse_fields(data, &fields)) return where + "malformed Event";
    for (const Field& f : fields) {
      if (f.number == 1 && f.wire == 1) {
        double d;
        std::memcpy(&d, &f.scalar, 8);
        e.wall_time = d;
      } else if (f.number == 2 && f.wire == 0) {
        e.step = int64_t(f.scalar);
      } else if (f.number == 3 && f.wire == 2) {
        e.file_version = f.bytes;
      } else if (f.number == 5 && f.wire == 2) {
        std::vector<Field> summary;
        if (!parse_fields(f.bytes, &summary)) return where + "malformed Summary";
        for (const Field& v : summary) {
          if (v.number != 1 || v.wire != 2) return where + "unexpected Summary field";
          std::vector<Field> value;
          if (!parse_fields(v.bytes, &value)) return where + "malformed Summary.Value";
          Scalar s;
          bool has_tag = false, has_value = false;
          for (const Field& x : value) {
            if (x.number == 1 && x.wire == 2) {
              s.tag = x.bytes;
              has_tag = true;
            } else if (x.number == 2 && x.wire == 5) {
              uint32_t bits = uint32_t(x.scalar);
              std::memcpy(&s.value, &bits, 4);
              has_value = true;
            } else {
              return where + "unexpected Summary.Value field";
            }
          }
          if (!has_tag || !has_value) return where + "Summary.Value without tag or simple_value";
          e.scalars.push_back(s);
        }
      } else {
        return where + "unexpected Event field " + std::to_string(f.number);
      }
    }
    events->push_back(std::move(e));
  }
  return "";
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

struct PythonResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

PythonResult run_python_reader(const std::string& event_file, const std::string& scratch_dir) {
  const std::string out = scratch_dir + "/python_out.txt";
  const std::string cmd = std::string(HIBARI_PYTHON) + " '" + HIBARI_SOURCE_DIR +
                          "/tests/reference/read_tfevents.py' '" + event_file + "' > '" + out +
                          "' 2>&1";
  PythonResult r;
  const int rc = std::system(cmd.c_str());
  r.status = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
  r.output = read_file(out);
  fs::remove(out);
  return r;
}

std::string fmt9g(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  return buf;
}

class TensorBoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ =
        (fs::temp_directory_path() / ("hibari_tb_" + std::to_string(getpid()) + "_" + info->name()))
            .string();
    fs::remove_all(root_);
    dir_ = root_ + "/run/tb";  // nested and missing: the writer creates it
  }
  void TearDown() override { fs::remove_all(root_); }

  // Three scalars over two steps.
  std::string write_sample() {
    TensorBoardWriter w(dir_);
    w.add_scalar("train/loss", 2.5, 1);
    w.add_scalar("train/lr", 3e-4, 1);
    w.flush();
    w.add_scalar("train/loss", 1.75, 2);
    w.flush();
    return w.path();
  }

  std::string root_;
  std::string dir_;
};

// ---- tests ----

TEST(Crc32c, KnownAnswers) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  // RFC 3720 (iSCSI) appendix B.4 vectors.
  std::string zeros(32, '\0'), ones(32, '\xff'), ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = char(i);
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  // Continuing a running checksum equals checksumming the whole.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}

TEST(Crc32c, Mask) {
  EXPECT_EQ(mask_crc(0), 0xa282ead8u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(mask_crc(c), uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

// Bytes written by TensorFlow's own protobuf and record writer, as published in the tests of
// TensorFlow (event_file_loader_test.py) and tensorboard_logger (test_serialization, wall_time
// 256.5): our encoding must match them byte for byte.
const std::string kTfRecordV1(
    "\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\"\t\x00\x00\xc0%\xddu"
    "\xd5\x41\x1a\rbrain.Event:1\xec\xf3"
    "2\x8d",
    40);
const std::string kTbLoggerFile(
    "\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\"\t\x00\x00\x00\x00\x00\x08p@"
    "\x1a\rbrain.Event:2\xbc\x98!+"
    "\x19\x00\x00\x00\x00\x00\x00\x00\x8b\xf1\x08(\t\x00\x00\x00\x00\x00\x08p@"
    "\x10\x01*\x0c\n\n\n\x03v/1\x15\x00\x00\xc0?,\xec\xc0\x87"
    "\x1a\x00\x00\x00\x00\x00\x00\x00\x12\x9b\xd8-\t\x00\x00\x00\x00\x00\x08p@"
    "\x10\x02*\r\n\x0b\n\x04v/22\x15\x00\x00\x80\x41\x8f\xa3\xb6\x88",
    40 + 41 + 42);

TEST(TensorBoardEncoding, MatchesTensorFlowBytes) {
  // The data of TensorFlow's record, re-framed: the length and both CRCs must come out the same.
  EXPECT_EQ(tensorboard::frame_record(kTfRecordV1.substr(12, 24)), kTfRecordV1);

  const std::string ours =
      tensorboard::frame_record(tensorboard::file_version_event(256.5)) +
      tensorboard::frame_record(tensorboard::scalar_event(256.5, 1, "v/1", 1.5f)) +
      tensorboard::frame_record(tensorboard::scalar_event(256.5, 2, "v/22", 16.0f));
  EXPECT_EQ(ours, kTbLoggerFile);
}

TEST_F(TensorBoardTest, PythonReaderReadsTensorFlowBytes) {
  fs::create_directories(root_);
  const std::string path = root_ + "/events.out.tfevents.0.tf";
  spit(path, kTbLoggerFile);
  const PythonResult r = run_python_reader(path, root_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "v/1 1 1.5\nv/22 2 16\n");
  std::vector<Event> events;
  ASSERT_EQ(read_events(path, &events), "");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].scalars.at(0).tag, "v/22");
}

TEST_F(TensorBoardTest, WritesScalarsThatReadBack) {
  const double before = std::time(nullptr);
  const std::string path = write_sample();
  const double after = std::time(nullptr) + 1.0;

  const fs::path p(path);
  EXPECT_EQ(p.parent_path().string(), dir_);
  EXPECT_EQ(p.filename().string().rfind("events.out.tfevents.", 0), 0u) << path;

  std::vector<Event> events;
  ASSERT_EQ(read_events(path, &events), "");
  ASSERT_EQ(events.size(), 4u);

  EXPECT_EQ(events[0].file_version, std::optional<std::string>("brain.Event:2"));
  EXPECT_TRUE(events[0].scalars.empty());
  for (const Event& e : events) {
    ASSERT_TRUE(e.wall_time.has_value());
    EXPECT_GE(*e.wall_time, before);
    EXPECT_LE(*e.wall_time, after);
  }

  const struct {
    const char* tag;
    double value;
    int64_t step;
  } want[] = {{"train/loss", 2.5, 1}, {"train/lr", 3e-4, 1}, {"train/loss", 1.75, 2}};
  for (int i = 0; i < 3; ++i) {
    const Event& e = events[i + 1];
    EXPECT_FALSE(e.file_version.has_value());
    EXPECT_EQ(e.step, want[i].step);
    ASSERT_EQ(e.scalars.size(), 1u);
    EXPECT_EQ(e.scalars[0].tag, want[i].tag);
    EXPECT_EQ(e.scalars[0].value, float(want[i].value));
  }
}

TEST_F(TensorBoardTest, PythonReaderAgrees) {
  const std::string path = write_sample();
  const PythonResult r = run_python_reader(path, root_);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string expected = "train/loss 1 2.5\ntrain/lr 1 " + fmt9g(float(3e-4)) +
                               "\n"
                               "train/loss 2 1.75\n";
  EXPECT_EQ(r.output, expected);
}

TEST_F(TensorBoardTest, CorruptedDataByteIsCaught) {
  const std::string path = write_sample();
  std::string bytes = read_file(path);
  std::vector<Event> events;
  ASSERT_EQ(read_events(path, &events), "");

  // The first record is 12 + n + 4 bytes; flip a byte in the middle of the second record's data.
  const size_t first = 12 + load_le(bytes, 0, 8) + 4;
  const size_t second_len = load_le(bytes, first, 8);
  bytes[first + 12 + second_len / 2] ^= 0x01;
  spit(path, bytes);

  events.clear();
  EXPECT_EQ(read_events(path, &events), "record 1: CRC mismatch in the data");
  const PythonResult r = run_python_reader(path, root_);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("CRC mismatch in the data"), std::string::npos) << r.output;
}

TEST_F(TensorBoardTest, CorruptedLengthByteIsCaught) {
  const std::string path = write_sample();
  std::string bytes = read_file(path);
  const size_t first = 12 + load_le(bytes, 0, 8) + 4;
  bytes[first + 7] ^= 0x40;  // the high byte of the second record's length
  spit(path, bytes);

  std::vector<Event> events;
  EXPECT_EQ(read_events(path, &events), "record 1: CRC mismatch in the length");
  const PythonResult r = run_python_reader(path, root_);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("CRC mismatch in the length"), std::string::npos) << r.output;
}

TEST_F(TensorBoardTest, StepsRoundTripThroughVarints) {
  const int64_t steps[] = {0, 127, 128, 300, int64_t(1) << 40, -1, INT64_MAX};
  std::string path;
  {
    TensorBoardWriter w(dir_);
    for (int64_t s : steps) w.add_scalar("s", double(s % 1000), s);
    path = w.path();
  }  // the destructor flushes
  std::vector<Event> events;
  ASSERT_EQ(read_events(path, &events), "");
  ASSERT_EQ(events.size(), 1 + std::size(steps));
  for (size_t i = 0; i < std::size(steps); ++i) {
    EXPECT_EQ(events[i + 1].step, steps[i]);
    EXPECT_EQ(events[i + 1].scalars.at(0).value, float(steps[i] % 1000));
  }
  const PythonResult r = run_python_reader(path, root_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("s -1 -1\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("s 9223372036854775807 807\n"), std::string::npos) << r.output;
}

TEST_F(TensorBoardTest, CompletedStepsReachTheFileWithoutAnExplicitFlush) {
  TensorBoardWriter w(dir_);
  std::vector<Event> events;
  ASSERT_EQ(read_events(w.path(), &events), "");
  EXPECT_EQ(events.size(), 1u);  // the file_version record is on disk at once

  w.add_scalar("loss", 1.0, 1);
  w.add_scalar("loss", 0.5, 2);  // a new step: step 1 is flushed
  events.clear();
  ASSERT_EQ(read_events(w.path(), &events), "");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].step, 1);

  w.flush();
  events.clear();
  ASSERT_EQ(read_events(w.path(), &events), "");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].step, 2);
  EXPECT_EQ(events[2].scalars.at(0).value, 0.5f);
}

TEST_F(TensorBoardTest, TwoWritersInOneDirectoryKeepSeparateFiles) {
  TensorBoardWriter a(dir_);
  TensorBoardWriter b(dir_);
  EXPECT_NE(a.path(), b.path());
  a.add_scalar("a", 1.0, 1);
  b.add_scalar("b", 2.0, 1);
  a.flush();
  b.flush();
  std::vector<Event> ea, eb;
  ASSERT_EQ(read_events(a.path(), &ea), "");
  ASSERT_EQ(read_events(b.path(), &eb), "");
  ASSERT_EQ(ea.size(), 2u);
  ASSERT_EQ(eb.size(), 2u);
  EXPECT_EQ(ea[1].scalars.at(0).tag, "a");
  EXPECT_EQ(eb[1].scalars.at(0).tag, "b");
}

TEST_F(TensorBoardTest, UnusableDirectoryThrowsNamingThePath) {
  fs::create_directories(root_);
  const std::string file = root_ + "/not_a_dir";
  spit(file, "x");
  const std::string bad = file + "/tb";
  try {
    TensorBoardWriter w(bad);
    FAIL() << "expected hibari::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hibari
