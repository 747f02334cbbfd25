// checkpoint/safetensors: round trips, files from independent writers (hand-built bytes and a
// standard-library Python script), every validation error, a corruption fuzz and atomic writes.
#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

class Safetensors : public testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }

  // A fresh directory per test: ctest runs test cases as parallel processes.
  test::ScratchDir dir_{"safetensors"};
};

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(v >> (8 * i)));
  return s;
}

// A safetensors file built by hand: length, header (space-padded to 8 like the reference), data.
std::string st_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// The read fails with hibari::Error whose one-line message names the file and contains `phrase`.
testing::AssertionResult read_fails(const std::string& path, const std::string& phrase) {
  try {
    safetensors_read(path);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(path + ": ", 0) != 0) {
      return testing::AssertionFailure() << "message does not start with the path: " << msg;
    }
    if (msg.find(phrase) == std::string::npos) {
      return testing::AssertionFailure() << "message lacks '" << phrase << "': " << msg;
    }
    if (msg.find('\n') != std::string::npos) {
      return testing::AssertionFailure() << "message is not one line: " << msg;
    }
    return testing::AssertionSuccess() << msg;
  }
  return testing::AssertionFailure() << "read succeeded; expected an error with '" << phrase << "'";
}

template <typename F>
testing::AssertionResult throws_error(F&& f, const std::string& path, const std::string& phrase) {
  try {
    f();
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(path + ": ", 0) == 0 && msg.find(phrase) != std::string::npos) {
      return testing::AssertionSuccess();
    }
    return testing::AssertionFailure() << "wrong message: " << msg;
  }
  return testing::AssertionFailure() << "no error; expected '" << phrase << "'";
}

int run_python(const std::string& script_path, const std::string& arg) {
  std::string cmd = std::string(HIBARI_PYTHON) + " '" + script_path + "' '" + arg + "'";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// ---- round trips ------------------------------------------------------------------------------

TEST_F(Safetensors, RoundTripAllDtypesAndMetadata) {
  const std::vector<float> w = {1.5f, -2.25f, 3e-3f, 1e30f, -0.0f, 7.0f};
  const std::vector<float> bf_values = {1.0f, -3.5f, 256.0f, 0.15625f};  // exact in bf16
  std::vector<uint16_t> bf;
  for (float v : bf_values) bf.push_back(f32_to_bf16(v));
  const std::vector<int32_t> i32 = {-1, 0, std::numeric_limits<int32_t>::max(), -7};
  const std::vector<int64_t> i64 = {-(int64_t(1) << 40), 7, int64_t(1) << 62, 0};
  const std::vector<double> f64 = {0.25, -1e-3};
  const std::vector<uint8_t> u8 = {0, 1, 255};
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "42"}};
  const std::string p = path("model.safetensors");
  // Deliberately not in name order: the writer sorts.
  safetensors_write(p,
                    {{"wte.weight", StDtype::F32, {2, 3}, w.data()},
                     {"norm.bf16", StDtype::BF16, {2, 2}, bf.data()},
                     {"ids", StDtype::I32, {4}, i32.data()},
                     {"counts", StDtype::I64, {2, 2}, i64.data()},
                     {"scale", StDtype::F64, {2}, f64.data()},
                     {"bytes", StDtype::U8, {3}, u8.data()}},
                    meta);

  SafeTensorsFile f = safetensors_read(p);
  EXPECT_EQ(f.path, p);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), 6u);
  // Data laid out in name order.
  const std::vector<std::string> order = {"bytes",     "counts", "ids",
                                          "norm.bf16", "scale",  "wte.weight"};
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(f.tensors[i].name, order[i]);
  EXPECT_EQ(f.tensors[0].begin, 0u);
  for (size_t i = 1; i < f.tensors.size(); ++i) EXPECT_EQ(f.tensors[i].begin, f.tensors[i - 1].end);
  EXPECT_EQ(f.tensors.back().end, f.data.size());

  const SafeTensorInfo* t = f.find("wte.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, StDtype::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->numel(), 6u);
  EXPECT_EQ(f.find("missing"), nullptr);

  std::vector<float> got = f.read_f32("wte.weight", {2, 3});
  ASSERT_EQ(got.size(), w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(got[i], w[i]);
    EXPECT_EQ(std::signbit(got[i]), std::signbit(w[i]));
  }
  EXPECT_EQ(f.read_f32("norm.bf16", {2, 2}), bf_values);
  EXPECT_EQ(f.read_f32("scale"), (std::vector<float>{0.25f, -1e-3f}));
  EXPECT_EQ(f.read_i64("ids"), (std::vector<int64_t>(i32.begin(), i32.end())));
  EXPECT_EQ(f.read_i64("counts"), i64);
  const SafeTensorInfo* b = f.find("bytes");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, StDtype::U8);
  EXPECT_EQ(std::vector<uint8_t>(f.data.begin() + std::ptrdiff_t(b->begin),
                                 f.data.begin() + std::ptrdiff_t(b->end)),
            u8);

  // The header is space-padded so the data section starts 8-aligned.
  std::string bytes = test::read_file(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + f.data.size());
}

TEST_F(Safetensors, RoundTripScalarsEmptyTensorsAndNoTensors) {
  const float one = 1.0f;
  const std::string p = path("edge.safetensors");
  safetensors_write(p,
                    {{"scalar", StDtype::F32, {}, &one}, {"empty", StDtype::F32, {0, 3}, nullptr}});
  SafeTensorsFile f = safetensors_read(p);
  EXPECT_EQ(f.read_f32("scalar"), std::vector<float>{1.0f});
  EXPECT_TRUE(f.read_f32("empty", {0, 3}).empty());
  EXPECT_TRUE(f.metadata.empty());

  const std::string q = path("nothing.safetensors");
  safetensors_write(q, {}, {{"only", "metadata"}});
  SafeTensorsFile g = safetensors_read(q);
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_TRUE(g.data.empty());
  EXPECT_EQ(g.metadata.at("only"), "metadata");
}

TEST_F(Safetensors, WriterIsDeterministicWhateverTheInputOrder) {
  const std::vector<float> a = {1, 2}, b = {3};
  const std::string p = path("x.safetensors"), q = path("y.safetensors");
  safetensors_write(p, {{"a", StDtype::F32, {2}, a.data()}, {"b", StDtype::F32, {1}, b.data()}});
  safetensors_write(q, {{"b", StDtype::F32, {1}, b.data()}, {"a", StDtype::F32, {2}, a.data()}});
  EXPECT_EQ(test::read_file(p), test::read_file(q));
}

// ---- independent writers and readers -----------------------------------------------------------

TEST_F(Safetensors, ReadsHandBuiltFile) {
  // Header keys out of data order, metadata last, data of "b" before "a".
  const std::vector<uint16_t> half = {0x3C00, 0xC000};  // 1, -2
  const std::vector<float> f32 = {0.5f, 4.0f};
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1,2],"data_offsets":[4,12]},)"
      R"("b":{"shape":[2],"data_offsets":[0,4],"dtype":"F16"},"__metadata__":{"k":"v"}})";
  const std::string p = path("hand.safetensors");
  test::write_file(p, st_bytes(header, raw(half) + raw(f32)));

  SafeTensorsFile f = safetensors_read(p);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "b");  // in order of data offsets
  EXPECT_EQ(f.tensors[1].name, "a");
  EXPECT_EQ(f.metadata.at("k"), "v");
  EXPECT_EQ(f.read_f32("a", {1, 2}), f32);
  EXPECT_EQ(f.read_f32("b", {2}), (std::vector<float>{1.0f, -2.0f}));
}

TEST_F(Safetensors, ReadsFileWrittenByPython) {
  const std::string script = path("write.py"), p = path("py.safetensors");
  std::ofstream(script) << R"PY(
import json, struct, sys

def bf16(values):
    # bf16 is the upper half of the fp32 bits; these values are exact in bf16.
    return b"".join(struct.pack("<f", v)[2:] for v in values)

tensors = [  # name, dtype, shape, bytes; data written in this order, header in another
    ("model.f16", "F16", [2, 3], struct.pack("<6e", 1.0, -2.0, 0.5, 65504.0, 2.0**-24, 0.1)),
    ("model.f32", "F32", [3], struct.pack("<3f", 1.5, -0.25, 1e-3)),
    ("ids.i64", "I64", [3], struct.pack("<3q", -(2**40), 7, 2**62)),
    ("ids.i32", "I32", [2], struct.pack("<2i", -5, 2**31 - 1)),
    ("model.bf16", "BF16", [2], bf16([1.0, -3.5])),
    ("model.f64", "F64", [2], struct.pack("<2d", 1.0 / 3.0, 2.0**100)),
]
header, data = {"__metadata__": {"format": "pt", "source": "python"}}, b""
for name, dtype, shape, raw in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
text = json.dumps(dict(reversed(list(header.items()))), separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
)PY";
  ASSERT_EQ(run_python(script, p), 0);

  SafeTensorsFile f = safetensors_read(p);
  EXPECT_EQ(f.metadata,
            (std::map<std::string, std::string>{{"format", "pt"}, {"source", "python"}}));
  ASSERT_EQ(f.tensors.size(), 6u);
  EXPECT_EQ(f.tensors[0].name, "model.f16");
  EXPECT_EQ(f.read_f32("model.f16", {2, 3}),
            (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f, 0.0999755859375f}));
  EXPECT_EQ(f.read_f32("model.f32", {3}), (std::vector<float>{1.5f, -0.25f, 1e-3f}));
  EXPECT_EQ(f.read_i64("ids.i64"),
            (std::vector<int64_t>{-(int64_t(1) << 40), 7, int64_t(1) << 62}));
  EXPECT_EQ(f.read_i64("ids.i32"), (std::vector<int64_t>{-5, std::numeric_limits<int32_t>::max()}));
  EXPECT_EQ(f.read_f32("model.bf16"), (std::vector<float>{1.0f, -3.5f}));
  EXPECT_EQ(f.read_f32("model.f64"), (std::vector<float>{float(1.0 / 3.0), 0x1p100f}));
}

TEST_F(Safetensors, PythonReadsOurFile) {
  const std::vector<float> a = {1.5f, -2.0f};
  const std::vector<int64_t> b = {-5, int64_t(1) << 40};
  const std::vector<uint16_t> c = {0x3F80, 0xBF00};  // bf16 1.0, -0.5
  const std::vector<uint8_t> d = {1, 2, 255};
  const std::string p = path("ours.safetensors"), script = path("check.py");
  safetensors_write(p,
                    {{"d.u8", StDtype::U8, {3}, d.data()},
                     {"b.i64", StDtype::I64, {2}, b.data()},
                     {"a.f32", StDtype::F32, {2, 1}, a.data()},
                     {"c.bf16", StDtype::BF16, {2}, c.data()}},
                    {{"step", "7"}});
  std::ofstream(script) << R"PY(
import json, struct, sys

raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert n % 8 == 0, n
text = raw[8 : 8 + n].decode("utf-8")
assert text.rstrip(" ").endswith("}"), repr(text)
header = json.loads(text)
data = raw[8 + n :]
assert header.pop("__metadata__") == {"step": "7"}
names = list(header)
assert names == sorted(names) == ["a.f32", "b.i64", "c.bf16", "d.u8"], names
end = 0
for name in names:  # contiguous, in name order
    begin, stop = header[name]["data_offsets"]
    assert begin == end, (name, begin, end)
    end = stop
assert end == len(data), (end, len(data))

def get(name, fmt):
    b, e = header[name]["data_offsets"]
    return list(struct.unpack("<" + fmt, data[b:e]))

assert header["a.f32"] == {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}, header["a.f32"]
assert get("a.f32", "2f") == [1.5, -2.0]
assert header["b.i64"]["dtype"] == "I64" and get("b.i64", "2q") == [-5, 2**40]
assert header["c.bf16"]["dtype"] == "BF16" and get("c.bf16", "2H") == [0x3F80, 0xBF00]
assert header["d.u8"]["dtype"] == "U8" and get("d.u8", "3B") == [1, 2, 255]
print("python: file ok")
)PY";
  EXPECT_EQ(run_python(script, p), 0);
}

// ---- conversions ------------------------------------------------------------------------------

TEST_F(Safetensors, F16KnownValues) {
  const std::vector<uint16_t> h = {0x3C00, 0xC000, 0x0001, 0x7C00, 0xFC00, 0x0000,
                                   0x8000, 0x7BFF, 0x0400, 0x03FF, 0x3555, 0x7E00};
  const std::string p = path("f16.safetensors");
  test::write_file(p,
                   st_bytes(R"({"h":{"dtype":"F16","shape":[12],"data_offsets":[0,24]}})", raw(h)));
  std::vector<float> f = safetensors_read(p).read_f32("h");
  ASSERT_EQ(f.size(), 12u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(f[3], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[4], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[5], 0.0f);
  EXPECT_FALSE(std::signbit(f[5]));
  EXPECT_EQ(f[6], 0.0f);
  EXPECT_TRUE(std::signbit(f[6]));
  EXPECT_EQ(f[7], 65504.0f);            // largest finite
  EXPECT_EQ(f[8], 0x1p-14f);            // smallest normal
  EXPECT_EQ(f[9], 1023.0f * 0x1p-24f);  // largest subnormal
  EXPECT_EQ(f[10], 0.333251953125f);    // 1/3 rounded to half
  EXPECT_TRUE(std::isnan(f[11]));
}

TEST_F(Safetensors, Bf16AndF64Conversion) {
  const std::vector<uint16_t> bf = {0x3F80, 0xC0A0, 0x7F80, 0x0001};
  const std::vector<double> d = {0.1, -1e300, 1e-50, 3.0};
  const std::string p = path("conv.safetensors");
  test::write_file(p, st_bytes(R"({"bf":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},)"
                               R"("d":{"dtype":"F64","shape":[2,2],"data_offsets":[8,40]}})",
                               raw(bf) + raw(d)));
  SafeTensorsFile f = safetensors_read(p);
  std::vector<float> b = f.read_f32("bf");
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -5.0f);
  EXPECT_EQ(b[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(b[3], 0x1p-133f);
  std::vector<float> g = f.read_f32("d", {2, 2});
  EXPECT_EQ(g[0], 0.1f);
  EXPECT_EQ(g[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(g[2], 0.0f);
  EXPECT_EQ(g[3], 3.0f);
}

// ---- validation: the file ---------------------------------------------------------------------

TEST_F(Safetensors, MissingFile) {
  EXPECT_TRUE(read_fails(path("absent.safetensors"), "cannot open"));
}

TEST_F(Safetensors, DirectoryIsNotAFile) {
  fs::create_directory(path("a_dir"));
  EXPECT_TRUE(read_fails(path("a_dir"), "not a regular file"));
}

TEST_F(Safetensors, FileShorterThanEightBytes) {
  const std::string p = path("short.safetensors");
  test::write_file(p, std::string("\x08\0\0\0\0", 5));
  EXPECT_TRUE(read_fails(p, "too short"));
  test::write_file(p, "");
  EXPECT_TRUE(read_fails(p, "too short"));
}

TEST_F(Safetensors, HeaderSizeBeyondFile) {
  const std::string p = path("trunc.safetensors");
  test::write_file(p, le64(64) + "{}");
  EXPECT_TRUE(read_fails(p, "exceeds the file size"));
}

TEST_F(Safetensors, HeaderSizeAbsurd) {
  const std::string p = path("absurd.safetensors");
  test::write_file(p, le64(uint64_t(1) << 40) + "{}");
  EXPECT_TRUE(read_fails(p, "absurd"));
  test::write_file(p, le64(~uint64_t(0)) + "{}");
  EXPECT_TRUE(read_fails(p, "absurd"));
}

TEST_F(Safetensors, ReadF32MissingTensorNamesIt) {
  const std::string p = path("m.safetensors");
  const float x = 1;
  safetensors_write(p, {{"present", StDtype::F32, {1}, &x}});
  SafeTensorsFile f = safetensors_read(p);
  EXPECT_TRUE(throws_error([&] { f.read_f32("lm_head.weight"); }, p, "no tensor 'lm_head.weight'"));
  EXPECT_TRUE(throws_error([&] { f.read_i64("lm_head.weight"); }, p, "no tensor 'lm_head.weight'"));
}

TEST_F(Safetensors, ReadF32ShapeMismatchPrintsBothShapes) {
  const std::string p = path("s.safetensors");
  const std::vector<float> x(6);
  safetensors_write(p, {{"w", StDtype::F32, {2, 3}, x.data()}});
  SafeTensorsFile f = safetensors_read(p);
  EXPECT_TRUE(throws_error(
      [&] {
        f.read_f32("w", {3, 2});
      },
      p, "'w' has shape [2, 3], expected [3, 2]"));
}

TEST_F(Safetensors, ReadWithWrongDtypeFamily) {
  const std::string p = path("d.safetensors");
  const std::vector<int32_t> i = {1, 2};
  const std::vector<float> x = {1, 2};
  safetensors_write(p, {{"i", StDtype::I32, {2}, i.data()}, {"x", StDtype::F32, {2}, x.data()}});
  SafeTensorsFile f = safetensors_read(p);
  EXPECT_TRUE(throws_error([&] { f.read_f32("i"); }, p, "has dtype I32"));
  EXPECT_TRUE(throws_error([&] { f.read_i64("x"); }, p, "has dtype F32"));
}

// ---- validation: the header, one test per case ------------------------------------------------

struct BadHeader {
  const char* name;
  std::string header;
  size_t data_size;
  const char* phrase;
};

// Test names list the case, not the struct's bytes.
void PrintTo(const BadHeader& c, std::ostream* os) { *os << c.name; }

class SafetensorsBadHeader : public Safetensors, public testing::WithParamInterface<BadHeader> {};

TEST_P(SafetensorsBadHeader, IsRejected) {
  const BadHeader& c = GetParam();
  const std::string p = path("bad.safetensors");
  test::write_file(p, st_bytes(c.header, std::string(c.data_size, '\x11')));
  EXPECT_TRUE(read_fails(p, c.phrase));
}

// An entry with the given fields (raw JSON text), for terse cases below.
std::string entry(const std::string& name, const std::string& fields) {
  return "{\"" + name + "\":{" + fields + "}}";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsBadHeader,
    testing::Values(
        BadHeader{"NotJson", "{\"a\": ", 0, "header is not valid JSON"},
        BadHeader{"BinaryGarbage", std::string("\x01\x02\x03\xff\n", 5), 0,
                  "header is not valid JSON"},
        BadHeader{"InvalidUtf8", "{\"\xc3\x28\":{}}", 0, "header is not valid JSON"},
        BadHeader{"EmptyHeader", "", 0, "header is not valid JSON"},
        // nlohmann reports a number past double as out_of_range, not parse_error (issue 13).
        BadHeader{"NumberOverflow",
                  entry("w", R"("dtype":"F32","shape":[1e309],"data_offsets":[0,4])"), 4,
                  "header is not valid JSON: number overflow parsing '1e309'"},
        BadHeader{"NotAnObject", "[1, 2]", 0, "header is not a JSON object"},
        BadHeader{"EntryNotAnObject", "{\"w\": 5}", 0, "'w': header entry is not an object"},
        BadHeader{"MissingDtype", entry("w", R"("shape":[1],"data_offsets":[0,4])"), 4,
                  "'w': missing \"dtype\""},
        BadHeader{"MissingShape", entry("w", R"("dtype":"F32","data_offsets":[0,4])"), 4,
                  "'w': missing \"shape\""},
        BadHeader{"MissingDataOffsets", entry("w", R"("dtype":"F32","shape":[1])"), 4,
                  "'w': missing \"data_offsets\""},
        BadHeader{"DtypeNotString", entry("w", R"("dtype":4,"shape":[1],"data_offsets":[0,4])"), 4,
                  "\"dtype\" is not a string"},
        BadHeader{"ShapeNotArray", entry("w", R"("dtype":"F32","shape":"1","data_offsets":[0,4])"),
                  4, "\"shape\" is not an array"},
        BadHeader{"ShapeHoldsFloat",
                  entry("w", R"("dtype":"F32","shape":[1.0],"data_offsets":[0,4])"), 4,
                  "\"shape\" holds a non-integer"},
        BadHeader{"DataOffsetsNotPair",
                  entry("w", R"("dtype":"F32","shape":[1],"data_offsets":[0,4,8])"), 4,
                  "not a pair of non-negative integers"},
        BadHeader{"DataOffsetsNegative",
                  entry("w", R"("dtype":"F32","shape":[1],"data_offsets":[-4,0])"), 4,
                  "not a pair of non-negative integers"},
        BadHeader{"DataOffsetsStrings",
                  entry("w", R"("dtype":"F32","shape":[1],"data_offsets":["0","4"])"), 4,
                  "not a pair of non-negative integers"},
        BadHeader{"UnknownDtype",
                  entry("w", R"("dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1])"), 1,
                  "unknown dtype 'F8_E4M3'"},
        BadHeader{"NegativeDim", entry("w", R"("dtype":"F32","shape":[2,-1],"data_offsets":[0,8])"),
                  8, "negative dimension -1"},
        BadHeader{"BeginAfterEnd", entry("w", R"("dtype":"F32","shape":[1],"data_offsets":[8,4])"),
                  8, "begin 8 > end 4"},
        BadHeader{"EndBeyondData", entry("w", R"("dtype":"F32","shape":[4],"data_offsets":[0,16])"),
                  12, "end 16 is beyond the data section (12 bytes)"},
        BadHeader{"EndBeyondDataHuge",
                  entry("w", R"("dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615])"),
                  1, "beyond the data section"},
        BadHeader{"SizeMismatch", entry("w", R"("dtype":"F32","shape":[3],"data_offsets":[0,8])"),
                  8, "span 8 bytes but F32 [3] needs 12"},
        BadHeader{
            "NumelOverflow",
            entry("w", R"("dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0])"), 0,
            "overflows"},
        BadHeader{"ByteSizeOverflow",
                  entry("w", R"("dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0])"),
                  0, "overflows"},
        BadHeader{"Overlap",
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  12, "'b' overlaps tensor 'a'"},
        BadHeader{"Aliased",
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                  8, "overlaps"},
        BadHeader{"HoleBetween",
                  R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  12, "hole in the data section: bytes 4..8"},
        BadHeader{"HoleAtStart", entry("w", R"("dtype":"F32","shape":[1],"data_offsets":[4,8])"), 8,
                  "hole in the data section: bytes 0..4"},
        BadHeader{"TrailingBytes", entry("w", R"("dtype":"F32","shape":[1],"data_offsets":[0,4])"),
                  12, "hole in the data section: bytes 4..12 at the end"},
        BadHeader{"DataWithoutTensors", "{}", 8, "hole in the data section"},
        BadHeader{"MetadataNotObject", R"({"__metadata__":[1]})", 0,
                  "\"__metadata__\" is not an object"},
        BadHeader{"MetadataValueNotString", R"({"__metadata__":{"step":7}})", 0,
                  "metadata 'step' is not a string"}),
    [](const testing::TestParamInfo<BadHeader>& info) { return std::string(info.param.name); });

// ---- corruption fuzz --------------------------------------------------------------------------

// Reading a mutated file either fails with hibari::Error or yields tensors that all convert; any
// other exception, or a crash (ASan/UBSan builds), fails the test.
TEST_F(Safetensors, CorruptionFuzz) {
  const std::vector<float> f32 = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> f16 = {0x3C00, 0x7C00, 0x0001};
  const std::vector<uint16_t> bf = {0x3F80, 0xC000};
  const std::vector<double> f64 = {1e300, -2};
  const std::vector<int32_t> i32 = {1, -2, 3};
  const std::vector<int64_t> i64 = {int64_t(1) << 50};
  const std::vector<uint8_t> u8 = {9, 8, 7, 6, 5};
  const std::string good = path("good.safetensors"), p = path("fuzz.safetensors");
  safetensors_write(good,
                    {{"f32", StDtype::F32, {2, 3}, f32.data()},
                     {"f16", StDtype::F16, {3}, f16.data()},
                     {"bf16", StDtype::BF16, {1, 2}, bf.data()},
                     {"f64", StDtype::F64, {2}, f64.data()},
                     {"i32", StDtype::I32, {3}, i32.data()},
                     {"i64", StDtype::I64, {1}, i64.data()},
                     {"u8", StDtype::U8, {5}, u8.data()}},
                    {{"step", "1"}});
  const std::string original = test::read_file(good);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | uint8_t(original[size_t(i)]);

  std::mt19937_64 rng(20240601);
  auto uniform = [&](uint64_t lo, uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  const std::string interesting = "{}[]\":,-0123456789 eE.\\aFIU";
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = original;
    switch (iter % 5) {
      case 0:  // truncate
        bytes.resize(size_t(uniform(0, bytes.size() - 1)));
        break;
      case 1:  // random bytes in the header
        for (uint64_t k = uniform(1, 8); k > 0; --k) {
          bytes[size_t(uniform(8, 8 + header_size - 1))] = char(uniform(0, 255));
        }
        break;
      case 2:  // JSON-significant characters in the header: new numbers, structure, strings
        for (uint64_t k = uniform(1, 3); k > 0; --k) {
          bytes[size_t(uniform(8, 8 + header_size - 1))] =
              interesting[size_t(uniform(0, interesting.size() - 1))];
        }
        break;
      case 3: {  // the length field: random, near the truth, or anywhere in the file
        uint64_t v = iter % 3 == 0   ? rng()
                     : iter % 3 == 1 ? header_size + uniform(0, 16) - 8
                                     : uniform(0, bytes.size());
        bytes.replace(0, 8, le64(v));
        break;
      }
      case 4:  // anything anywhere, then maybe truncate
        for (uint64_t k = uniform(1, 16); k > 0; --k) {
          bytes[size_t(uniform(0, bytes.size() - 1))] = char(uniform(0, 255));
        }
        if (uniform(0, 1)) bytes.resize(size_t(uniform(0, bytes.size())));
        break;
    }
    test::write_file(p, bytes);
    try {
      SafeTensorsFile f = safetensors_read(p);
      for (const SafeTensorInfo& t : f.tensors) {
        ASSERT_LE(t.end, f.data.size());
        ASSERT_EQ(t.end - t.begin, t.numel() * st_dtype_size(t.dtype));
        if (t.dtype == StDtype::I32 || t.dtype == StDtype::I64) {
          EXPECT_EQ(f.read_i64(t.name).size(), t.numel());
        } else if (t.dtype != StDtype::U8) {
          EXPECT_EQ(f.read_f32(t.name).size(), t.numel());
        }
      }
      ++ok;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(p + ": ", 0), 0u) << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << ": not a hibari::Error: " << e.what();
    }
  }
  RecordProperty("read_ok", ok);
  RecordProperty("rejected", rejected);
  // Both outcomes occur, so the mutations really exercise the validation.
  EXPECT_GT(ok, 0);
  EXPECT_GT(rejected, 1000);
}

// ---- atomic writes ----------------------------------------------------------------------------

TEST_F(Safetensors, WriteIntoMissingDirectoryThrowsAndLeavesNoFile) {
  const float x = 1;
  const std::string p = path("no/such/dir/model.safetensors");
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"x", StDtype::F32, {1}, &x}});
      },
      p, "cannot create"));
  EXPECT_FALSE(fs::exists(path("no")));
}

TEST_F(Safetensors, FailedRenameRemovesTempFile) {
  // The target is a non-empty directory: the temp file is written, then rename fails.
  const float x = 1;
  const std::string p = path("target");
  fs::create_directories(fs::path(p) / "inside");
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"x", StDtype::F32, {1}, &x}});
      },
      p, "cannot rename"));
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir_.path)) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(p));
}

TEST_F(Safetensors, OverwriteReplacesAndLeavesNoTempFile) {
  const std::vector<float> a = {1, 2}, b = {3, 4, 5};
  const std::string p = path("m.safetensors");
  safetensors_write(p, {{"w", StDtype::F32, {2}, a.data()}});
  safetensors_write(p, {{"w", StDtype::F32, {3}, b.data()}});
  EXPECT_EQ(safetensors_read(p).read_f32("w", {3}), b);
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir_.path)) n += e.is_regular_file();
  EXPECT_EQ(n, 1u);
}

TEST_F(Safetensors, WriterRejectsBadInputAndLeavesNoFile) {
  const float x = 1;
  const std::string p = path("bad.safetensors");
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"x", StDtype::F32, {1}, &x}, {"x", StDtype::F32, {1}, &x}});
      },
      p, "duplicate tensor 'x'"));
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"__metadata__", StDtype::F32, {1}, &x}});
      },
      p, "__metadata__"));
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"x", StDtype::F32, {-1}, &x}});
      },
      p, "invalid shape [-1]"));
  EXPECT_TRUE(throws_error(
      [&] {
        safetensors_write(p, {{"x", StDtype::F32, {1}, &x}}, {{"k", "\xff"}});
      },
      p, "UTF-8"));
  EXPECT_TRUE(fs::is_empty(dir_.path));
}

}  // namespace
}  // namespace hibari
