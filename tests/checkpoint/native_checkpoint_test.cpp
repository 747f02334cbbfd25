// checkpoint/native_checkpoint.h: atomic step directories, `latest`, keep-K, NaN refusal, and
// verification with fallback to the previous checkpoint.
#include "checkpoint/native_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

CheckpointContent content_of(int64_t step, const std::vector<float>& values) {
  CheckpointContent c;
  c.step = step;
  c.tensor_files["model"] = {{"w", {int64_t(values.size())}, values.data()}};
  c.text_files["state.json"] = "{\"step\": " + std::to_string(step) + "}\n";
  return c;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(NativeCheckpoint, WritesReadsAndKeepsTheNewest) {
  test::ScratchDir dir("native_checkpoint");
  const std::string root = (dir.path / "ckpt").string();
  std::vector<float> values = {1.5f, -2.0f, 3.25f};
  for (int64_t step : {10, 20, 30, 40}) {
    values[0] = float(step);
    write_checkpoint(root, content_of(step, values), 2);
  }
  EXPECT_EQ(read(dir.path / "ckpt" / "latest"), "step_000040\n");
  EXPECT_FALSE(fs::exists(dir.path / "ckpt" / "step_000020"));
  EXPECT_TRUE(fs::exists(dir.path / "ckpt" / "step_000030"));
  std::vector<std::string> notes;
  auto c = load_latest_checkpoint(root, &notes);
  ASSERT_TRUE(c);
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(c->step, 40);
  EXPECT_EQ(c->tensors("model").read_f32("w"), (std::vector<float>{40.0f, -2.0f, 3.25f}));
  EXPECT_EQ(c->text("state.json"), "{\"step\": 40}\n");
  EXPECT_THROW(c->text("absent.json"), Error);
}

TEST(NativeCheckpoint, NoCheckpointIsNull) {
  test::ScratchDir dir("native_checkpoint");
  EXPECT_EQ(load_latest_checkpoint((dir.path / "none").string(), nullptr), nullptr);
}

TEST(NativeCheckpoint, NanIsRefusedAndTheLatestStays) {
  test::ScratchDir dir("native_checkpoint");
  const std::string root = (dir.path / "ckpt").string();
  std::vector<float> good = {1, 2, 3}, bad = {1, std::numeric_limits<float>::quiet_NaN(), 3};
  write_checkpoint(root, content_of(1, good), 0);
  try {
    write_checkpoint(root, content_of(2, bad), 0);
    FAIL() << "a NaN checkpoint was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model/w holds NaN or Inf"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir.path / "ckpt" / "step_000002"));
  EXPECT_EQ(read(dir.path / "ckpt" / "latest"), "step_000001\n");
}

// Damage of each kind to the newest checkpoint: the previous one is taken, with a note naming the
// file and the problem.  When every checkpoint is damaged: an Error.
TEST(NativeCheckpoint, CorruptNewestFallsBack) {
  struct Damage {
    const char* file;
    const char* problem;
    void (*apply)(const fs::path&);
  };
  const Damage damages[] = {
      {"model.safetensors", "checksum mismatch",
       [](const fs::path& p) {
         std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(-2, std::ios::end);
         f.put('\x55');
       }},
      {"model.safetensors", "truncated", [](const fs::path& p) { fs::resize_file(p, 20); }},
      {"state.json", "missing from the checkpoint", [](const fs::path& p) { fs::remove(p); }},
      {"manifest.json", "malformed manifest",
       [](const fs::path& p) { std::ofstream(p) << "{\"format\": "; }},
  };
  for (const Damage& d : damages) {
    test::ScratchDir dir("native_checkpoint");
    const std::string root = (dir.path / "ckpt").string();
    std::vector<float> values = {1, 2, 3};
    write_checkpoint(root, content_of(1, values), 0);
    write_checkpoint(root, content_of(2, values), 0);
    d.apply(dir.path / "ckpt" / "step_000002" / d.file);
    std::vector<std::string> notes;
    auto c = load_latest_checkpoint(root, &notes);
    ASSERT_TRUE(c) << d.problem;
    EXPECT_EQ(c->step, 1) << d.problem;
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find(d.problem), std::string::npos) << notes[0];
    EXPECT_NE(notes[0].find("step_000002"), std::string::npos) << notes[0];
    d.apply(dir.path / "ckpt" / "step_000001" / d.file);
    EXPECT_THROW(load_latest_checkpoint(root, nullptr), Error) << d.problem;
  }
}

TEST(NativeCheckpoint, LeftoversOfAKilledWriteAreIgnoredAndRemoved) {
  test::ScratchDir dir("native_checkpoint");
  const std::string root = (dir.path / "ckpt").string();
  std::vector<float> values = {1, 2, 3};
  write_checkpoint(root, content_of(1, values), 0);
  fs::create_directories(dir.path / "ckpt" / "step_000002.tmp.12345");
  std::ofstream(dir.path / "ckpt" / "step_000002.tmp.12345" / "model.safetensors") << "half";
  auto c = load_latest_checkpoint(root, nullptr);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->step, 1);
  write_checkpoint(root, content_of(3, values), 0);
  EXPECT_FALSE(fs::exists(dir.path / "ckpt" / "step_000002.tmp.12345"));
}

// A step whose manifest.json is gone is recognized by what else the trainer writes, so readers
// refuse it instead of taking it for an unverified Hugging Face directory (issue 13, item 4).
TEST(NativeCheckpoint, StepWithoutManifestIsRecognizedAndRefused) {
  test::ScratchDir dir("native_checkpoint");
  const fs::path root = dir.path / "ckpt";
  std::vector<float> values = {1, 2, 3};
  write_checkpoint(root.string(), content_of(7, values), 0);
  const std::string step = (root / "step_000007").string();
  EXPECT_FALSE(is_step_without_manifest(step));  // intact
  EXPECT_NO_THROW(refuse_step_without_manifest(step));
  EXPECT_FALSE(is_step_without_manifest(root.string()));  // the root is no step
  fs::remove(root / "step_000007" / "manifest.json");
  EXPECT_TRUE(is_step_without_manifest(step));
  EXPECT_TRUE(is_step_without_manifest(step + "/"));
  EXPECT_TRUE(test::one_line_error(
      test::error_of([&] { refuse_step_without_manifest(step); }), step,
      "a hibari checkpoint step without manifest.json (incomplete or damaged: its files cannot be "
      "verified); pass the checkpoint root " +
          root.string() + " to use its newest intact step"));

  // Each signature alone: state.json; optimizer.safetensors; model.safetensors written by hibari.
  fs::remove(root / "step_000007" / "state.json");
  EXPECT_TRUE(is_step_without_manifest(step));  // model.safetensors says "format": "hibari"
  const fs::path other = dir.path / "elsewhere";
  fs::create_directories(other);
  const float w[2] = {1, 2};
  safetensors_write((other / "model.safetensors").string(), {{"w", StDtype::F32, {2}, w}},
                    {{"format", "pt"}});
  std::ofstream(other / "config.json") << "{}";
  EXPECT_FALSE(is_step_without_manifest(other.string()));  // a Hugging Face directory
  std::ofstream(other / "state.json") << "{}";
  EXPECT_TRUE(is_step_without_manifest(other.string()));
  fs::remove(other / "state.json");
  safetensors_write((other / "optimizer.safetensors").string(), {{"w", StDtype::F32, {2}, w}});
  EXPECT_TRUE(is_step_without_manifest(other.string()));
  fs::remove(other / "optimizer.safetensors");

  // A Hugging Face export named like a step counts as one only beside a root's `latest`.
  const fs::path named = dir.path / "exports" / "step_000100";
  fs::create_directories(named);
  fs::copy(other / "model.safetensors", named / "model.safetensors");
  EXPECT_FALSE(is_step_without_manifest(named.string()));
  std::ofstream(dir.path / "exports" / "latest") << "step_000100\n";
  EXPECT_TRUE(is_step_without_manifest(named.string()));
  // So does a write that never finished.
  fs::create_directories(root / "step_000008.tmp.4242");
  EXPECT_TRUE(is_step_without_manifest((root / "step_000008.tmp.4242").string()));
  EXPECT_FALSE(is_step_without_manifest((dir.path / "nowhere").string()));
}

}  // namespace
}  // namespace hibari
