// checkpoint/sharded_checkpoint.cpp — see sharded_checkpoint.h.
#include "checkpoint/sharded_checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"

namespace hibari {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "hibari-checkpoint";
constexpr const char* kShardFormat = "hibari-shard";

std::string hex64(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)v);
  return text;
}

// (R, C) of a 1-D or 2-D shape.
void as_matrix(const std::vector<int64_t>& shape, int64_t& rows, int64_t& cols) {
  if (shape.size() == 1) {
    rows = 1;
    cols = shape[0];
  } else if (shape.size() == 2) {
    rows = shape[0];
    cols = shape[1];
  } else {
    fail("sharded checkpoint: tensors are 1-D or 2-D, not " + std::to_string(shape.size()) + "-D");
  }
}

nlohmann::json slice_json(const TensorSlice& s) {
  return {{"box", {s.r0, s.r1, s.c0, s.c1}}, {"range", {s.begin, s.end}}};
}

// A slice from {"box": [...], "range": [...]}, checked to lie inside a (rows, cols) tensor.
TensorSlice slice_from_json(const nlohmann::json& j, int64_t rows, int64_t cols,
                            const std::string& path) {
  TensorSlice s;
  const nlohmann::json& box = j.at("box");
  const nlohmann::json& range = j.at("range");
  s.r0 = box.at(0).get<int64_t>();
  s.r1 = box.at(1).get<int64_t>();
  s.c0 = box.at(2).get<int64_t>();
  s.c1 = box.at(3).get<int64_t>();
  s.begin = range.at(0).get<int64_t>();
  s.end = range.at(1).get<int64_t>();
  if (s.r0 < 0 || s.r0 >= s.r1 || s.r1 > rows || s.c0 < 0 || s.c0 >= s.c1 || s.c1 > cols ||
      s.begin < 0 || s.begin >= s.end || s.end > s.box_numel())
    fail_file(path, "a piece " + j.dump() + " lies outside its tensor");
  return s;
}

// The safetensors header of `path` (8 bytes of length, then JSON), read without mapping the data.
nlohmann::json read_header(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open", errno);
  uint8_t len[8];
  uint64_t n = 0;
  std::string text;
  bool ok = ::pread(fd, len, 8, 0) == 8;
  if (ok) {
    for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
    ok = n < (uint64_t(1) << 30);
  }
  if (ok) {
    text.resize(n);
    ok = ::pread(fd, text.data(), n, 8) == ssize_t(n);
  }
  ::close(fd);
  if (!ok) fail_file(path, "truncated or not a safetensors file");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "malformed safetensors header");
  }
}

// XXH64 of a file read in bounded chunks (no mapping: the pages never count as this process's).
uint64_t stream_xxh64(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open", errno);
  Xxhash64Stream hash;
  std::vector<char> buffer(size_t(4) << 20);
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      const int err = errno;
      ::close(fd);
      fail_errno(path, "cannot read", err);
    }
    if (got == 0) break;
    hash.update(buffer.data(), size_t(got));
  }
  ::close(fd);
  return hash.digest();
}

std::string dir_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%06lld", (long long)step);
  return name;
}

}  // namespace

TensorSlice whole_slice(const std::vector<int64_t>& shape) {
  TensorSlice s;
  as_matrix(shape, s.r1, s.c1);
  s.end = s.box_numel();
  return s;
}

std::string shard_file_name(int rank) {
  char name[48];
  std::snprintf(name, sizeof name, "shard-%05d.safetensors", rank);
  return name;
}

uint64_t write_shard_file(const std::string& path, const std::vector<ShardPiece>& pieces,
                          int64_t step, uint64_t* bytes) {
  nlohmann::json list = nlohmann::json::array();
  std::vector<SafeTensorOut> out;
  for (const ShardPiece& p : pieces) {
    const int64_t n = p.slice.end - p.slice.begin;
    bool finite = true;
    for (int64_t i = 0; i < n; ++i) finite &= std::isfinite(p.data[i]);
    if (!finite)
      fail("checkpoint of step " + std::to_string(step) + " refused: " + p.tensor +
           " holds NaN or Inf; the previous checkpoint stays the latest");
    nlohmann::json j = slice_json(p.slice);
    j["tensor"] = p.tensor;
    j["shape"] = p.shape;
    list.push_back(std::move(j));
    out.push_back({p.tensor, StDtype::F32, {n}, p.data});
  }
  uint64_t hash = 0;
  safetensors_write(path, out, {{"format", kShardFormat}, {"pieces", list.dump()}}, &hash);
  *bytes = fs::file_size(path);
  return hash;
}

void write_sharded_manifest(const std::string& tmp_dir, int64_t step,
                            const std::vector<ShardFileRecord>& shards,
                            const std::map<std::string, std::string>& text_files,
                            const std::string& layout_json) {
  nlohmann::json files = nlohmann::json::object();
  nlohmann::json tensors = nlohmann::json::object();
  std::map<std::string, int64_t> covered;
  for (const ShardFileRecord& s : shards) {
    files[s.name] = {{"bytes", s.bytes}, {"xxh64", hex64(s.xxh64)}};
    const std::string path = tmp_dir + "/" + s.name;
    nlohmann::json header = read_header(path);
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(header.at("__metadata__").at("pieces").get<std::string>());
    } catch (const nlohmann::json::exception&) {
      fail_file(path, "no piece list in its metadata: not a hibari shard file");
    }
    for (const nlohmann::json& j : list) {
      const std::string name = j.at("tensor").get<std::string>();
      nlohmann::json& t = tensors[name];
      if (t.is_null()) t = {{"shape", j.at("shape")}, {"dtype", "F32"}, {"pieces", {}}};
      if (t["shape"] != j.at("shape")) fail_file(path, name + ": a shape other ranks disagree on");
      nlohmann::json piece = {{"file", s.name}, {"box", j.at("box")}, {"range", j.at("range")}};
      covered[name] += j.at("range").at(1).get<int64_t>() - j.at("range").at(0).get<int64_t>();
      t["pieces"].push_back(std::move(piece));
    }
  }
  for (const auto& [name, t] : tensors.items()) {
    int64_t rows = 0, cols = 0;
    as_matrix(t.at("shape").get<std::vector<int64_t>>(), rows, cols);
    if (covered[name] != rows * cols)
      fail("checkpoint of step " + std::to_string(step) + ": the ranks' pieces of " + name +
           " hold " + std::to_string(covered[name]) + " elements, the tensor " +
           std::to_string(rows * cols));
  }
  for (const auto& [file, text] : text_files) {
    write_file_atomic(tmp_dir + "/" + file, text);
    files[file] = {{"bytes", text.size()}, {"xxh64", hex64(xxhash64(text.data(), text.size()))}};
  }
  nlohmann::json manifest = {{"format", kFormat}, {"version", kShardedCheckpointVersion},
                             {"step", step},      {"layout", nlohmann::json::parse(layout_json)},
                             {"files", files},    {"tensors", tensors}};
  write_file_atomic(tmp_dir + "/manifest.json", manifest.dump(1) + "\n");
}

std::string sharded_begin(const std::string& root, int64_t step, long leader_pid) {
  fs::create_directories(root);
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find(".tmp.") != std::string::npos)
      fs::remove_all(e.path(), ec);
  }
  const std::string tmp = root + "/" + dir_name(step) + ".tmp." + std::to_string(leader_pid);
  fs::create_directories(tmp);
  return tmp;
}

void sharded_commit(const std::string& root, int64_t step, const std::string& tmp_dir, int keep) {
  fsync_dir(tmp_dir);
  const std::string name = dir_name(step);
  const std::string final_dir = root + "/" + name;
  std::error_code ec;
  if (fs::exists(final_dir, ec)) fs::remove_all(final_dir, ec);  // a rewrite of the same step
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0)
    fail_errno(final_dir, "cannot rename " + tmp_dir + " to it", errno);
  fsync_dir(root);
  write_file_atomic(root + "/latest", name + "\n");
  if (keep > 0) {
    std::vector<std::pair<int64_t, std::string>> all = checkpoint_step_dirs(root);
    for (size_t i = size_t(keep); i < all.size(); ++i) fs::remove_all(all[i].second, ec);
    fsync_dir(root);
  }
}

// ---- reading ----

std::vector<std::pair<int64_t, std::string>> checkpoint_step_dirs(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= 5 || name.compare(0, 5, "step_") != 0 || !e.is_directory()) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    found.push_back({std::stoll(name.substr(5)), e.path().string()});
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

const std::string& ShardedCheckpoint::text(const std::string& name) const {
  auto it = text_files.find(name);
  if (it == text_files.end()) fail_file(dir + "/" + name, "missing from the checkpoint");
  return it->second;
}

const ShardedCheckpoint::Tensor& ShardedCheckpoint::tensor(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail_file(dir + "/manifest.json", "no tensor " + name);
  return it->second;
}

int checkpoint_manifest_version(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return 0;
  try {
    MappedFile file(path);
    nlohmann::json m = nlohmann::json::parse(file.data, file.data + file.size);
    if (m.at("format") != kFormat) return 0;
    return m.at("version").get<int>();
  } catch (const std::exception&) {
    return 0;
  }
}

ShardedCheckpoint sharded_open(const std::string& dir) {
  const std::string manifest_path = dir + "/manifest.json";
  if (!fs::exists(manifest_path)) fail_file(manifest_path, "missing: not a complete checkpoint");
  ShardedCheckpoint c;
  c.dir = dir;
  try {
    MappedFile file(manifest_path);
    nlohmann::json m = nlohmann::json::parse(file.data, file.data + file.size);
    if (m.at("format") != kFormat || m.at("version") != kShardedCheckpointVersion)
      fail_file(manifest_path, "not a sharded hibari checkpoint (version 2)");
    c.step = m.at("step").get<int64_t>();
    for (const auto& [name, info] : m.at("files").items()) {
      const std::string path = dir + "/" + name;
      if (name.find('/') != std::string::npos || !fs::exists(path))
        fail_file(path, "missing from the checkpoint");
      ShardedCheckpoint::File f;
      f.bytes = info.at("bytes").get<uint64_t>();
      f.xxh64 = info.at("xxh64").get<std::string>();
      if (fs::file_size(path) != f.bytes)
        fail_file(path, "is " + std::to_string(fs::file_size(path)) + " bytes, the manifest says " +
                            std::to_string(f.bytes) + " (truncated or replaced)");
      const std::string suffix = ".safetensors";
      const bool tensors = name.size() > suffix.size() &&
                           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (!tensors) {
        MappedFile text(path);
        if (hex64(xxhash64(text.data, text.size)) != f.xxh64)
          fail_file(path, "checksum mismatch (the file is corrupt)");
        c.text_files[name] = std::string(reinterpret_cast<const char*>(text.data), text.size);
      }
      c.files.emplace(name, std::move(f));
    }
    for (const auto& [name, info] : m.at("tensors").items()) {
      ShardedCheckpoint::Tensor t;
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      as_matrix(t.shape, t.rows, t.cols);
      if (info.at("dtype") != "F32") fail_file(manifest_path, name + ": dtype is not F32");
      for (const nlohmann::json& p : info.at("pieces")) {
        const std::string file = p.at("file").get<std::string>();
        if (!c.files.count(file))
          fail_file(manifest_path, name + ": a piece in " + file + ", which it does not list");
        t.pieces.push_back({file, slice_from_json(p, t.rows, t.cols, manifest_path)});
      }
      c.tensors.emplace(name, std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    fail_file(manifest_path, std::string("malformed manifest: ") + e.what());
  }
  return c;
}

namespace {

// The piece's floats, mapping its file (checksum first) on first use.
const float* piece_data(ShardedCheckpoint& c, const std::string& tensor,
                        const ShardedCheckpoint::Piece& p) {
  ShardedCheckpoint::File& f = c.files.at(p.file);
  const std::string path = c.dir + "/" + p.file;
  if (!f.mapped) {
    if (hex64(stream_xxh64(path)) != f.xxh64)
      fail_file(path, "checksum mismatch (the file is corrupt)");
    f.mapped = std::make_unique<SafeTensorsFile>(safetensors_read(path));
  }
  std::span<const float> v =
      f.mapped->view_f32(tensor, {p.slice.end - p.slice.begin});  // names the file when absent
  return v.data();
}

}  // namespace

void sharded_read(ShardedCheckpoint& c, const std::string& tensor, const TensorSlice& s,
                  float* out) {
  const ShardedCheckpoint::Tensor& t = c.tensor(tensor);
  const int64_t ws = s.c1 - s.c0;
  if (s.r0 < 0 || s.r1 > t.rows || s.c0 < 0 || s.c1 > t.cols || ws <= 0 || s.begin < 0 ||
      s.end > s.box_numel() || s.begin > s.end)
    fail(c.dir + ": a slice outside tensor " + tensor);
  if (s.begin == s.end) return;
  // The full-tensor rows the requested range touches.
  const int64_t s_first = s.r0 + s.begin / ws, s_last = s.r0 + (s.end - 1) / ws;
  int64_t copied = 0;
  for (const ShardedCheckpoint::Piece& p : t.pieces) {
    const TensorSlice& q = p.slice;
    const int64_t wp = q.c1 - q.c0;
    const int64_t first = std::max(s_first, q.r0 + q.begin / wp);
    const int64_t last = std::min(s_last, q.r0 + (q.end - 1) / wp);
    if (first > last || q.c1 <= s.c0 || s.c1 <= q.c0) continue;
    const float* data = nullptr;
    for (int64_t r = first; r <= last; ++r) {
      // Row r's columns in the piece and in the request (full-tensor column indices).
      const int64_t i = r - q.r0, j = r - s.r0;
      const int64_t pa = std::max(q.begin, i * wp) - i * wp,
                    pb = std::min(q.end, (i + 1) * wp) - i * wp;
      const int64_t sa = std::max(s.begin, j * ws) - j * ws,
                    sb = std::min(s.end, (j + 1) * ws) - j * ws;
      const int64_t a = std::max(q.c0 + pa, s.c0 + sa), b = std::min(q.c0 + pb, s.c0 + sb);
      if (a >= b) continue;
      if (!data) data = piece_data(c, tensor, p);
      std::memcpy(out + (j * ws + (a - s.c0) - s.begin), data + (i * wp + (a - q.c0) - q.begin),
                  size_t(b - a) * sizeof(float));
      copied += b - a;
    }
  }
  if (copied != s.end - s.begin)
    fail_file(c.dir + "/manifest.json", "the pieces of " + tensor + " do not cover the slice read");
}

void sharded_release(ShardedCheckpoint& c) {
  for (auto& [name, f] : c.files) f.mapped.reset();
}

namespace {

// Drops the mapped pages of every open file from this process (they stay in the page cache).
void drop_pages(ShardedCheckpoint& c) {
  for (auto& [name, f] : c.files) {
    if (!f.mapped || f.mapped->mapping.size == 0) continue;
    (void)::madvise(const_cast<unsigned char*>(f.mapped->mapping.data), f.mapped->mapping.size,
                    MADV_DONTNEED);
  }
}

}  // namespace

std::vector<std::string> sharded_export_weights(
    ShardedCheckpoint& c, const std::vector<std::pair<std::string, std::string>>& names,
    const std::string& dir, StDtype dtype, size_t max_shard_bytes) {
  if (dtype != StDtype::F32 && dtype != StDtype::BF16)
    fail("exporting a sharded checkpoint: dtype F32 or BF16");
  const size_t esize = st_dtype_size(dtype);
  // Files planned first (sizes are known from the manifest), as safetensors_write_model does.
  std::vector<std::vector<size_t>> files(1);
  size_t current = 0, total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const ShardedCheckpoint::Tensor& t = c.tensor(names[i].first);
    const size_t bytes = size_t(t.rows * t.cols) * esize;
    if (!files.back().empty() && current + bytes > max_shard_bytes) {
      files.emplace_back();
      current = 0;
    }
    files.back().push_back(i);
    current += bytes;
    total += bytes;
  }
  std::vector<std::string> written;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::vector<float> full;
  std::vector<uint16_t> half;
  for (size_t k = 0; k < files.size(); ++k) {
    char name[64];
    if (files.size() == 1) {
      std::snprintf(name, sizeof name, "%s", kSafetensorsSingleName);
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, files.size());
    }
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    header["__metadata__"] = {{"format", "pt"}};
    size_t offset = 0;
    for (size_t i : files[k]) {
      const ShardedCheckpoint::Tensor& t = c.tensor(names[i].first);
      const size_t bytes = size_t(t.rows * t.cols) * esize;
      header[names[i].second] = {{"dtype", st_dtype_name(dtype)},
                                 {"shape", t.shape},
                                 {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
      weight_map[names[i].second] = name;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    AtomicFile out(dir + "/" + name);
    out.write(len, 8);
    out.write(text.data(), text.size());
    for (size_t i : files[k]) {
      const ShardedCheckpoint::Tensor& t = c.tensor(names[i].first);
      const size_t n = size_t(t.rows * t.cols);
      full.resize(n);  // one tensor at a time
      sharded_read(c, names[i].first, whole_slice(t.shape), full.data());
      drop_pages(c);
      if (dtype == StDtype::F32) {
        out.write(full.data(), n * sizeof(float));
      } else {
        half.resize(n);
        for (size_t e = 0; e < n; ++e) half[e] = f32_to_bf16(full[e]);
        out.write(half.data(), n * sizeof(uint16_t));
      }
    }
    out.commit();
    written.push_back(name);
  }
  if (files.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                    {"weight_map", weight_map}};
    write_file_atomic(dir + "/" + kSafetensorsIndexName, index.dump(2) + "\n");
    written.push_back(kSafetensorsIndexName);
  }
  return written;
}

}  // namespace hibari
