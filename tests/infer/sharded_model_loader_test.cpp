// infer/model_loader.h on sharded (version 2) checkpoints, a parallel run's: a step and a root are
// read into the same parameters that were written (pieces cut as tp boxes and ZeRO ranges), only
// the model tensors are needed (exp_avg* present or not), and a corrupt newest v2 step makes a root
// fall back to the previous step, v2 or v1, with a note.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "infer/model_loader.h"
#include "model/config.h"
#include "tests/error_matchers.h"
#include "tests/infer/tiny_model.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> shape_of(const ParamInfo& p) {
  if (p.ndim == 1) return {int64_t(p.shape[0])};
  return {int64_t(p.shape[0]), int64_t(p.shape[1])};
}

// `m` as a sharded step under `root`, written by two "ranks": a matrix as two row boxes (tp) or
// two flat ranges (ZeRO), a vector whole by rank 0 (its exp_avg by rank 1).
void write_sharded(const std::string& root, int64_t step, const LoadedModel& m, bool with_moments) {
  const std::string tmp = sharded_begin(root, step, 777);
  std::vector<std::vector<ShardPiece>> pieces(2);
  std::vector<std::vector<float>> values;
  values.reserve(4 * m.layout.params.size());
  for (const ParamInfo& p : m.layout.params) {
    const std::vector<int64_t> shape = shape_of(p);
    const float* x = m.params.data() + p.offset;
    if (p.ndim == 1) {
      pieces[0].push_back({p.name, shape, whole_slice(shape), x});
      if (with_moments) pieces[1].push_back({"exp_avg." + p.name, shape, whole_slice(shape), x});
      continue;
    }
    // a file holds one piece of a tensor: even tensors as two row boxes (tp), odd ones as two
    // flat ranges of the whole (ZeRO)
    const int64_t rows = shape[0], cols = shape[1], half = rows / 2, cut = rows * cols / 3;
    for (int rank = 0; rank < 2; ++rank) {
      TensorSlice s{0, rows, 0, cols, 0, rows * cols};
      if (p.full_index % 2 == 0) {
        s.r0 = rank == 0 ? 0 : half;
        s.r1 = rank == 0 ? half : rows;
        s.end = s.box_numel();
      } else {
        s.begin = rank == 0 ? 0 : cut;
        s.end = rank == 0 ? cut : rows * cols;
      }
      const float* start = x + s.r0 * cols;
      values.emplace_back(start + s.begin, start + s.end);
      pieces[size_t(rank)].push_back({p.name, shape, s, values.back().data()});
    }
  }
  std::vector<ShardFileRecord> records;
  for (int rank = 0; rank < 2; ++rank) {
    ShardFileRecord r;
    r.name = shard_file_name(rank);
    r.xxh64 = write_shard_file(tmp + "/" + r.name, pieces[size_t(rank)], step, &r.bytes);
    records.push_back(r);
  }
  write_sharded_manifest(tmp, step, records,
                         {{"config.json", model_config_to_json(m.config).dump(2) + "\n"},
                          {"state.json", "{\"step\": " + std::to_string(step) + "}\n"}},
                         "{}");
  sharded_commit(root, step, tmp, 0);
}

void write_v1(const std::string& root, int64_t step, const LoadedModel& m) {
  CheckpointContent content;
  content.step = step;
  std::vector<CheckpointTensor>& tensors = content.tensor_files["model"];
  for (const ParamInfo& p : m.layout.params)
    tensors.push_back({p.name, shape_of(p), m.params.data() + p.offset});
  content.text_files["config.json"] = model_config_to_json(m.config).dump(2);
  write_checkpoint(root, content, 0);
}

TEST(ShardedModelLoader, ReadsAStepAndARootExactly) {
  test::ScratchDir dir("sharded_model_loader");
  const LoadedModel m = test::tiny_random_model(test::tiny_infer_config(), 5);
  const std::string root = (dir.path / "ckpt").string();
  write_sharded(root, 7, m, true);
  for (const std::string& path : {root + "/step_000007", root}) {
    LoadedModel got = load_model_for_inference(path);
    EXPECT_TRUE(got.sharded) << path;
    EXPECT_EQ(got.weights_dir, root + "/step_000007");
    EXPECT_NE(got.description.find("(step 7)"), std::string::npos) << got.description;
    EXPECT_TRUE(got.notes.empty());
    EXPECT_EQ(got.config.vocab_size, m.config.vocab_size);
    ASSERT_EQ(got.params.size(), m.params.size());
    EXPECT_EQ(got.params, m.params) << path;
  }
}

TEST(ShardedModelLoader, NeedsNoOptimizerTensors) {
  test::ScratchDir dir("sharded_model_loader");
  const LoadedModel m = test::tiny_random_model(test::tiny_infer_config(), 6);
  const std::string root = (dir.path / "ckpt").string();
  write_sharded(root, 3, m, false);
  EXPECT_EQ(load_model_for_inference(root).params, m.params);
}

// A flipped byte in the newest step's shard: the root falls back to the older step (v2, then v1),
// with a note naming the corrupt shard; the step itself is an error naming the file.
TEST(ShardedModelLoader, CorruptNewestStepFallsBack) {
  test::ScratchDir dir("sharded_model_loader");
  const LoadedModel a = test::tiny_random_model(test::tiny_infer_config(), 1);
  const LoadedModel b = test::tiny_random_model(test::tiny_infer_config(), 2);
  const LoadedModel c = test::tiny_random_model(test::tiny_infer_config(), 3);
  const std::string root = (dir.path / "ckpt").string();
  write_v1(root, 2, a);
  write_sharded(root, 4, b, true);
  write_sharded(root, 6, c, true);
  EXPECT_EQ(load_model_for_inference(root).params, c.params);

  auto corrupt = [&](const std::string& step) {
    const std::string shard = root + "/" + step + "/" + shard_file_name(1);
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
    return shard;
  };
  const std::string shard6 = corrupt("step_000006");
  EXPECT_TRUE(
      test::one_line_error(test::error_of([&] { load_model_for_inference(root + "/step_000006"); }),
                           shard6, "checksum mismatch"));
  LoadedModel got = load_model_for_inference(root);
  EXPECT_EQ(got.params, b.params);
  EXPECT_EQ(got.weights_dir, root + "/step_000004");
  ASSERT_EQ(got.notes.size(), 1u);
  EXPECT_NE(got.notes[0].find(shard6), std::string::npos) << got.notes[0];

  corrupt("step_000004");
  got = load_model_for_inference(root);
  EXPECT_FALSE(got.sharded);
  EXPECT_EQ(got.params, a.params);
  EXPECT_EQ(got.notes.size(), 2u);

  fs::remove(root + "/step_000002/model.safetensors");
  const std::string error = test::error_of([&] { load_model_for_inference(root); });
  EXPECT_NE(error.find("no intact checkpoint in " + root), std::string::npos) << error;
  EXPECT_NE(error.find(shard6), std::string::npos) << error;
}

// load_latest_checkpoint (one file set: a one-process resume after a parallel run's resume found
// no intact sharded step) passes sharded steps over without a misleading note; with nothing else
// intact it names the newest sharded step's problem.
TEST(ShardedModelLoader, LoadLatestCheckpointPassesShardedStepsOver) {
  test::ScratchDir dir("sharded_model_loader");
  const LoadedModel a = test::tiny_random_model(test::tiny_infer_config(), 1);
  const std::string root = (dir.path / "ckpt").string();
  write_sharded(root, 4, a, true);
  const std::string intact = test::error_of([&] { load_latest_checkpoint(root, nullptr); });
  EXPECT_EQ(intact.rfind("no intact checkpoint in " + root, 0), 0u) << intact;
  EXPECT_NE(intact.find(root + "/step_000004: an intact sharded checkpoint"), std::string::npos)
      << intact;
  const std::string shard = root + "/step_000004/" + shard_file_name(0);
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x55');
  }
  std::string error = test::error_of([&] { load_latest_checkpoint(root, nullptr); });
  EXPECT_NE(error.find(shard + ": checksum mismatch"), std::string::npos) << error;
  EXPECT_EQ(error.find("not supported"), std::string::npos) << error;

  write_v1(root, 2, a);
  std::vector<std::string> notes;
  auto c = load_latest_checkpoint(root, &notes);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->step, 2);
  EXPECT_TRUE(notes.empty()) << notes[0];
}

}  // namespace
}  // namespace hibari
