// checkpoint/native_checkpoint.cpp — see native_checkpoint.h.
#include "checkpoint/native_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"

namespace hibari {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "hibari-checkpoint";
constexpr int kVersion = 1;

std::string hex64(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)v);
  return text;
}

uint64_t file_xxh64(const std::string& path) {
  MappedFile file(path);
  return xxhash64(file.data, file.size);
}

// The step of a directory named step_NNNNNN (no suffix), or -1.
int64_t step_of(const std::string& name) {
  if (name.size() <= 5 || name.compare(0, 5, "step_") != 0) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Complete checkpoint directories under root, newest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    int64_t step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_directory()) found.push_back({step, e.path().string()});
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

// Temporary directories of writes that never finished (a killed process).
void remove_stale_temps(const std::string& root) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find(".tmp.") != std::string::npos)
      fs::remove_all(e.path(), ec);
  }
}

void refuse_non_finite(const CheckpointContent& content) {
  for (const auto& [stem, tensors] : content.tensor_files) {
    for (const CheckpointTensor& t : tensors) {
      size_t n = 1;
      for (int64_t d : t.shape) n *= size_t(d);
      bool finite = true;
      for (size_t i = 0; i < n; ++i) finite &= std::isfinite(t.data[i]);
      if (!finite)
        fail("checkpoint of step " + std::to_string(content.step) + " refused: " + stem + "/" +
             t.name + " holds NaN or Inf; the previous checkpoint stays the latest");
    }
  }
}

// DIR made absolute, without "." or a trailing slash, so that its name and parent are the folders.
fs::path absolute_dir(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(dir), ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%06lld", (long long)step);
  return name;
}

void write_checkpoint(const std::string& root, const CheckpointContent& content, int keep) {
  refuse_non_finite(content);
  fs::create_directories(root);
  remove_stale_temps(root);
  const std::string name = checkpoint_dir_name(content.step);
  const std::string final_dir = (fs::path(root) / name).string();
  std::error_code ec;
  if (fs::exists(final_dir, ec)) fs::remove_all(final_dir, ec);  // a rewrite of the same step

  AtomicDir dir(final_dir);
  nlohmann::json files = nlohmann::json::object();
  // Checksums are taken of the bytes as they are written, not read back.
  auto record = [&](const std::string& file, uint64_t hash) {
    files[file] = {{"bytes", fs::file_size(dir.file(file))}, {"xxh64", hex64(hash)}};
  };
  for (const auto& [stem, tensors] : content.tensor_files) {
    std::vector<SafeTensorOut> out;
    for (const CheckpointTensor& t : tensors)
      out.push_back({t.name, StDtype::F32, t.shape, t.data});
    uint64_t hash = 0;
    safetensors_write(dir.file(stem + ".safetensors"), out, {{"format", "hibari"}}, &hash);
    record(stem + ".safetensors", hash);
  }
  for (const auto& [file, text] : content.text_files) {
    write_file_atomic(dir.file(file), text);
    record(file, xxhash64(text.data(), text.size()));
  }
  nlohmann::json manifest = {
      {"format", kFormat}, {"version", kVersion}, {"step", content.step}, {"files", files}};
  write_file_atomic(dir.file("manifest.json"), manifest.dump(2) + "\n");
  dir.commit();
  write_file_atomic((fs::path(root) / "latest").string(), name + "\n");

  if (keep > 0) {
    std::vector<std::pair<int64_t, std::string>> all = list_checkpoints(root);
    for (size_t i = size_t(keep); i < all.size(); ++i) fs::remove_all(all[i].second, ec);
    fsync_dir(root);
  }
}

LoadedCheckpoint load_checkpoint(const std::string& dir) {
  const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
  if (!fs::exists(manifest_path)) fail_file(manifest_path, "missing: not a complete checkpoint");
  nlohmann::json manifest;
  try {
    MappedFile file(manifest_path);
    manifest = nlohmann::json::parse(file.data, file.data + file.size);
    if (manifest.at("format") != kFormat) fail_file(manifest_path, "not a hibari checkpoint");
    if (manifest.at("version") != kVersion)
      fail_file(manifest_path, "checkpoint version " + manifest.at("version").dump() +
                                   " is not supported (this hibari reads " +
                                   std::to_string(kVersion) + ")");
  } catch (const nlohmann::json::exception& e) {
    fail_file(manifest_path, std::string("malformed manifest: ") + e.what());
  }
  LoadedCheckpoint c;
  c.dir = dir;
  try {
    c.step = manifest.at("step").get<int64_t>();
    for (const auto& [file, info] : manifest.at("files").items()) {
      const std::string path = (fs::path(dir) / file).string();
      if (file.find('/') != std::string::npos || !fs::exists(path))
        fail_file(path, "missing from the checkpoint");
      const uint64_t bytes = info.at("bytes").get<uint64_t>();
      if (fs::file_size(path) != bytes)
        fail_file(path, "is " + std::to_string(fs::file_size(path)) + " bytes, the manifest says " +
                            std::to_string(bytes) + " (truncated or replaced)");
      if (hex64(file_xxh64(path)) != info.at("xxh64").get<std::string>())
        fail_file(path, "checksum mismatch (the file is corrupt)");
      const std::string suffix = ".safetensors";
      if (file.size() > suffix.size() &&
          file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
        c.tensor_files.emplace(file.substr(0, file.size() - suffix.size()), safetensors_read(path));
      } else {
        MappedFile text(path);
        c.text_files[file] = std::string(reinterpret_cast<const char*>(text.data), text.size);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail_file(manifest_path, std::string("malformed manifest: ") + e.what());
  }
  return c;
}

namespace {

// What is wrong with the sharded step DIR (its manifest, a file's size or checksum), or that it is
// intact.
std::string sharded_problem(const std::string& dir) {
  try {
    const ShardedCheckpoint c = sharded_open(dir);
    for (const auto& [name, f] : c.files) {
      const std::string path = dir + "/" + name;
      if (hex64(file_xxh64(path)) != f.xxh64)
        return path + ": checksum mismatch (the file is corrupt)";
    }
  } catch (const Error& e) {
    return e.what();
  }
  return dir + ": an intact sharded checkpoint (version 2), not a one-file-set one";
}

}  // namespace

std::unique_ptr<LoadedCheckpoint> load_latest_checkpoint(const std::string& root,
                                                         std::vector<std::string>* notes) {
  std::vector<std::pair<int64_t, std::string>> all = list_checkpoints(root);
  std::string first_problem, newest_sharded;
  for (const auto& [step, dir] : all) {
    if (checkpoint_manifest_version(dir) == kShardedCheckpointVersion) {
      // A parallel run's step: read by its own readers (train/distributed_checkpoint.h, which
      // notes a corrupt one, infer/model_loader.h, convert), passed over here without a note.
      if (first_problem.empty() && newest_sharded.empty()) newest_sharded = dir;
      continue;
    }
    try {
      return std::make_unique<LoadedCheckpoint>(load_checkpoint(dir));
    } catch (const Error& e) {
      if (first_problem.empty()) first_problem = e.what();
      if (notes) notes->push_back(std::string("skipping a corrupt checkpoint: ") + e.what());
    }
  }
  if (all.empty()) return nullptr;
  if (!newest_sharded.empty()) first_problem = sharded_problem(newest_sharded);
  fail("no intact checkpoint in " + root + "; the newest: " + first_problem);
}

bool is_step_without_manifest(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (!fs::is_directory(d, ec) || fs::exists(d / "manifest.json", ec)) return false;
  // Files only the trainer writes (train/train_checkpoint.h).
  if (fs::exists(d / "optimizer.safetensors", ec) || fs::exists(d / "state.json", ec)) return true;
  const fs::path model = d / "model.safetensors";
  if (fs::is_regular_file(model, ec)) {
    try {
      const SafeTensorsFile f = safetensors_read(model.string());
      auto it = f.metadata.find("format");
      if (it != f.metadata.end() && it->second == "hibari") return true;
    } catch (const std::exception&) {
      // unreadable: whoever reads it as a Hugging Face file reports that
    }
  }
  // step_000123 or an unfinished step_000123.tmp.PID, beside the root's `latest`.
  const fs::path step = absolute_dir(dir);
  const std::string name = step.filename().string();
  if (step_of(name.substr(0, name.find(".tmp."))) < 0) return false;
  return fs::exists(step.parent_path() / "latest", ec);
}

void refuse_step_without_manifest(const std::string& dir) {
  if (!is_step_without_manifest(dir)) return;
  fail_file(dir,
            "a hibari checkpoint step without manifest.json (incomplete or damaged: its files "
            "cannot be verified); pass the checkpoint root " +
                absolute_dir(dir).parent_path().string() + " to use its newest intact step");
}

const std::string& LoadedCheckpoint::text(const std::string& name) const {
  auto it = text_files.find(name);
  if (it == text_files.end()) fail_file(dir + "/" + name, "missing from the checkpoint");
  return it->second;
}

const SafeTensorsFile& LoadedCheckpoint::tensors(const std::string& stem) const {
  auto it = tensor_files.find(stem);
  if (it == tensor_files.end())
    fail_file(dir + "/" + stem + ".safetensors", "missing from the checkpoint");
  return it->second;
}

}  // namespace hibari
