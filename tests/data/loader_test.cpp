// data/loader.h: the blended order equals Megatron's arrays, data-parallel slices cover the global
// batch, a resume continues exactly, blends change mid-run without re-reading, and a changed
// dataset or a corrupt state is refused.
#include "data/loader.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/blend_indices.h"
#include "data/indexed_dataset.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

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
  std::vector<std::vector<int32_t>> samples(size_t(o.global_batch_size));
  std::vector<int32_t> inputs(size_t(B * T)), targets(size_t(B * T));
  const int64_t micro_batches = o.global_batch_size / (B * o.dp_size);
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
  // round(2.5) = 2 in Python (half to even): [0, 2, 4, 4], then every bound moves by the missing 1.
  EXPECT_EQ(split_bounds(parse_split("50,50"), 5), (std::vector<int64_t>{0, 3, 5, 5}));
  EXPECT_THROW(parse_split("0,1"), Error);
  EXPECT_THROW(parse_split("1,2,3,4"), Error);
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
