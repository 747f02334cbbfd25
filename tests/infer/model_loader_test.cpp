// infer/model_loader.h: weights holding NaN or Inf are refused on load, naming the file (the shard
// of a sharded model) and the tensor, and first_non_finite finds the first one wherever it lies;
// a checkpoint step without its manifest.json is refused, not read as a Hugging Face directory
// (issue 13, item 4).
#include "infer/model_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "model/hf_weights.h"
#include "tests/error_matchers.h"
#include "tests/infer/tiny_model.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(FirstNonFinite, FindsTheFirstAnywhere) {
  std::vector<float> x(200000, 1.0f);
  EXPECT_EQ(first_non_finite(x.data(), x.size()), x.size());
  EXPECT_EQ(first_non_finite(x.data(), 0), 0u);
  x[0] = std::numeric_limits<float>::max();  // large but finite
  x[1] = -std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(first_non_finite(x.data(), x.size()), x.size());
  // the last element, chunk boundaries (65536), and the first of several in different chunks
  for (size_t at : {size_t(199999), size_t(65535), size_t(65536), size_t(7)}) {
    for (float bad : {kNan, kInf, -kInf, -kNan}) {
      std::vector<float> y = x;
      y[at] = bad;
      y[150000] = kNan;
      EXPECT_EQ(first_non_finite(y.data(), y.size()), std::min(at, size_t(150000))) << at;
    }
  }
}

// The tiny model of tests/infer/tiny_model.h as a Hugging Face directory, with `bad` at element
// `at` of tensor `name` (none when name is empty).
std::string write_hf(const fs::path& dir, const std::string& name, size_t at, float bad,
                     size_t max_shard_bytes = 5000000000) {
  LoadedModel m = test::tiny_random_model(test::tiny_infer_config(), 3);
  for (const ParamInfo& p : m.layout.params)
    if (p.name == name) m.params[p.offset + at] = bad;
  save_hf_weights(m.layout, m.params.data(), m.config, dir.string(),
                  {StDtype::F32, max_shard_bytes});
  return dir.string();
}

TEST(ModelLoader, NanOrInfWeightsAreRefusedNamingFileAndTensor) {
  test::ScratchDir dir("model_loader");
  const std::string good = write_hf(dir.path / "good", "", 0, 0);
  EXPECT_NO_THROW(load_model_for_inference(good));

  const std::string nan = write_hf(dir.path / "nan", "model.layers.1.mlp.up_proj.weight", 77, kNan);
  EXPECT_TRUE(test::one_line_error(
      test::error_of([&] { load_model_for_inference(nan); }), nan + "/model.safetensors",
      "tensor model.layers.1.mlp.up_proj.weight holds NaN at element 77"));
  const std::string inf = write_hf(dir.path / "inf", "model.norm.weight", 5, -kInf);
  EXPECT_TRUE(test::one_line_error(test::error_of([&] { load_model_for_inference(inf); }),
                                   inf + "/model.safetensors",
                                   "tensor model.norm.weight holds -Inf at element 5"));
  // Sharded: the shard that holds the tensor is named.
  const std::string sharded = write_hf(dir.path / "sharded", "lm_head.weight", 1000, kInf, 20000);
  const SafeTensorsModel st = safetensors_open_model(sharded);
  ASSERT_GT(st.files.size(), 1u);
  EXPECT_TRUE(test::one_line_error(test::error_of([&] { load_model_for_inference(sharded); }),
                                   st.file_of("lm_head.weight")->path,
                                   "tensor lm_head.weight holds +Inf at element 1000"));
}

TEST(ModelLoader, StepWithoutManifestIsRefused) {
  test::ScratchDir dir("model_loader");
  LoadedModel m = test::tiny_random_model(test::tiny_infer_config(), 3);
  CheckpointContent content;
  content.step = 4;
  std::vector<CheckpointTensor>& tensors = content.tensor_files["model"];
  for (const ParamInfo& p : m.layout.params) {
    std::vector<int64_t> shape = {int64_t(p.shape[0])};
    if (p.ndim == 2) shape.push_back(int64_t(p.shape[1]));
    tensors.push_back({p.name, shape, m.params.data() + p.offset});
  }
  content.text_files["config.json"] = model_config_to_json(m.config).dump(2);
  const fs::path root = dir.path / "ckpt";
  write_checkpoint(root.string(), content, 0);
  const std::string step = (root / "step_000004").string();
  EXPECT_NO_THROW(load_model_for_inference(step));
  fs::remove(root / "step_000004" / "manifest.json");
  EXPECT_TRUE(test::one_line_error(test::error_of([&] { load_model_for_inference(step); }), step,
                                   "a hibari checkpoint step without manifest.json"));
}

}  // namespace
}  // namespace hibari
