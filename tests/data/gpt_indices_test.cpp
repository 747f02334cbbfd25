// data/gpt_indices.h: Megatron-LM GPTDataset indices, compared exactly with the numpy reference
// tests/reference/megatron_indices.py (written from gpt_dataset.py and helpers.cpp) on random
// document lengths, for one, two and many epochs, with and without a separate final epoch.
#include "data/gpt_indices.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

#if !defined(HIBARI_PYTHON) || !defined(HIBARI_SOURCE_DIR)
#error "needs HIBARI_PYTHON and HIBARI_SOURCE_DIR"
#endif

namespace hibari {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> load(const fs::path& path) { return npy_as_int64(read_npy(path.string())); }

std::string python(const std::string& args) {
  return std::string(HIBARI_PYTHON) +
         " " HIBARI_SOURCE_DIR "/tests/reference/megatron_indices.py " + args;
}

// A dataset of `n` documents, lengths drawn from `rng` in [min_length, max_length].
std::vector<int32_t> random_lengths(std::mt19937& rng, size_t n, int32_t min_length,
                                    int32_t max_length) {
  std::uniform_int_distribution<int32_t> length(min_length, max_length);
  std::vector<int32_t> out(n);
  for (int32_t& x : out) x = length(rng);
  return out;
}

int64_t split_tokens(const std::vector<int32_t>& lengths, const std::vector<int32_t>& documents) {
  int64_t n = 0;
  for (int32_t d : documents) n += lengths[static_cast<size_t>(d)];
  return n;
}

struct Case {
  std::string name;
  std::vector<int32_t> lengths;
  std::vector<int32_t> documents;
  GptIndicesConfig config;
  int32_t want_epochs;
  bool want_separate;
};

// Writes the case's inputs into dir/<name>/ and returns the reference's command line for it.
std::string reference_args(const Case& c, const fs::path& dir) {
  const fs::path out = dir / c.name;
  fs::create_directories(out);
  const fs::path lengths = out / "lengths.npy", documents = out / "documents.npy";
  write_npy(lengths.string(), npy_from(std::span<const int32_t>(c.lengths),
                                       {static_cast<int64_t>(c.lengths.size())}));
  write_npy(documents.string(), npy_from(std::span<const int32_t>(c.documents),
                                         {static_cast<int64_t>(c.documents.size())}));
  return "gpt --lengths " + lengths.string() + " --documents " + documents.string() +
         " --num-samples " + std::to_string(c.config.num_samples.value_or(-1)) + " --seq-length " +
         std::to_string(c.config.seq_length) + " --seed " + std::to_string(c.config.seed) +
         " --add-extra " + std::to_string(int(c.config.add_extra_token)) + " --drop-last " +
         std::to_string(int(c.config.drop_last_partial_sequence)) + " --out " + out.string();
}

// Builds with hibari; every array must match the reference's exactly.
void expect_matches_reference(const Case& c, const fs::path& dir) {
  SCOPED_TRACE(c.name);
  const fs::path out = dir / c.name;
  const GptIndices got = build_gpt_indices(c.lengths, c.documents, c.config);
  const std::vector<int64_t> meta = load(out / "meta.npy");
  EXPECT_EQ(got.num_epochs, meta[0]);
  EXPECT_EQ(got.separate_final_epoch, meta[1] != 0);
  EXPECT_EQ(got.num_epochs, c.want_epochs);
  EXPECT_EQ(got.separate_final_epoch, c.want_separate);
  const std::vector<int64_t> doc_idx(got.doc_idx.begin(), got.doc_idx.end());
  EXPECT_EQ(doc_idx, load(out / "document_index.npy"));
  EXPECT_EQ(got.sample_idx, load(out / "sample_index.npy"));
  EXPECT_EQ(got.shuffle_idx, load(out / "shuffle_index.npy"));
  if (c.config.num_samples) {
    EXPECT_GE(int64_t(got.num_samples()), *c.config.num_samples);
  }
}

// Runs the reference once over every line of `lines` (see megatron_indices.py batch).
void run_reference_batch(const std::vector<std::string>& lines, const fs::path& dir) {
  const fs::path batch = dir / "batch.txt";
  {
    std::ofstream f(batch);
    for (const std::string& line : lines) f << line << "\n";
  }
  const std::string cmd = python("batch --input " + batch.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(GptIndices, MatchesMegatronReference) {
  test::ScratchDir dir("gpt_indices");
  std::mt19937 rng(7);
  std::vector<Case> cases;

  // Split = every document; T = 64.  Samples per epoch P = (tokens - 1) / T.
  {
    std::vector<int32_t> lengths = random_lengths(rng, 300, 1, 200);
    std::vector<int32_t> all(lengths.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    const int64_t tokens = split_tokens(lengths, all);
    const int64_t P = (tokens - 1) / 64;
    auto config = [](std::optional<int64_t> n, uint32_t seed) {
      return GptIndicesConfig{.num_samples = n, .seq_length = 64, .seed = seed};
    };
    cases.push_back({"one_epoch_part", lengths, all, config(P / 3, 1234), 1, false});
    cases.push_back({"one_epoch_none", lengths, all, config(std::nullopt, 0), 1, false});
    cases.push_back({"one_epoch_full", lengths, all, config(P, 42), 1, false});
    // The second epoch barely used (< 80%): shuffled on its own.
    cases.push_back({"two_epochs_separate", lengths, all, config(P + P / 10, 5), 2, true});
    // The second epoch nearly all used: both epochs shuffled together.
    cases.push_back({"two_epochs_joint", lengths, all, config(2 * P - 2, 6), 2, false});
    cases.push_back({"many_epochs_separate", lengths, all, config(6 * P + P / 2, 99), 7, true});
    cases.push_back({"many_epochs_joint", lengths, all, config(7 * P - 3, 100), 7, false});
  }
  // A split of non-contiguous documents, short documents (many per sample), including empty ones;
  // no extra token; the last partial sequence kept (Megatron's validation option).
  {
    std::vector<int32_t> lengths = random_lengths(rng, 500, 0, 12);
    std::vector<int32_t> split;
    for (int32_t i = 3; i < 500; i += 2) split.push_back(i);
    const int64_t tokens = split_tokens(lengths, split);
    cases.push_back({"split_no_extra_token", lengths, split,
                     GptIndicesConfig{.num_samples = 3 * (tokens / 33) + 5,
                                      .seq_length = 33,
                                      .seed = 2147483647u,
                                      .add_extra_token = false},
                     4, true});
    cases.push_back({"split_keep_partial", lengths, split,
                     GptIndicesConfig{.num_samples = std::nullopt,
                                      .seq_length = 33,
                                      .seed = 4294967295u,
                                      .drop_last_partial_sequence = false},
                     1, false});
    cases.push_back({"split_keep_partial_epochs", lengths, split,
                     GptIndicesConfig{.num_samples = 2 * ((tokens - 1) / 33) + 10,
                                      .seq_length = 33,
                                      .seed = 3,
                                      .drop_last_partial_sequence = false},
                     3, true});
  }
  // Long documents: a sample inside one document, many samples per document.
  {
    std::vector<int32_t> lengths = random_lengths(rng, 40, 100, 3000);
    std::vector<int32_t> split = {0, 5, 6, 7, 30, 31, 39, 2, 11};
    const int64_t tokens = split_tokens(lengths, split);
    const int64_t P = (tokens - 1) / 17;
    // All of the second epoch and one sample more: the most the final epoch can give.
    cases.push_back({"long_documents_final_epoch_full", lengths, split,
                     GptIndicesConfig{.num_samples = 2 * P + 1, .seq_length = 17, .seed = 77}, 2,
                     false});
    cases.push_back({"long_documents", lengths, split,
                     GptIndicesConfig{.num_samples = 2 * P + 3, .seq_length = 17, .seed = 78}, 3,
                     true});
  }
  std::vector<std::string> lines;
  for (const Case& c : cases) lines.push_back(reference_args(c, dir.path));
  run_reference_batch(lines, dir.path);
  if (HasFatalFailure()) return;
  for (const Case& c : cases) expect_matches_reference(c, dir.path);
}

TEST(GptIndices, SampleIndexByHand) {
  // Documents of 5, 3 and 4 tokens in that (unshuffled) order, T = 4, samples of T + 1 tokens:
  // sample 0 = doc 0 [0, 5); sample 1 = doc 0 [4, 5) + doc 1 + doc 2 [0, 1); the next starts at
  // the last token of the previous one.
  const std::vector<int32_t> lengths = {5, 3, 4};
  const std::vector<int32_t> doc_idx = {0, 1, 2};
  EXPECT_EQ(build_sample_idx(lengths, doc_idx, 4, 1, 12, true, true),
            (std::vector<int64_t>{0, 0, 0, 4, 2, 0}));
  // Without the extra token samples do not overlap: 12 tokens hold 3 samples of 4.
  EXPECT_EQ(build_sample_idx(lengths, doc_idx, 4, 1, 12, true, false),
            (std::vector<int64_t>{0, 0, 0, 4, 1, 3, 2, 4}));
}

TEST(GptIndices, RejectsBadInput) {
  const std::vector<int32_t> lengths = {5, 3};
  EXPECT_THROW(build_gpt_indices(lengths, std::vector<int32_t>{0, 2},
                                 GptIndicesConfig{.num_samples = 1, .seq_length = 4}),
               Error);
  EXPECT_THROW(build_gpt_indices(lengths, std::vector<int32_t>{0},
                                 GptIndicesConfig{.num_samples = 1, .seq_length = 1}),
               Error);
}

TEST(GptIndices, CacheWritesNumpyFilesAndReadsThemBack) {
  test::ScratchDir dir("gpt_indices_cache");
  std::mt19937 rng(11);
  const std::vector<int32_t> lengths = random_lengths(rng, 50, 1, 100);
  std::vector<int32_t> all(lengths.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
  const GptIndicesConfig config{.num_samples = 200, .seq_length = 16, .seed = 9};
  const fs::path cache = dir.path / "cache";

  const GptIndices built =
      load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, config);
  const GptIndices direct = build_gpt_indices(lengths, all, config);
  EXPECT_EQ(built.doc_idx, direct.doc_idx);
  EXPECT_EQ(built.sample_idx, direct.sample_idx);
  EXPECT_EQ(built.shuffle_idx, direct.shuffle_idx);

  // Four files, Megatron's names after the hash, Megatron's dtypes.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cache)) files.push_back(e.path());
  ASSERT_EQ(files.size(), 4u);
  fs::path doc_file, sample_file, shuffle_file;
  for (const fs::path& f : files) {
    const std::string name = f.filename().string();
    EXPECT_NE(name.find("-GPTDataset-train-"), std::string::npos) << name;
    if (name.ends_with("document_index.npy")) doc_file = f;
    if (name.ends_with("sample_index.npy")) sample_file = f;
    if (name.ends_with("shuffle_index.npy")) shuffle_file = f;
  }
  ASSERT_FALSE(doc_file.empty() || sample_file.empty() || shuffle_file.empty());
  EXPECT_EQ(read_npy(doc_file.string()).descr, "<i4");
  EXPECT_EQ(read_npy(sample_file.string()).descr, "<i4");
  EXPECT_EQ(read_npy(sample_file.string()).shape,
            (std::vector<int64_t>{int64_t(direct.num_samples()) + 1, 2}));
  EXPECT_EQ(read_npy(shuffle_file.string()).descr, "<u4");

  // numpy reads what hibari wrote, and writes the very same bytes back.
  const std::vector<fs::path> written = {doc_file, sample_file, shuffle_file};
  std::vector<std::string> lines;
  for (size_t i = 0; i < written.size(); ++i) {
    lines.push_back("resave --input " + written[i].string() + " --out " +
                    (dir.path / ("again" + std::to_string(i) + ".npy")).string());
  }
  run_reference_batch(lines, dir.path);
  if (HasFatalFailure()) return;
  for (size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ(test::read_file(written[i]),
              test::read_file(dir.path / ("again" + std::to_string(i) + ".npy")))
        << written[i];
  }

  // A second call reads the cache: prove it by planting a marker (valid sample numbers, two
  // zeros: no shuffle makes it) in the shuffle index.
  std::vector<uint32_t> marker(direct.num_samples(), 0);
  marker[0] = uint32_t(direct.num_samples() - 1);
  write_npy(shuffle_file.string(),
            npy_from(std::span<const uint32_t>(marker), {int64_t(marker.size())}));
  const GptIndices loaded =
      load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, config);
  EXPECT_EQ(loaded.doc_idx, direct.doc_idx);
  EXPECT_EQ(loaded.sample_idx, direct.sample_idx);
  EXPECT_EQ(loaded.shuffle_idx[0], int64_t(direct.num_samples() - 1));
  EXPECT_EQ(loaded.shuffle_idx[1], 0);
  EXPECT_EQ(loaded.shuffle_idx[2], 0);
  EXPECT_EQ(loaded.num_epochs, direct.num_epochs);

  // Other parameters, other files: a new seed or changed lengths do not hit the old cache.
  GptIndicesConfig reseeded = config;
  reseeded.seed = 10;
  const GptIndices other =
      load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, reseeded);
  EXPECT_EQ(other.shuffle_idx, build_gpt_indices(lengths, all, reseeded).shuffle_idx);
  std::vector<int32_t> changed = lengths;
  changed[3] += 1;
  EXPECT_NE(gpt_indices_description("corpus", "train", changed, all, config),
            gpt_indices_description("corpus", "train", lengths, all, config));
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(cache)) count += e.is_regular_file();
  EXPECT_EQ(count, 8u);
}

// A cache whose values point outside its arrays or the documents (issue 13: every shuffle entry
// 4294967291 made read_gpt_sample read out of bounds) is rebuilt, with a warning naming the file.
TEST(GptIndices, CorruptCacheIsRebuiltWithAWarningNamingTheFile) {
  test::ScratchDir dir("gpt_indices_corrupt");
  std::mt19937 rng(5);
  const std::vector<int32_t> lengths = random_lengths(rng, 30, 1, 60);
  std::vector<int32_t> all(lengths.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
  const GptIndicesConfig config{.num_samples = 50, .seq_length = 8, .seed = 3};
  const fs::path cache = dir.path / "cache";
  const GptIndices direct = build_gpt_indices(lengths, all, config);
  const int64_t rows = int64_t(direct.sample_idx.size() / 2);
  const int64_t n = int64_t(direct.num_samples());

  struct Case {
    const char* name;
    const char* file;  // which file the case corrupts
    std::function<NpyArray()> make;
  };
  const std::vector<Case> cases = {
      {"shuffle past the samples", "shuffle_index.npy",
       [&] {
         std::vector<uint32_t> v(size_t(n), 4294967291u);
         return npy_from(std::span<const uint32_t>(v), {n});
       }},
      {"negative shuffle", "shuffle_index.npy",
       [&] {
         std::vector<int64_t> v(direct.shuffle_idx);
         v[1] = -1;
         return npy_from(std::span<const int64_t>(v), {n});
       }},
      {"sample row past the document index", "sample_index.npy",
       [&] {
         std::vector<int64_t> v(direct.sample_idx);
         v[4] = int64_t(direct.doc_idx.size());
         return npy_from(std::span<const int64_t>(v), {rows, 2});
       }},
      {"sample offset past its document", "sample_index.npy",
       [&] {
         std::vector<int64_t> v(direct.sample_idx);
         v[5] = 1000000;
         return npy_from(std::span<const int64_t>(v), {rows, 2});
       }},
      {"sample rows out of order", "sample_index.npy",
       [&] {
         std::vector<int64_t> v(direct.sample_idx);
         std::swap(v[2], v[2 * size_t(rows) - 2]);
         std::swap(v[3], v[2 * size_t(rows) - 1]);
         return npy_from(std::span<const int64_t>(v), {rows, 2});
       }},
      {"document id past the dataset", "document_index.npy",
       [&] {
         std::vector<int32_t> v(direct.doc_idx);
         v[0] = int32_t(lengths.size());
         return npy_from(std::span<const int32_t>(v), {int64_t(v.size())});
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    fs::remove_all(cache);
    load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, config);
    fs::path target;
    for (const auto& e : fs::directory_iterator(cache))
      if (e.path().filename().string().ends_with(c.file)) target = e.path();
    ASSERT_FALSE(target.empty());
    write_npy(target.string(), c.make());
    testing::internal::CaptureStderr();
    const GptIndices loaded =
        load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, config);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(loaded.doc_idx, direct.doc_idx);
    EXPECT_EQ(loaded.sample_idx, direct.sample_idx);
    EXPECT_EQ(loaded.shuffle_idx, direct.shuffle_idx);
    EXPECT_EQ(err.rfind("hibari: warning: " + target.string() + ": ", 0), 0u) << err;
    EXPECT_NE(err.find("rebuilding"), std::string::npos) << err;
    // Rebuilt on disk too: the next load is silent.
    testing::internal::CaptureStderr();
    load_or_build_gpt_indices(cache.string(), "corpus", "train", lengths, all, config);
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  }
}

// A .npy whose shape is not numbers is an Error naming the file (std::stoll's exceptions escaped).
TEST(GptIndices, NpyWithABadShapeNamesTheFile) {
  test::ScratchDir dir("npy_bad_shape");
  const std::string path = dir.file("bad.npy");
  std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': (x, ), }";
  header.resize(118, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size()) + '\0' + header;
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_TRUE(
      test::one_line_error(test::error_of([&] { read_npy(path); }), path, "in the .npy shape"));
}

}  // namespace
}  // namespace hibari
