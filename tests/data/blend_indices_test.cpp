// data/blend_indices.h: Megatron-LM blending (weights, sizes per dataset, dataset order) compared
// exactly with the numpy reference tests/reference/megatron_indices.py blend.
#include "data/blend_indices.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/gpt_indices.h"
#include "tests/scratch_dir.h"

#if !defined(HIBARI_PYTHON) || !defined(HIBARI_SOURCE_DIR)
#error "needs HIBARI_PYTHON and HIBARI_SOURCE_DIR"
#endif

namespace hibari {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> load(const fs::path& path) { return npy_as_int64(read_npy(path.string())); }

// Weights as text Python parses to the same doubles (17 significant digits round-trip).
std::string join(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%.17g", x);
    s += (s.empty() ? "" : ",") + std::string(buf);
  }
  return s;
}

struct Case {
  std::vector<double> raw;  // weights as the user gives them
  int64_t num_samples;
  std::string exhaustive;  // dataset sizes for build_exhaustive_blending_indices, "5,3,7"
};

std::string reference_args(const Case& c, const fs::path& dir) {
  fs::create_directories(dir);
  return "blend --weights " + join(c.raw) + " --size " + std::to_string(c.num_samples) +
         " --exhaustive " + c.exhaustive + " --out " + dir.string();
}

void expect_matches_reference(const Case& c, const fs::path& dir) {
  const std::vector<double>& raw = c.raw;
  const std::string& exhaustive = c.exhaustive;
  const int64_t num_samples = c.num_samples;
  SCOPED_TRACE(join(raw) + " x " + std::to_string(num_samples));

  const BlendPlan plan = plan_blend(raw, num_samples);
  // Bit for bit: the weights decide ties in the greedy order.
  EXPECT_EQ(plan.weights, npy_as_double(read_npy((dir / "weights.npy").string())));
  EXPECT_EQ(plan.target, load(dir / "target.npy"));
  EXPECT_EQ(plan.num_samples, load(dir / "build.npy"));
  int64_t size = 0;
  for (int64_t t : plan.target) size += t;
  EXPECT_EQ(plan.size, size);

  const BlendIndices got = build_blending_indices(plan.weights, plan.size);
  const std::vector<int64_t> dataset_index(got.dataset_index.begin(), got.dataset_index.end());
  EXPECT_EQ(read_npy((dir / "dataset_index.npy").string()).descr, "<i2");
  EXPECT_EQ(dataset_index, load(dir / "dataset_index.npy"));
  EXPECT_EQ(got.dataset_sample_index, load(dir / "dataset_sample_index.npy"));
  // No dataset is asked for more samples than were built for it.
  std::vector<int64_t> used(raw.size(), 0);
  for (int16_t d : got.dataset_index) ++used[static_cast<size_t>(d)];
  for (size_t d = 0; d < raw.size(); ++d) EXPECT_LE(used[d], plan.num_samples[d]);

  std::vector<int64_t> sizes;
  for (size_t b = 0, e; b < exhaustive.size(); b = e + 1) {
    e = exhaustive.find(',', b);
    if (e == std::string::npos) e = exhaustive.size();
    sizes.push_back(std::stoll(exhaustive.substr(b, e - b)));
  }
  const BlendIndices all = build_exhaustive_blending_indices(sizes);
  const std::vector<int64_t> all_index(all.dataset_index.begin(), all.dataset_index.end());
  EXPECT_EQ(all_index, load(dir / "exhaustive_dataset_index.npy"));
  EXPECT_EQ(all.dataset_sample_index, load(dir / "exhaustive_dataset_sample_index.npy"));
}

TEST(Blend, MatchesMegatronReference) {
  test::ScratchDir dir("blend_indices");
  const std::vector<Case> cases = {
      // JA:EN:code = 64.4:25.6:10, given as fractions and as percentages.
      {{0.644, 0.256, 0.1}, 10000, "5,3,7"},
      {{64.4, 25.6, 10.0}, 12345, "1,1"},
      {{3.0, 1.0, 1.0, 7.0, 0.5}, 2000, "100,1,37,12"},
      {{1.0}, 17, "4"},
  };
  const fs::path batch = dir.path / "batch.txt";
  {
    std::ofstream f(batch);
    for (size_t i = 0; i < cases.size(); ++i) {
      f << reference_args(cases[i], dir.path / std::to_string(i)) << "\n";
    }
  }
  const std::string cmd =
      std::string(HIBARI_PYTHON) +
      " " HIBARI_SOURCE_DIR "/tests/reference/megatron_indices.py batch --input " + batch.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (size_t i = 0; i < cases.size(); ++i) {
    expect_matches_reference(cases[i], dir.path / std::to_string(i));
  }
}

TEST(Blend, KnownSizes) {
  // ceil(1000 * w) per dataset, then ceil(that * 1.005) built: Megatron's
  // _get_size_per_split_per_dataset with its default surplus 0.005.
  const BlendPlan plan = plan_blend(std::vector<double>{0.644, 0.256, 0.1}, 1000);
  EXPECT_EQ(plan.target, (std::vector<int64_t>{644, 256, 100}));
  EXPECT_EQ(plan.num_samples, (std::vector<int64_t>{648, 258, 101}));
  EXPECT_EQ(plan.size, 1000);
  // The first samples: the dataset furthest behind its share, lowest index on ties.
  const BlendIndices b = build_blending_indices(plan.weights, 8);
  EXPECT_EQ(b.dataset_index, (std::vector<int16_t>{0, 1, 0, 2, 0, 1, 0, 0}));
  EXPECT_EQ(b.dataset_sample_index, (std::vector<int64_t>{0, 0, 1, 0, 2, 1, 3, 4}));
  EXPECT_THROW(plan_blend(std::vector<double>{1.0, 0.0}, 10), Error);
}

TEST(Blend, NumpySumIsPairwise) {
  // numpy.sum([1e16, 1.0, 1.0]) == 1e16: below 8 values a plain left-to-right loop.
  EXPECT_EQ(numpy_sum(std::vector<double>{1e16, 1.0, 1.0}), 1e16);
  // numpy.sum(numpy.array([1e16] + [1.0] * 15)) == 1.0000000000000014e+16: 8 accumulators.
  std::vector<double> v(16, 1.0);
  v[0] = 1e16;
  EXPECT_EQ(numpy_sum(v), 1.0000000000000014e+16);
}

}  // namespace
}  // namespace hibari
