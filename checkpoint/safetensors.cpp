// checkpoint/safetensors.cpp — reader (map, validate everything, then view), atomic writer, and
// Hugging Face's sharded model directories.
#include "checkpoint/safetensors.h"

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
#include "core/file_io.h"
#include "core/json_fields.h"

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
                        " is beyond the data section (" + std::to_string(data_size) +
                        " bytes); truncated?");
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

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the data section has no alignment guarantee
  return v;
}

}  // namespace

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

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // quiet NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to beyond 65504: inf
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal, mant * 2^-24.  Adding 0.5 makes the
    // fp32 adder round the value to a multiple of 2^-24, to nearest even, in one step.
    float a;
    std::memcpy(&a, &abs, 4);
    float r = a + 0.5f;
    uint32_t rb;
    std::memcpy(&rb, &r, 4);
    return uint16_t(sign | (rb - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest
  // even; a carry out of the mantissa correctly bumps the exponent.
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

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

const SafeTensorInfo& SafeTensorsFile::require(const std::string& name,
                                               const std::vector<int64_t>& expected_shape) const {
  const SafeTensorInfo* t = find(name);
  if (!t) fail_file(path, "no tensor " + single_quoted(name));
  if (!expected_shape.empty() && t->shape != expected_shape) {
    fail_file(path, "tensor " + single_quoted(name) + " has shape " + shape_str(t->shape) +
                        ", expected " + shape_str(expected_shape));
  }
  return *t;
}

std::span<const uint8_t> SafeTensorsFile::bytes(const SafeTensorInfo& t) const {
  return data.subspan(t.begin, t.end - t.begin);
}

std::span<const float> SafeTensorsFile::view_f32(const std::string& name,
                                                 const std::vector<int64_t>& expected_shape) const {
  const SafeTensorInfo& t = require(name, expected_shape);
  if (t.dtype != StDtype::F32) {
    fail_file(path, "tensor " + single_quoted(name) + " has dtype " + st_dtype_name(t.dtype) +
                        ", a view needs F32");
  }
  const uint8_t* p = data.data() + t.begin;
  if (t.numel() == 0) return {};
  if (reinterpret_cast<uintptr_t>(p) % alignof(float) != 0) {
    fail_file(path, "tensor " + single_quoted(name) + " is not 4-byte aligned in the file");
  }
  return {reinterpret_cast<const float*>(p), t.numel()};
}

void SafeTensorsFile::read_f32_into(const std::string& name, float* out,
                                    const std::vector<int64_t>& expected_shape) const {
  const SafeTensorInfo& t = require(name, expected_shape);
  const size_t n = t.numel();
  const uint8_t* p = data.data() + t.begin;
  switch (t.dtype) {
    case StDtype::F32:
      if (n) std::memcpy(out, p, n * 4);
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
      fail_file(path, "tensor " + single_quoted(name) + " has dtype " + st_dtype_name(t.dtype) +
                          ", expected F32, F16, BF16 or F64");
  }
}

std::vector<float> SafeTensorsFile::read_f32(const std::string& name,
                                             const std::vector<int64_t>& expected_shape) const {
  std::vector<float> out(require(name, expected_shape).numel());
  read_f32_into(name, out.data(), expected_shape);
  return out;
}

std::vector<int64_t> SafeTensorsFile::read_i64(const std::string& name) const {
  const SafeTensorInfo& t = require(name);
  const size_t n = t.numel();
  const uint8_t* p = data.data() + t.begin;
  std::vector<int64_t> out(n);
  switch (t.dtype) {
    case StDtype::I64:
      if (n) std::memcpy(out.data(), p, n * 8);
      break;
    case StDtype::I32:
      for (size_t i = 0; i < n; ++i) out[i] = load<int32_t>(p + 4 * i);
      break;
    default:
      fail_file(path, "tensor " + single_quoted(name) + " has dtype " + st_dtype_name(t.dtype) +
                          ", expected I32 or I64");
  }
  return out;
}

SafeTensorsFile safetensors_read(const std::string& path) {
  SafeTensorsFile file;
  file.path = path;
  file.mapping = MappedFile(path);
  const uint8_t* bytes = file.mapping.data;
  const size_t file_size = file.mapping.size;
  if (file_size < 8) {
    fail_file(path, "too short for a safetensors file (" + std::to_string(file_size) +
                        " bytes, the header size alone takes 8)");
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderSize) {
    fail_file(path, "header size " + std::to_string(header_size) +
                        " is absurd (over 100 MB); not a safetensors file?");
  }
  if (header_size > file_size - 8) {
    fail_file(path, "header size " + std::to_string(header_size) + " exceeds the file size (" +
                        std::to_string(file_size) + " bytes); truncated?");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes + 8), size_t(header_size));
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    // Every kind: a number such as 1e309 is out_of_range, not a parse_error.  Without nlohmann's
    // "[json.exception.parse_error.101] " prefix; line/column and cause kept.
    fail_file(path, "header is not valid JSON: " + printable(json_exception_text(e)));
  }
  if (!header.is_object()) fail_file(path, "header is not a JSON object");

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
  file.data = std::span<const uint8_t>(bytes + 8 + header_size, data_size);
  return file;
}

namespace {

// Writes `n` floats rounded to BF16 or F16, a block at a time (the converted copy never exists
// whole).
void write_converted(AtomicFile& out, const float* src, size_t n, StDtype dtype) {
  constexpr size_t kBlock = size_t(1) << 20;
  std::vector<uint16_t> buf(std::min(n, kBlock));
  for (size_t i = 0; i < n; i += kBlock) {
    const size_t m = std::min(kBlock, n - i);
    if (dtype == StDtype::BF16) {
      for (size_t k = 0; k < m; ++k) buf[k] = f32_to_bf16(src[i + k]);
    } else {
      for (size_t k = 0; k < m; ++k) buf[k] = f32_to_f16(src[i + k]);
    }
    out.write(buf.data(), m * 2);
  }
}

}  // namespace

void safetensors_write(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata, uint64_t* xxh64) {
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
    if (t.data_is_f32 && t.dtype != StDtype::BF16 && t.dtype != StDtype::F16 &&
        t.dtype != StDtype::F32) {
      fail_file(path, what + ": F32 data can be written as F32, BF16 or F16, not " +
                          st_dtype_name(t.dtype));
    }
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
  AtomicFile out(path);
  Xxhash64Stream hash;
  if (xxh64) out.hash = &hash;
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafeTensorOut& t = *sorted[i];
    if (t.data_is_f32 && t.dtype != StDtype::F32) {
      write_converted(out, static_cast<const float*>(t.data), sizes[i] / 2, t.dtype);
    } else {
      out.write(t.data, sizes[i]);
    }
  }
  out.commit();
  if (xxh64) *xxh64 = hash.digest();
}

// ---- Hugging Face model directories ----

const SafeTensorsFile* SafeTensorsModel::file_of(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : it->second.first;
}

namespace {

// A shard name from an index: a plain file name inside the directory, nothing that walks out.
bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

}  // namespace

SafeTensorsModel safetensors_open_model(const std::string& dir) {
  namespace fs = std::filesystem;
  SafeTensorsModel model;
  model.dir = dir;
  const std::string index_path = (fs::path(dir) / kSafetensorsIndexName).string();
  const std::string single_path = (fs::path(dir) / kSafetensorsSingleName).string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_file(dir, "not a directory");

  if (!fs::exists(index_path, ec)) {
    if (!fs::exists(single_path, ec)) {
      fail_file(dir, std::string("no ") + kSafetensorsSingleName + " or " + kSafetensorsIndexName);
    }
    model.files.push_back(safetensors_read(single_path));
    for (const SafeTensorInfo& t : model.files[0].tensors) {
      model.tensors[t.name] = {&model.files[0], &t};
    }
    return model;
  }

  model.index_path = index_path;
  json index;
  {
    const MappedFile text(index_path);
    try {
      index = json::parse(std::string_view(reinterpret_cast<const char*>(text.data), text.size));
    } catch (const json::exception& e) {
      fail_file(index_path, "not valid JSON: " + printable(json_exception_text(e)));
    }
  }
  if (!index.is_object()) fail_file(index_path, "not a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    fail_file(index_path, "missing the \"weight_map\" object");
  }
  // Shards in order of first mention, each opened once.
  std::vector<std::string> shard_names;
  std::map<std::string, size_t> shard_of_name;
  std::vector<std::pair<std::string, size_t>> placed;  // tensor, shard
  for (const auto& [name, value] : wm->items()) {
    if (!value.is_string() || !plain_file_name(value.get<std::string>())) {
      fail_file(index_path, "weight_map entry " + single_quoted(name) +
                                " is not a file name inside the directory");
    }
    const std::string& shard = value.get_ref<const std::string&>();
    auto [it, fresh] = shard_of_name.try_emplace(shard, shard_names.size());
    if (fresh) shard_names.push_back(shard);
    placed.emplace_back(name, it->second);
  }
  for (const std::string& shard : shard_names) {
    const std::string path = (fs::path(dir) / shard).string();
    if (!fs::exists(path, ec)) {
      fail_file(path, std::string("missing shard (named by ") + kSafetensorsIndexName + ")");
    }
    model.files.push_back(safetensors_read(path));
  }
  // files is complete: pointers into it are stable from here on.
  for (const auto& [name, shard] : placed) {
    const SafeTensorsFile& file = model.files[shard];
    const SafeTensorInfo* t = file.find(name);
    if (!t) {
      fail_file(file.path, "no tensor " + single_quoted(name) + ", which " + kSafetensorsIndexName +
                               " places in this shard");
    }
    model.tensors[name] = {&file, t};
  }
  // The other direction: a tensor the index does not place here would be silently ignored (or be a
  // second copy of one it places elsewhere).
  for (const SafeTensorsFile& file : model.files) {
    for (const SafeTensorInfo& t : file.tensors) {
      auto it = model.tensors.find(t.name);
      if (it == model.tensors.end() || it->second.first != &file) {
        fail_file(file.path, "tensor " + single_quoted(t.name) +
                                 " is not placed in this shard by " + kSafetensorsIndexName);
      }
    }
  }
  return model;
}

std::vector<std::string> safetensors_write_model(
    const std::string& dir, const std::vector<SafeTensorOut>& tensors, size_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata) {
  namespace fs = std::filesystem;
  // Shard assignment in the given order, by data bytes (the header is not counted, as in
  // huggingface_hub).
  std::vector<std::vector<SafeTensorOut>> shards(1);
  size_t current = 0, total = 0;
  for (const SafeTensorOut& t : tensors) {
    size_t bytes;
    if (!shape_bytes(t.shape, st_dtype_size(t.dtype), &bytes)) {
      fail_file(dir, "tensor " + single_quoted(t.name) + ": invalid shape " + shape_str(t.shape));
    }
    if (!shards.back().empty() && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += bytes;
    total += bytes;
  }
  if (shards.size() == 1) {
    safetensors_write((fs::path(dir) / kSafetensorsSingleName).string(), tensors, metadata);
    return {kSafetensorsSingleName};
  }

  std::vector<std::string> written;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::map<std::string, std::string> by_name;  // the index lists tensors sorted by name
  const size_t n = shards.size();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    safetensors_write((fs::path(dir) / name).string(), shards[i], metadata);
    written.push_back(name);
    for (const SafeTensorOut& t : shards[i]) by_name[t.name] = name;
  }
  for (const auto& [tensor, file] : by_name) weight_map[tensor] = file;
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                  {"weight_map", weight_map}};
  write_file_atomic((fs::path(dir) / kSafetensorsIndexName).string(), index.dump(2) + "\n");
  written.push_back(kSafetensorsIndexName);
  return written;
}

}  // namespace hibari
