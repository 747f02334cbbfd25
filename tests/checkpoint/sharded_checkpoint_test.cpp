// checkpoint/sharded_checkpoint.h: pieces written by several "ranks" (tensor-parallel boxes cut
// again into ZeRO flat ranges), read back under other slicings, checked against the full tensors;
// a corrupt or missing shard is an error naming the file; export to Hugging Face files.
#include "checkpoint/sharded_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

struct Full {
  std::vector<int64_t> shape;
  int64_t rows, cols;
  std::vector<float> values;
};

std::map<std::string, Full> full_tensors() {
  std::map<std::string, Full> t;
  t["a"] = {{6, 8}, 6, 8, {}};  // column-split over tp 2
  t["b"] = {{5, 4}, 5, 4, {}};  // row-split... 5 rows: rows [0, 3) and [3, 5)
  t["n"] = {{7}, 1, 7, {}};     // a vector, replicated over tp
  int k = 0;
  for (auto& [name, f] : t) {
    f.values.resize(size_t(f.rows * f.cols));
    for (float& v : f.values) v = float(++k) * 0.5f;
  }
  return t;
}

// The box's values in row-major order.
std::vector<float> box_values(const Full& f, const TensorSlice& s) {
  std::vector<float> out;
  for (int64_t r = s.r0; r < s.r1; ++r)
    for (int64_t c = s.c0; c < s.c1; ++c) out.push_back(f.values[size_t(r * f.cols + c)]);
  return std::vector<float>(out.begin() + s.begin, out.begin() + s.end);
}

// tp 2 x dp 3: tp rank t holds its box; dp rank d owns an even third of the box's elements.
std::string write_layout(const std::string& root, int64_t step,
                         const std::map<std::string, Full>& full, std::vector<float>& storage) {
  const std::string tmp = sharded_begin(root, step, 4242);
  std::vector<ShardFileRecord> records;
  storage.reserve(1000);
  for (int tp = 0; tp < 2; ++tp) {
    for (int dp = 0; dp < 3; ++dp) {
      std::vector<ShardPiece> pieces;
      for (const auto& [name, f] : full) {
        TensorSlice box = whole_slice(f.shape);
        if (name == "a") box.c0 = tp * 4, box.c1 = tp * 4 + 4;
        if (name == "b") box.r0 = tp == 0 ? 0 : 3, box.r1 = tp == 0 ? 3 : 5;
        if (name == "n" && tp != 0) continue;
        const int64_t n = box.box_numel(), per = (n + 2) / 3;
        box.begin = std::min(n, dp * per);
        box.end = std::min(n, (dp + 1) * per);
        if (box.begin == box.end) continue;
        std::vector<float> v = box_values(f, box);
        const size_t at = storage.size();
        storage.insert(storage.end(), v.begin(), v.end());
        pieces.push_back({name, f.shape, box, storage.data() + at});
      }
      ShardFileRecord r{.name = shard_file_name(tp * 3 + dp)};
      r.xxh64 = write_shard_file(tmp + "/" + r.name, pieces, step, &r.bytes);
      records.push_back(r);
    }
  }
  write_sharded_manifest(tmp, step, records, {{"state.json", "{\"step\": 3}\n"}},
                         "{\"tp\": 2, \"dp\": 3}");
  sharded_commit(root, step, tmp, 0);
  return root + "/step_" + std::string(6 - std::to_string(step).size(), '0') + std::to_string(step);
}

TEST(ShardedCheckpoint, SlicesOfAnotherLayoutReadBack) {
  test::ScratchDir dir("sharded_checkpoint");
  const std::map<std::string, Full> full = full_tensors();
  std::vector<float> storage;
  const std::string step_dir = write_layout((dir.path / "ckpt").string(), 3, full, storage);
  EXPECT_EQ(checkpoint_manifest_version(step_dir), 2);
  ShardedCheckpoint c = sharded_open(step_dir);
  EXPECT_EQ(c.step, 3);
  EXPECT_EQ(c.text("state.json"), "{\"step\": 3}\n");
  for (const auto& [name, f] : full) {
    std::vector<TensorSlice> slices;
    slices.push_back(whole_slice(f.shape));
    // Row boxes (tp 3 by rows when it divides), column boxes, and flat ranges of them (ZeRO 4).
    for (int64_t r0 = 0; r0 < f.rows; ++r0) {
      for (int64_t c0 = 0; c0 < f.cols; c0 += 3) {
        TensorSlice s{r0, f.rows, c0, std::min(f.cols, c0 + 3), 0, 0};
        const int64_t n = s.box_numel();
        for (int64_t b = 0; b < n; b += 2) {
          s.begin = b;
          s.end = std::min(n, b + 5);
          slices.push_back(s);
        }
      }
    }
    for (const TensorSlice& s : slices) {
      std::vector<float> got(size_t(s.end - s.begin), -1.0f);
      sharded_read(c, name, s, got.data());
      EXPECT_EQ(got, box_values(f, s)) << name << " box " << s.r0 << ":" << s.r1 << ", " << s.c0
                                       << ":" << s.c1 << " range " << s.begin << ":" << s.end;
    }
  }
  sharded_release(c);
}

TEST(ShardedCheckpoint, ACorruptOrMissingShardNamesTheFile) {
  test::ScratchDir dir("sharded_checkpoint");
  const std::map<std::string, Full> full = full_tensors();
  std::vector<float> storage;
  const std::string step_dir = write_layout((dir.path / "ckpt").string(), 3, full, storage);
  const std::string shard = step_dir + "/" + shard_file_name(4);
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    f.write("\x7f\x7f\x7f\x7f", 4);
  }
  ShardedCheckpoint c = sharded_open(step_dir);  // sizes agree: the checksum finds it
  std::vector<float> out(6 * 8);
  EXPECT_TRUE(test::one_line_error(test::error_of([&] {
                                     sharded_read(c, "a", whole_slice({6, 8}), out.data());
                                   }),
                                   shard, "checksum mismatch"));
  // Rows [0, 3) of "b" come from tp rank 0's shards only: the corrupt one is not touched.
  std::vector<float> rows(12);
  sharded_read(c, "b", {0, 3, 0, 4, 0, 12}, rows.data());
  EXPECT_EQ(rows, box_values(full.at("b"), {0, 3, 0, 4, 0, 12}));
  fs::remove(shard);
  EXPECT_TRUE(test::one_line_error(test::error_of([&] { sharded_open(step_dir); }), shard,
                                   "missing from the checkpoint"));
}

TEST(ShardedCheckpoint, NaNIsRefusedAndPiecesMustTileTheTensor) {
  test::ScratchDir dir("sharded_checkpoint");
  const std::string tmp = sharded_begin((dir.path / "ckpt").string(), 1, 1);
  std::vector<float> v = {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
  uint64_t bytes = 0;
  EXPECT_NE(test::error_of([&] {
              write_shard_file(tmp + "/x.safetensors", {{"w", {3}, whole_slice({3}), v.data()}}, 1,
                               &bytes);
            }).find("checkpoint of step 1 refused: w holds NaN or Inf"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(tmp + "/x.safetensors"));
  v[1] = 0.0f;
  ShardFileRecord r{.name = "x.safetensors"};
  r.xxh64 = write_shard_file(tmp + "/x.safetensors", {{"w", {4}, {0, 1, 0, 4, 0, 3}, v.data()}}, 1,
                             &r.bytes);
  EXPECT_NE(test::error_of([&] {
              write_sharded_manifest(tmp, 1, {r}, {}, "{}");
            }).find("the ranks' pieces of w hold 3 elements, the tensor 4"),
            std::string::npos);
}

TEST(ShardedCheckpoint, ExportsHuggingFaceFilesOneTensorAtATime) {
  test::ScratchDir dir("sharded_checkpoint");
  const std::map<std::string, Full> full = full_tensors();
  std::vector<float> storage;
  const std::string step_dir = write_layout((dir.path / "ckpt").string(), 3, full, storage);
  ShardedCheckpoint c = sharded_open(step_dir);
  for (size_t max_bytes : {size_t(1) << 20, size_t(100)}) {
    const fs::path out = dir.path / ("hf" + std::to_string(max_bytes));
    fs::create_directories(out);
    std::vector<std::string> files =
        sharded_export_weights(c, {{"a", "model.a"}, {"b", "model.b"}, {"n", "model.n"}},
                               out.string(), StDtype::F32, max_bytes);
    EXPECT_EQ(files.size(), max_bytes == 100 ? 4u : 1u);
    SafeTensorsModel m = safetensors_open_model(out.string());
    for (const auto& [name, f] : full) {
      const SafeTensorsFile* file = m.file_of("model." + name);
      ASSERT_NE(file, nullptr) << name;
      EXPECT_EQ(file->read_f32("model." + name, f.shape), f.values) << name;
    }
  }
}

}  // namespace
}  // namespace hibari
