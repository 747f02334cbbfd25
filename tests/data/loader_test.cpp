// data/loader.h: the blended order equals Megatron's arrays, data-parallel slices cover the global
// batch, a resume continues exactly, blends change mid-run without re-reading, and a changed
// dataset or a corrupt state is refused.
#include "data/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/blend_indices.h"
#include "data/gpt_indices.h"
#include "data/indexed_dataset.h"
#include "tests/scratch_dir.h"

#if !defined(HIBARI_PYTHON) || !defined(HIBARI_SOURCE_DIR)
#error "needs HIBARI_PYTHON and HIBARI_SOURCE_DIR"
#endif

namespace hibari {
namespace {

namespace fs = std::filesystem;

// A command line running tests/reference/megatron_indices.py (Megatron-LM core's index math).
std::string reference(const std::string& args) {
  return std::string(HIBARI_PYTHON) +
         " " HIBARI_SOURCE_DIR "/tests/reference/megatron_indices.py " + args;
}

// A dataset of `documents` documents of random lengths in [1, 60] whose tokens encode where they
// are: base + (document * 64 + position) % 5000, so every token says which dataset it is from.
std::vector<std::vector<int32_t>> write_dataset(const std::string& prefix, int documents,
                                                int32_t base, uint64_t seed) {
  std::vector<std::vector<int32_t>> docs;
  IndexedDatasetWriter writer(prefix, TokenDtype::i32);
  for (int d = 0; d < documents; ++d) {
    size_t length = 1 + random_below(seed, 0, uint64_t(d), 60);
    std::vector<int32_t> tokens(length);
    for (size_t i = 0; i < length; ++i) tokens[i] = base + int32_t((d * 64 + int(i)) % 5000);
    writer.add_document(tokens.data(), tokens.size());
    docs.push_back(tokens);
  }
  writer.finish();
  return docs;
}

struct Fixture {
  test::ScratchDir dir{"loader"};
  std::map<std::string, std::vector<std::vector<int32_t>>> docs;

  std::string make(const std::string& name, int documents, int32_t base) {
    std::string prefix = (dir.path / name).string();
    docs[name] = write_dataset(prefix, documents, base, uint64_t(base) + 17);
    return prefix;
  }

  LoaderOptions options(std::vector<LoaderSource> sources) {
    LoaderOptions o;
    o.sources = std::move(sources);
    o.split = "90,10,0";
    o.seq_length = 16;
    o.seed = 1234;
    o.global_batch_size = 8;
    o.micro_batch_size = 2;
    o.train_samples = 8 * 20;
    o.valid_samples = 6;
    o.cache_dir = (dir.path / "cache").string();
    return o;
  }
};

// Every sample of the planned global batch, T + 1 tokens each, read through the micro-batches of
// every rank (inputs plus the last target).
std::vector<std::vector<int32_t>> read_global_batch(Loader& loader) {
  const LoaderOptions& o = loader.options;
  const int64_t B = o.micro_batch_size, T = o.seq_length;
  std::vector<std::vector<int32_t>> samples(loader.batch.size());
  std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
  const int64_t micro_batches = int64_t(loader.batch.size()) / (B * o.dp_size);
  for (int rank = 0; rank < o.dp_size; ++rank) {
    loader.options.dp_rank = rank;
    for (int64_t m = 0; m < micro_batches; ++m) {
      loader_read_micro_batch(loader, m, inputs.data(), targets.data());
      for (int64_t b = 0; b < B; ++b) {
        std::vector<int32_t> s(inputs.begin() + b * T, inputs.begin() + (b + 1) * T);
        s.push_back(targets[size_t((b + 1) * T - 1)]);
        EXPECT_TRUE(std::equal(s.begin() + 1, s.end(), targets.begin() + b * T));
        samples[size_t((m * o.dp_size + rank) * B + b)] = s;
      }
    }
  }
  loader.options.dp_rank = 0;
  return samples;
}

std::vector<std::vector<int32_t>> run_steps(Loader& loader, int steps) {
  std::vector<std::vector<int32_t>> all;
  for (int s = 0; s < steps; ++s) {
    loader_next_batch(loader);
    for (auto& sample : read_global_batch(loader)) all.push_back(sample);
  }
  return all;
}

TEST(Split, MatchesMegatronExamples) {
  EXPECT_EQ(split_bounds(parse_split("90,9,1"), 1000), (std::vector<int64_t>{0, 900, 990, 1000}));
  EXPECT_EQ(split_bounds(parse_split("969,30,1"), 10), (std::vector<int64_t>{0, 10, 10, 10}));
  EXPECT_EQ(split_bounds(parse_split("100"), 7), (std::vector<int64_t>{0, 7, 7, 7}));
  // round(2.5) = 2 in Python (half to even), and the bounds are not shifted afterwards.
  EXPECT_EQ(split_bounds(parse_split("50,50"), 5), (std::vector<int64_t>{0, 2, 5, 5}));
  // The example: Megatron trains on [0, 47) and validates on [47, 49).
  EXPECT_EQ(split_bounds(parse_split("969,30,1"), 49), (std::vector<int64_t>{0, 47, 49, 49}));
  EXPECT_EQ(split_bounds(parse_split("90,0,10"), 11), (std::vector<int64_t>{0, 10, 10, 11}));
  EXPECT_THROW(parse_split("0,1"), Error);
  EXPECT_THROW(parse_split("1,2,3,4"), Error);
}

// Every document count from 1 to 3000 for the splits people use, against Megatron core's own
// split_matrix and rounding in tests/reference/megatron_indices.py.
// Found by fuzz/cli_values: a number too large for a double parsed to inf, and the normalized
// shares became NaN.
TEST(Split, NumbersPastADoubleAreErrors) {
  const std::string huge = "1" + std::string(400, '0');
  EXPECT_THROW(parse_split(huge + ",1,1"), Error);
  EXPECT_THROW(parse_split("1," + huge), Error);
}

TEST(Split, MatchesMegatronForEveryCount) {
  test::ScratchDir dir("split");
  std::string counts;
  for (int n = 1; n <= 3000; ++n) counts += std::to_string(n) + ",";
  const char* splits[] = {"969,30,1", "949,50,1", "90,9,1", "98,2,0",
                          "1,1,1",    "99,1",     "80,20",  "0.7,0.2,0.1"};
  for (size_t k = 0; k < std::size(splits); ++k) {
    const fs::path out = dir.path / ("split_" + std::to_string(k) + ".npy");
    const std::string cmd = reference("split --split " + std::string(splits[k]) + " --counts " +
                                      counts + " --out " + out.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const std::vector<int64_t> want = npy_as_int64(read_npy(out.string()));
    ASSERT_EQ(want.size(), 3000u * 4);
    int short_of_count = 0;
    for (int64_t n = 1; n <= 3000; ++n) {
      const std::vector<int64_t> got = split_bounds(parse_split(splits[k]), n);
      const std::vector<int64_t> expected(want.begin() + (n - 1) * 4, want.begin() + n * 4);
      ASSERT_EQ(got, expected) << splits[k] << ", " << n << " documents";
      if (got.back() != n) ++short_of_count;
    }
    // The last bound is always the whole dataset.
    EXPECT_EQ(short_of_count, 0) << splits[k];
  }
}

// The order built independently: Megatron's whole blending index, each dataset's GPT indices,
// and the sample's tokens cut out of the concatenation of the documents in doc_idx order.
TEST(Loader, BlendedOrderIsMegatrons) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 0.644},
                               {"en", f.make("en", 200, 10000), 0.256},
                               {"code", f.make("code", 100, 20000), 0.1}});
  Loader loader = loader_open(o);
  const int steps = 20;
  std::vector<std::vector<int32_t>> got = run_steps(loader, steps);

  std::vector<double> raw = {0.644, 0.256, 0.1};
  BlendPlan plan = plan_blend(raw, o.train_samples);
  BlendIndices blend = build_blending_indices(plan.weights, plan.size);
  ASSERT_GE(plan.size, int64_t(got.size()));
  const char* names[] = {"ja", "en", "code"};
  for (size_t i = 0; i < got.size(); ++i) {
    const size_t d = size_t(blend.dataset_index[i]);
    const auto& docs = f.docs[names[d]];
    std::vector<int32_t> lengths;
    for (const auto& doc : docs) lengths.push_back(int32_t(doc.size()));
    std::vector<int64_t> bounds = split_bounds(parse_split(o.split), int64_t(docs.size()));
    std::vector<int32_t> train;
    for (int64_t s = bounds[0]; s < bounds[1]; ++s) train.push_back(int32_t(s));
    GptIndices idx = build_gpt_indices(
        lengths, train,
        {.num_samples = plan.num_samples[d], .seq_length = o.seq_length, .seed = o.seed});
    const int64_t s = idx.shuffle_idx[size_t(blend.dataset_sample_index[i])];
    std::vector<int32_t> stream;
    std::vector<int64_t> doc_start;
    for (int32_t doc : idx.doc_idx) {
      doc_start.push_back(int64_t(stream.size()));
      stream.insert(stream.end(), docs[size_t(doc)].begin(), docs[size_t(doc)].end());
    }
    const int64_t begin =
        doc_start[size_t(idx.sample_idx[size_t(2 * s)])] + idx.sample_idx[size_t(2 * s + 1)];
    std::vector<int32_t> want(stream.begin() + begin, stream.begin() + begin + o.seq_length + 1);
    ASSERT_EQ(got[i], want) << "global sample " << i << " (dataset " << names[d] << ")";
  }
}

// Megatron's GPT indices of one split of a fixture dataset, and the tokens of sample k of them:
// cut out of the concatenation of the documents in doc_idx order, from the sample's start to its
// end offset plus the extra token (shorter only for a last partial sample).
struct MegatronSplit {
  const std::vector<std::vector<int32_t>>* docs;
  GptIndices idx;
  std::vector<int64_t> doc_start;
  std::vector<int32_t> stream;
  int64_t extra;

  MegatronSplit(const std::vector<std::vector<int32_t>>& documents, const std::string& split,
                int which, GptIndicesConfig config)
      : docs(&documents), extra(config.add_extra_token ? 1 : 0) {
    std::vector<int32_t> lengths;
    for (const auto& doc : documents) lengths.push_back(int32_t(doc.size()));
    std::vector<int64_t> bounds = split_bounds(parse_split(split), int64_t(documents.size()));
    std::vector<int32_t> ids;
    for (int64_t s = bounds[size_t(which)]; s < bounds[size_t(which) + 1]; ++s)
      ids.push_back(int32_t(s));
    idx = build_gpt_indices(lengths, ids, config);
    for (int32_t doc : idx.doc_idx) {
      doc_start.push_back(int64_t(stream.size()));
      stream.insert(stream.end(), documents[size_t(doc)].begin(), documents[size_t(doc)].end());
    }
  }
  std::vector<int32_t> sample(int64_t k) const {
    const size_t s = size_t(idx.shuffle_idx[size_t(k)]);
    const int64_t begin = doc_start[size_t(idx.sample_idx[2 * s])] + idx.sample_idx[2 * s + 1];
    const int64_t end =
        doc_start[size_t(idx.sample_idx[2 * s + 2])] + idx.sample_idx[2 * s + 3] + extra;
    return std::vector<int32_t>(stream.begin() + begin, stream.begin() + end);
  }
};

// GPTDataset.__getitem__: tokens are the sample (pad -> 0), labels the sample shifted by one with
// the pad positions (and, without the extra token, the last one) masked: -100 here.
void expect_inputs_targets(const std::vector<int32_t>& sample, int64_t T, const int32_t* inputs,
                           const int32_t* targets, const std::string& what) {
  for (int64_t i = 0; i < T; ++i) {
    const size_t u = size_t(i);
    ASSERT_EQ(inputs[i], u < sample.size() ? sample[u] : 0) << what << " position " << i;
    ASSERT_EQ(targets[i], u + 1 < sample.size() ? sample[u + 1] : -100)
        << what << " position " << i;
  }
}

// add_extra_token_to_sequence = false: a sample is T tokens of Megatron's indices built without the
// extra token, and the last position of each has no target.
TEST(Loader, WithoutTheExtraTokenSamplesAreTTokensAndTheLastTargetIsIgnored) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 1}});
  o.add_extra_token = false;
  Loader loader = loader_open(o);
  MegatronSplit want(f.docs["ja"], o.split, 0,
                     {.num_samples = o.train_samples,
                      .seq_length = o.seq_length,
                      .seed = o.seed,
                      .add_extra_token = false});
  const int64_t B = o.micro_batch_size, T = o.seq_length;
  std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
  int64_t g = 0, ignored = 0;
  for (int step = 0; step < 5; ++step) {
    loader_next_batch(loader);
    for (int64_t m = 0; m < o.global_batch_size / B; ++m) {
      loader_read_micro_batch(loader, m, inputs.data(), targets.data());
      for (int64_t b = 0; b < B; ++b, ++g) {
        std::vector<int32_t> sample = want.sample(g);
        ASSERT_EQ(int64_t(sample.size()), T);
        expect_inputs_targets(sample, T, inputs.data() + b * T, targets.data() + b * T,
                              "sample " + std::to_string(g));
        ignored += std::count(targets.begin() + b * T, targets.begin() + (b + 1) * T, -100);
      }
    }
  }
  EXPECT_EQ(ignored, 40);  // one per sample
  // With the extra token the samples start at the same places here (the split's tokens do not
  // divide by T), and the last position has a target.
  Fixture g2;
  LoaderOptions with_extra = g2.options({{"ja", g2.make("ja", 300, 0), 1}});
  Loader other = loader_open(with_extra);
  loader_next_batch(other);
  loader_read_micro_batch(other, 0, inputs.data(), targets.data());
  EXPECT_EQ(std::vector<int32_t>(inputs.begin(), inputs.begin() + T), want.sample(0));
  EXPECT_NE(targets[size_t(T - 1)], -100);
}

// drop_last_partial_validation_sequence = false: the validation split keeps Megatron's last, short
// sample, padded: inputs 0 and targets ignored past its end.
TEST(Loader, PartialLastValidationSampleIsKeptAndPadded) {
  for (bool extra : {true, false}) {
    Fixture f;
    LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 1}});
    o.add_extra_token = extra;
    o.drop_last_partial_validation_sequence = false;
    Loader loader = loader_open(o);
    GptIndicesConfig config{.num_samples = o.valid_samples,
                            .seq_length = o.seq_length,
                            .seed = o.seed,
                            .add_extra_token = extra,
                            .drop_last_partial_sequence = false};
    MegatronSplit want(f.docs["ja"], o.split, 1, config);
    config.drop_last_partial_sequence = true;
    MegatronSplit dropped(f.docs["ja"], o.split, 1, config);
    const size_t n = loader_valid_samples(loader, 0);
    ASSERT_EQ(n, want.idx.num_samples());
    ASSERT_EQ(n, dropped.idx.num_samples() + 1) << "the fixture's split should not divide evenly";
    const int64_t B = o.micro_batch_size, T = o.seq_length;
    std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
    int64_t short_samples = 0;
    for (size_t k = 0; k < n; k += size_t(B)) {
      loader_read_valid(loader, 0, int64_t(k), inputs.data(), targets.data());
      for (int64_t b = 0; b < B; ++b) {
        const int64_t idx = int64_t((k + size_t(b)) % n);
        std::vector<int32_t> sample = want.sample(idx);
        if (int64_t(sample.size()) < T + (extra ? 1 : 0)) ++short_samples;
        expect_inputs_targets(sample, T, inputs.data() + b * T, targets.data() + b * T,
                              "valid sample " + std::to_string(idx));
      }
    }
    EXPECT_EQ(short_samples, 1) << "extra token " << extra;
  }
}

// mid_level_dataset_surplus sizes each blended source's indices as Megatron's builder does.
TEST(Loader, SurplusSizesTheBlendedSources) {
  test::ScratchDir dir("surplus");
  for (double surplus : {0.0, 0.005, 0.1}) {
    Fixture f;
    LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 0.644},
                                 {"en", f.make("en", 200, 10000), 0.256},
                                 {"code", f.make("code", 100, 20000), 0.1}});
    o.surplus = surplus;
    o.train_samples = 997;
    Loader loader = loader_open(o);
    const fs::path out = dir.path / ("s" + std::to_string(int(surplus * 1000)));
    fs::create_directories(out);
    const std::string cmd = reference("blend --weights 0.644,0.256,0.1 --size 997 --surplus " +
                                      std::to_string(surplus) + " --out " + out.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const std::vector<int64_t> build = npy_as_int64(read_npy((out / "build.npy").string()));
    std::vector<int64_t> planned;
    for (const LoaderSourceState& s : loader.state.sources) planned.push_back(s.planned_samples);
    EXPECT_EQ(planned, build) << "surplus " << surplus;
  }
  // The numbers themselves, for 997 samples: ceil(ceil(997 w) (1 + surplus)).
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 0.644},
                               {"en", f.make("en", 200, 10000), 0.256},
                               {"code", f.make("code", 100, 20000), 0.1}});
  o.train_samples = 997;
  o.surplus = 0.1;
  Loader loader = loader_open(o);
  EXPECT_EQ(loader.state.sources[0].planned_samples, 708);  // ceil(643 x 1.1 = 707.3)
  EXPECT_EQ(loader.state.sources[1].planned_samples, 282);  // ceil(256 x 1.1 = 281.6)
  // 100 x 1.1 is 110.00000000000001 in doubles, as in Python: Megatron builds 111.
  EXPECT_EQ(loader.state.sources[2].planned_samples, 111);
}

// A single dataset given with a weight takes Megatron's blended path: its indices are built for
// ceil(n x 1.005) samples, which here needs a second epoch and so reorders the samples.
TEST(Loader, SingleWeightedDatasetTakesTheBlendedPath) {
  Fixture f;
  const std::string prefix = f.make("ja", 300, 0);
  LoaderOptions o = f.options({{"ja", prefix, 1}});
  // Every sample one epoch of the train split holds: one more needs a second epoch.
  MegatronSplit one_epoch(
      f.docs["ja"], o.split, 0,
      {.num_samples = std::nullopt, .seq_length = o.seq_length, .seed = o.seed});
  o.train_samples = int64_t(one_epoch.idx.num_samples());
  o.global_batch_size = 2;
  const int64_t blended = int64_t(std::ceil(double(o.train_samples) * 1.005));
  ASSERT_GT(blended, o.train_samples);

  Loader lone = loader_open(o);
  EXPECT_EQ(lone.state.sources[0].planned_samples, o.train_samples);
  LoaderOptions w = o;
  w.weighted = true;
  w.cache_dir = (f.dir.path / "cache_weighted").string();
  Loader weighted = loader_open(w);
  EXPECT_EQ(weighted.state.sources[0].planned_samples, blended);

  MegatronSplit want(f.docs["ja"], o.split, 0,
                     {.num_samples = blended, .seq_length = o.seq_length, .seed = o.seed});
  ASSERT_EQ(want.idx.num_epochs, 2);
  std::vector<std::vector<int32_t>> got = run_steps(weighted, 10);
  std::vector<std::vector<int32_t>> got_lone = run_steps(lone, 10);
  int differ = 0;
  for (size_t g = 0; g < got.size(); ++g) {
    ASSERT_EQ(got[g], want.sample(int64_t(g))) << "sample " << g;
    differ += got[g] != got_lone[g];
  }
  EXPECT_GT(differ, 15);
}

// Megatron's ramp-up calculator and update_train_iters, against the reference's transcription.
TEST(Rampup, BatchSizesAndStepsMatchMegatron) {
  test::ScratchDir dir("rampup");
  struct Case {
    std::vector<int64_t> rampup;
    int64_t global_batch_size, train_samples;
  };
  const Case cases[] = {
      {{4, 2, 40}, 10, 100},    {{16, 8, 300000}, 1024, 1000000}, {{2, 2, 17}, 8, 53},
      {{8, 8, 1000}, 64, 5000}, {{32, 32, 2000000}, 512, 1000},   {{1, 3, 10}, 16, 10}};
  for (size_t k = 0; k < std::size(cases); ++k) {
    const Case& c = cases[k];
    const fs::path out = dir.path / ("ramp_" + std::to_string(k) + ".npy");
    const std::string cmd =
        reference("ramp --rampup " + std::to_string(c.rampup[0]) + "," +
                  std::to_string(c.rampup[1]) + "," + std::to_string(c.rampup[2]) +
                  " --global-batch-size " + std::to_string(c.global_batch_size) +
                  " --train-samples " + std::to_string(c.train_samples) + " --out " + out.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const std::vector<int64_t> want = npy_as_int64(read_npy(out.string()));
    const int64_t iters = rampup_train_iters(c.rampup, c.global_batch_size, c.train_samples);
    ASSERT_EQ(iters, want[0]) << "case " << k;
    int64_t consumed = 0;
    for (int64_t step = 0; step < iters; ++step) {
      const int64_t size = rampup_global_batch_size(c.rampup, c.global_batch_size, consumed);
      ASSERT_EQ(size, want[size_t(step) + 1]) << "case " << k << " step " << step;
      consumed += size;
    }
  }
  // The first case by hand: 40 / 3 samples per increment.
  std::vector<int64_t> sizes;
  for (int64_t consumed = 0, step = 0; step < 13; ++step) {
    sizes.push_back(rampup_global_batch_size({4, 2, 40}, 10, consumed));
    consumed += sizes.back();
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 4, 4, 6, 6, 8, 8, 10, 10, 10, 10, 10}));
  EXPECT_EQ(rampup_train_iters({4, 2, 40}, 10, 100), 13);
  EXPECT_EQ(rampup_train_iters({}, 10, 105), 10);
  EXPECT_THROW(check_rampup({4, 3, 40}, 10, 2, "x"), Error);   // 10 - 4 is not a multiple of 3
  EXPECT_THROW(check_rampup({2, 2, 40}, 10, 4, "x"), Error);   // 2 and 6 do not divide by 4
  EXPECT_THROW(check_rampup({10, 2, 40}, 10, 2, "x"), Error);  // nothing to ramp
  EXPECT_NO_THROW(check_rampup({4, 2, 40}, 10, 2, "x"));
}

// With a ramp-up, global sample g is the sample g of the constant-batch run; only the step
// boundaries move, by Megatron's sizes.  A resume in the middle of the ramp continues exactly.
TEST(Loader, RampupKeepsTheSampleOrderAndResumesMidRamp) {
  Fixture f;
  LoaderOptions o =
      f.options({{"ja", f.make("ja", 300, 0), 0.7}, {"en", f.make("en", 200, 10000), 0.3}});
  o.global_batch_size = 16;
  o.dp_size = 2;
  o.train_samples = 400;
  LoaderOptions ramp = o;
  ramp.rampup_batch_size = {4, 4, 100};
  const int64_t steps = rampup_train_iters(ramp.rampup_batch_size, 16, 400);
  EXPECT_EQ(steps, 34);  // 100 / 3 per increment: 4 x 9, 8 x 4, 12 x 3 (104), then 16 x 18
  Loader constant = loader_open(o);
  std::vector<std::vector<int32_t>> want = run_steps(constant, 25);  // 400 samples

  Loader whole = loader_open(ramp);
  std::vector<std::vector<int32_t>> got;
  std::vector<int64_t> sizes;
  for (int64_t s = 0; s < steps; ++s) {
    loader_next_batch(whole);
    sizes.push_back(int64_t(whole.batch.size()));
    for (auto& sample : read_global_batch(whole)) got.push_back(sample);
  }
  std::vector<int64_t> want_sizes(9, 4);
  want_sizes.insert(want_sizes.end(), 4, 8);
  want_sizes.insert(want_sizes.end(), 3, 12);
  want_sizes.insert(want_sizes.end(), 18, 16);
  EXPECT_EQ(sizes, want_sizes);
  ASSERT_EQ(got.size(), 104u + 18 * 16);
  for (size_t g = 0; g < got.size(); ++g) ASSERT_EQ(got[g], want[g]) << "global sample " << g;

  // Stop after 11 steps (inside the ramp: the batch is 8), resume from the saved state.
  Loader first = loader_open(ramp);
  std::vector<std::vector<int32_t>> resumed = run_steps(first, 11);
  EXPECT_EQ(loader_batch_size(first), 8);
  LoaderState state =
      loader_state_from_json(loader_state_to_json(loader_checkpoint_state(first)), "state.json");
  Loader second = loader_open(ramp, &state, "state.json");
  EXPECT_EQ(loader_batch_size(second), 8);
  for (auto& sample : run_steps(second, int(steps) - 11)) resumed.push_back(sample);
  EXPECT_EQ(resumed, got);
}

// Megatron's accounting: the validation and test splits sized as its builder is asked
// ((train_iters / eval_interval + 1) x eval_iters x G, eval_iters x G), each source building its
// plan_blend share, read as BlendedDataset's stream over the sources.
TEST(Loader, MegatronEvalAccountingReadsTheBlendedValidAndTestStreams) {
  // train_iters 100, eval_interval 10, eval_iters 5, G 8: 11 evaluation points.
  EXPECT_EQ(megatron_eval_samples(100, 10, 5, 8), (std::pair<int64_t, int64_t>{440, 40}));
  EXPECT_EQ(megatron_eval_samples(99, 10, 5, 8), (std::pair<int64_t, int64_t>{400, 40}));
  Fixture f;
  LoaderOptions o =
      f.options({{"ja", f.make("ja", 400, 0), 0.7}, {"en", f.make("en", 300, 10000), 0.3}});
  o.split = "80,10,10";
  o.megatron_eval = true;
  std::tie(o.valid_samples, o.test_samples) = megatron_eval_samples(20, 10, 2, 8);
  ASSERT_EQ(o.valid_samples, 48);
  Loader loader = loader_open(o);
  const std::vector<double> raw = {0.7, 0.3};
  const char* names[] = {"ja", "en"};
  const int64_t B = o.micro_batch_size, T = o.seq_length;
  std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
  for (int which : {1, 2}) {
    const int64_t size = which == 1 ? o.valid_samples : o.test_samples;
    const BlendPlan plan = plan_blend(raw, size);
    EXPECT_EQ(loader_eval_stream_size(loader, which), plan.size);
    const BlendIndices blend = build_blending_indices(plan.weights, plan.size);
    std::vector<MegatronSplit> want;
    for (size_t d = 0; d < 2; ++d)
      want.emplace_back(
          f.docs[names[d]], o.split, which,
          GptIndicesConfig{
              .num_samples = plan.num_samples[d], .seq_length = o.seq_length, .seed = o.seed});
    EXPECT_GT(loader.datasets[0].test.num_samples(), 0u);
    for (int64_t first = 0; first + B <= plan.size; first += B) {
      loader_read_eval_stream(loader, which, first, inputs.data(), targets.data());
      for (int64_t b = 0; b < B; ++b) {
        const size_t i = size_t(first + b);
        const size_t d = size_t(blend.dataset_index[i]);
        expect_inputs_targets(want[d].sample(blend.dataset_sample_index[i]), T,
                              inputs.data() + b * T, targets.data() + b * T,
                              "split " + std::to_string(which) + " sample " + std::to_string(i));
      }
    }
  }
  // The numbers: 48 validation samples blend 34 + 15 (ceil 33.6, ceil 14.4), built 35 and 16.
  EXPECT_EQ(loader_eval_stream_size(loader, 1), 49);
  EXPECT_EQ(loader_eval_stream_size(loader, 2), 17);
}

// tests/reference/megatron_indices.py persplit: the tokens of every sample of each split Megatron's
// builder makes from blend_per_split, read from the same .bin/.idx files; rows padded with -1.
struct ReferenceSplits {
  std::map<std::string, std::vector<std::vector<int32_t>>> samples;  // "train", "valid", "test"

  ReferenceSplits(const fs::path& out, const std::string& args) {
    fs::create_directories(out);
    const std::string cmd = reference("persplit " + args + " --out " + out.string());
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    for (const char* name : {"train", "valid", "test"}) {
      const fs::path file = out / (std::string(name) + "_samples.npy");
      if (!fs::exists(file)) continue;
      const NpyArray array = read_npy(file.string());
      const std::vector<int64_t> values = npy_as_int64(array);
      const int64_t rows = array.shape[0], width = array.shape[1];
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int32_t> row;
        for (int64_t c = 0; c < width && values[size_t(r * width + c)] >= 0; ++c)
          row.push_back(int32_t(values[size_t(r * width + c)]));
        samples[name].push_back(row);
      }
    }
  }
};

// Every sample of Megatron's validation (1) or test (2) split against the reference's.
void expect_eval_stream(Loader& loader, int which, const std::vector<std::vector<int32_t>>& want) {
  const int64_t B = loader.options.micro_batch_size, T = loader.options.seq_length;
  ASSERT_EQ(loader_eval_stream_size(loader, which), int64_t(want.size()));
  std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
  for (int64_t first = 0; first + B <= int64_t(want.size()); first += B) {
    loader_read_eval_stream(loader, which, first, inputs.data(), targets.data());
    for (int64_t b = 0; b < B; ++b)
      expect_inputs_targets(
          want[size_t(first + b)], T, inputs.data() + b * T, targets.data() + b * T,
          "split " + std::to_string(which) + " sample " + std::to_string(first + b));
  }
}

// Megatron's blend_per_split: three training datasets blended by weight, two validation datasets
// blended with the surplus, one weighted test dataset (not blended), each read whole, the split
// string ignored.  Every sample of every split equals the reference's, read from the same files.
TEST(Loader, BlendPerSplitIsMegatrons) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 0.644},
                               {"en", f.make("en", 200, 10000), 0.256},
                               {"code", f.make("code", 100, 20000), 0.1}});
  o.blend_per_split = true;
  o.split = "50,50";  // ignored: a training dataset is read whole
  o.valid_sources = {{"ja_valid", f.make("ja_valid", 80, 30000), 0.7},
                     {"en_valid", f.make("en_valid", 60, 40000), 0.3}};
  o.test_sources = {{"ja_test", f.make("ja_test", 50, 50000), 2}};
  o.megatron_eval = true;
  std::tie(o.valid_samples, o.test_samples) = megatron_eval_samples(20, 10, 2, 8);
  Loader loader = loader_open(o);
  EXPECT_EQ(loader.state.split, "blend_per_split");
  for (const LoaderDataset& d : loader.datasets)
    EXPECT_EQ(d.train_documents.size(), f.docs[d.name].size()) << d.name;

  auto blend = [](const std::vector<LoaderSource>& sources) {
    std::string text;
    for (const LoaderSource& s : sources) text += std::to_string(s.weight) + " " + s.prefix + " ";
    return "\"" + text + "\"";
  };
  ReferenceSplits want(f.dir.path / "reference",
                       "--train " + blend(o.sources) + " --valid " + blend(o.valid_sources) +
                           " --test " + blend(o.test_sources) + " --split-sizes 160," +
                           std::to_string(o.valid_samples) + "," + std::to_string(o.test_samples) +
                           " --seq-length 16 --seed 1234");
  std::vector<std::vector<int32_t>> got = run_steps(loader, 20);
  ASSERT_EQ(want.samples["train"].size(), 161u);  // sum of ceil(160 w): 104 + 41 + 16
  for (size_t g = 0; g < got.size(); ++g)
    ASSERT_EQ(got[g], want.samples["train"][g]) << "train sample " << g;
  // 48 validation samples: ceil(33.6) + ceil(14.4) = 49; the lone test dataset gives 16.
  ASSERT_EQ(want.samples["valid"].size(), 49u);
  ASSERT_EQ(want.samples["test"].size(), 16u);
  expect_eval_stream(loader, 1, want.samples["valid"]);
  expect_eval_stream(loader, 2, want.samples["test"]);
}

// A lone dataset of a split is not blended even with a weight (only the `split` path blends a
// weighted lone dataset): the training indices are built for train_samples, not ceil(n x 1.005).
// The validation dataset keeps its partial last sample (drop_last_partial_validation_sequence =
// false) and there is no test data: no test stream.
TEST(Loader, BlendPerSplitLoneDatasetsAreNotBlended) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 3}});
  o.weighted = true;
  o.blend_per_split = true;
  o.valid_sources = {{"en_valid", f.make("en_valid", 7, 40000), 5}};
  o.drop_last_partial_validation_sequence = false;
  o.megatron_eval = true;
  std::tie(o.valid_samples, o.test_samples) = megatron_eval_samples(20, 10, 1, 8);
  Loader loader = loader_open(o);
  EXPECT_EQ(loader.state.sources[0].planned_samples, 160);
  EXPECT_EQ(loader_eval_stream_size(loader, 2), 0);

  ReferenceSplits want(f.dir.path / "reference",
                       "--train \"3 " + o.sources[0].prefix + "\" --valid \"5 " +
                           o.valid_sources[0].prefix +
                           "\" --split-sizes 160,24,8 --seq-length 16 --seed 1234 --drop-last 0");
  EXPECT_EQ(want.samples.count("test"), 0u);
  std::vector<std::vector<int32_t>> got = run_steps(loader, 20);
  ASSERT_EQ(want.samples["train"].size(), 160u);
  for (size_t g = 0; g < got.size(); ++g)
    ASSERT_EQ(got[g], want.samples["train"][g]) << "train sample " << g;
  // 7 short documents: more than one epoch, and some samples end short (padded).
  const auto& valid = want.samples["valid"];
  EXPECT_TRUE(std::any_of(valid.begin(), valid.end(),
                          [](const std::vector<int32_t>& s) { return s.size() < 17; }));
  expect_eval_stream(loader, 1, valid);
}

TEST(Loader, BlendPerSplitBadInput) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 1}});
  o.blend_per_split = true;
  const std::string tiny = (f.dir.path / "tiny").string();
  {
    IndexedDatasetWriter writer(tiny, TokenDtype::i32);
    const int32_t tokens[] = {1, 2, 3, 4, 5};
    writer.add_document(tokens, 5);
    writer.finish();
  }
  o.valid_sources = {{"tiny", tiny, 1}};
  // Separate validation data is read with Megatron's accounting only.
  try {
    loader_open(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("need Megatron's accounting"), std::string::npos)
        << e.what();
  }
  // A validation dataset too short for one sample is an error naming it.
  o.megatron_eval = true;
  o.valid_samples = 8;
  try {
    loader_open(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny.idx"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the validation dataset \"tiny\" (1 sequences)"),
              std::string::npos)
        << e.what();
  }
  // A checkpoint of a run with a split does not continue as blend_per_split.
  LoaderOptions split_run = f.options(o.sources);
  Loader first = loader_open(split_run);
  loader_next_batch(first);
  const LoaderState saved = loader_checkpoint_state(first);
  o.valid_sources.clear();
  try {
    loader_open(o, &saved, "ckpt/state.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "ckpt/state.json: split was \"90,10,0\", now \"blend_per_split\""),
              std::string::npos)
        << e.what();
  }
}

TEST(Loader, DataParallelRanksSplitTheSameGlobalBatch) {
  Fixture f;
  std::vector<LoaderSource> sources = {{"ja", f.make("ja", 300, 0), 3},
                                       {"en", f.make("en", 200, 10000), 1}};
  LoaderOptions one = f.options(sources);
  LoaderOptions two = one;
  two.dp_size = 2;
  Loader a = loader_open(one), b = loader_open(two);
  EXPECT_EQ(run_steps(a, 5), run_steps(b, 5));
}

TEST(Loader, ResumeContinuesExactlyAndVerifiesTheNextBatch) {
  Fixture f;
  LoaderOptions o =
      f.options({{"ja", f.make("ja", 300, 0), 0.7}, {"en", f.make("en", 200, 10000), 0.3}});
  Loader whole = loader_open(o);
  std::vector<std::vector<int32_t>> expected = run_steps(whole, 30);  // past train_samples too

  Loader first = loader_open(o);
  std::vector<std::vector<int32_t>> got = run_steps(first, 7);
  nlohmann::json saved = loader_state_to_json(loader_checkpoint_state(first));
  LoaderState state = loader_state_from_json(nlohmann::json::parse(saved.dump()), "state.json");
  std::vector<std::string> notes;
  Loader resumed = loader_open(o, &state, "state.json", &notes);
  EXPECT_TRUE(notes.empty());
  for (auto& sample : run_steps(resumed, 23)) got.push_back(sample);
  EXPECT_EQ(got, expected);

  LoaderState wrong = state;
  *wrong.next_batch_hash ^= 1;
  try {
    loader_open(o, &wrong, "ckpt/step_7/loader.json");
    FAIL() << "a wrong next-batch hash was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt/step_7/loader.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("next batch"), std::string::npos) << e.what();
  }
  LoaderOptions other_seed = o;
  other_seed.seed = 99;
  EXPECT_THROW(loader_open(other_seed, &state, "state.json"), Error);
}

TEST(Loader, ChangedDataUnderTheSameNameIsRefusedOnResume) {
  Fixture f;
  LoaderOptions o = f.options({{"ja", f.make("ja", 300, 0), 1}});
  Loader first = loader_open(o);
  run_steps(first, 3);
  LoaderState state = loader_checkpoint_state(first);
  f.make("ja", 300, 7);  // same prefix, other tokens
  EXPECT_THROW(loader_open(o, &state, "state.json"), Error);
}

// Weights change and a third dataset joins after 6 steps: every dataset goes on from its own count,
// so no sample is read twice, and the new segment follows the new weights.
TEST(Loader, BlendChangesMidRunWithoutRereading) {
  Fixture f;
  std::string ja = f.make("ja", 300, 0), en = f.make("en", 300, 10000);
  std::string code = f.make("code", 300, 20000);
  LoaderOptions before = f.options({{"ja", ja, 0.5}, {"en", en, 0.5}});
  Loader first = loader_open(before);
  std::vector<SampleRef> refs;
  for (int s = 0; s < 6; ++s) {
    loader_next_batch(first);
    for (SampleRef r : first.batch) refs.push_back({r.source, r.index});
  }
  LoaderState state = loader_checkpoint_state(first);
  LoaderOptions after = f.options({{"ja", ja, 0.2}, {"code", code, 0.6}, {"en", en, 0.2}});
  std::vector<std::string> notes;
  Loader second = loader_open(after, &state, "state.json", &notes);
  ASSERT_EQ(notes.size(), 1u);
  std::map<std::string, int64_t> new_counts;
  std::map<std::string, std::vector<int64_t>> indices;
  for (SampleRef r : refs) indices[first.datasets[size_t(r.source)].name].push_back(r.index);
  for (int s = 0; s < 10; ++s) {
    loader_next_batch(second);
    for (SampleRef r : second.batch) {
      const std::string& name = second.datasets[size_t(r.source)].name;
      indices[name].push_back(r.index);
      ++new_counts[name];
    }
  }
  for (auto& [name, list] : indices) {
    for (size_t i = 0; i < list.size(); ++i) ASSERT_EQ(list[i], int64_t(i)) << name;
  }
  EXPECT_EQ(new_counts["code"], 48);  // 0.6 of 80
  EXPECT_EQ(new_counts["ja"], 16);
  EXPECT_EQ(new_counts["en"], 16);
}

TEST(Loader, ValidationIsPerDataset) {
  Fixture f;
  LoaderOptions o =
      f.options({{"ja", f.make("ja", 300, 0), 1}, {"en", f.make("en", 300, 10000), 1}});
  Loader loader = loader_open(o);
  std::vector<int32_t> inputs(32), targets(32);
  for (size_t d = 0; d < 2; ++d) {
    ASSERT_GE(loader_valid_samples(loader, d), 6u);
    loader_read_valid(loader, d, 0, inputs.data(), targets.data());
    for (int32_t t : inputs) EXPECT_EQ(t / 10000, int32_t(d));
  }
}

TEST(Loader, TokensOutsideTheVocabularyNameTheDataset) {
  Fixture f;
  LoaderOptions o = f.options({{"en", f.make("en", 50, 10000), 1}});
  o.vocab_size = 12000;
  Loader loader = loader_open(o);
  loader_next_batch(loader);
  std::vector<int32_t> inputs(32), targets(32);
  try {
    for (int m = 0; m < 4; ++m) loader_read_micro_batch(loader, m, inputs.data(), targets.data());
    FAIL() << "ids >= vocab_size were read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("en.bin"), std::string::npos) << e.what();
  }
}

TEST(LoaderState, BadJsonIsAnErrorNamingTheFile) {
  LoaderState s;
  s.seq_length = 16;
  s.split = "1";
  s.consumed_samples = 3;
  s.sources.push_back({"ja", "/x/ja", 10, 3, 0});
  nlohmann::json good = loader_state_to_json(s);
  EXPECT_NO_THROW(loader_state_from_json(good, "state.json"));
  nlohmann::json missing = good;
  missing.erase("sources");
  nlohmann::json wrong_sum = good;
  wrong_sum["consumed_samples"] = 4;
  nlohmann::json bad_hash = good;
  bad_hash["next_batch_hash"] = "xyz";
  for (const nlohmann::json& j : {missing, wrong_sum, bad_hash}) {
    try {
      loader_state_from_json(j, "state.json");
      FAIL() << j.dump();
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("state.json", 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace hibari
