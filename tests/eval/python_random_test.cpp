// tests/eval/python_random_test.cpp — eval/python_random against CPython itself: every value in
// tests/fixtures/eval/python_random.json (written by tests/reference/python_random.py) must come
// out equal, draw for draw, including what the generator yields after each sequence (so a draw
// that consumed one word too many or too few fails too).
#include "eval/python_random.h"

#include <gtest/gtest.h>

#include <bit>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

using nlohmann::json;

const json& fixture() {
  static const json j = [] {
    std::ifstream in(std::string(HIBARI_SOURCE_DIR) + "/tests/fixtures/eval/python_random.json");
    EXPECT_TRUE(in) << "missing tests/fixtures/eval/python_random.json";
    return json::parse(in);
  }();
  return j;
}

std::vector<std::string> strings(const json& j) { return j.get<std::vector<std::string>>(); }
std::vector<size_t> indices(const json& j) { return j.get<std::vector<size_t>>(); }

TEST(PythonRandom, Generators) {
  ASSERT_EQ(fixture()["generators"].size(), 6u);
  for (const json& g : fixture()["generators"]) {
    uint64_t seed = g["seed"];
    SCOPED_TRACE("seed " + std::to_string(seed));
    PythonRandom rnd = python_random_with_seed(seed);
    for (const json& want : g["u32"]) EXPECT_EQ(python_random_u32(rnd), want.get<uint32_t>());

    python_random_seed(rnd, seed);  // reseeding starts over
    for (const json& kv : g["getrandbits"]) {
      int k = kv[0];
      EXPECT_EQ(python_getrandbits(rnd, k), kv[1].get<uint64_t>()) << "k=" << k;
    }
    for (size_t i = 0; i < g["random"].size(); ++i) {
      double x = python_random(rnd);
      EXPECT_EQ(x, g["random"][i].get<double>());
      EXPECT_EQ(std::bit_cast<uint64_t>(x), g["random_bits"][i].get<uint64_t>());
    }
    for (const json& nv : g["randbelow"]) {
      uint64_t n = nv[0];
      EXPECT_EQ(python_randbelow(rnd, n), nv[1].get<uint64_t>()) << "n=" << n;
    }
  }
}

TEST(PythonRandom, Shuffles) {
  for (const json& s : fixture()["shuffles"]) {
    size_t n = s["n"];
    SCOPED_TRACE("seed " + std::to_string(s["seed"].get<uint64_t>()) + " n " + std::to_string(n));
    PythonRandom rnd = python_random_with_seed(s["seed"]);
    std::vector<size_t> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = i;
    python_shuffle_indices(rnd, x);
    EXPECT_EQ(x, indices(s["perm"]));
    EXPECT_EQ(python_random_u32(rnd), s["after"].get<uint32_t>());
  }
}

TEST(PythonRandom, ShuffleTemplateMovesValues) {
  // The same permutation as the indices, applied to any element type.
  PythonRandom a = python_random_with_seed(42);
  PythonRandom b = python_random_with_seed(42);
  std::vector<size_t> order{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<std::string> words{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  std::vector<std::string> copy = words;
  python_shuffle_indices(a, order);
  python_shuffle(b, words);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(words[i], copy[order[i]]);
}

TEST(PythonRandom, SamplesBothBranchesOnOneGenerator) {
  const json& s = fixture()["samples"];
  PythonRandom rnd = python_random_with_seed(s["seed"]);
  for (const json& d : s["draws"]) {
    size_t n = d["n"];
    size_t k = d["k"];
    EXPECT_EQ(python_sample_indices(rnd, n, k), indices(d["indices"])) << "n=" << n << " k=" << k;
  }
  EXPECT_EQ(python_random_u32(rnd), s["after"].get<uint32_t>());
}

TEST(PythonRandom, SampleLargerThanPopulationThrows) {
  PythonRandom rnd = python_random_with_seed(42);
  EXPECT_THROW(python_sample_indices(rnd, 3, 4), Error);
  EXPECT_THROW(python_sample_indices(rnd, 0, 1), Error);
  EXPECT_NE(test::error_of([&] { python_sample_indices(rnd, 3, 4); }).find("larger"),
            std::string::npos);
  EXPECT_TRUE(python_sample_indices(rnd, 0, 0).empty());
}

TEST(PythonRandom, Stratified) {
  const json& s = fixture()["stratified"];
  PythonRandom rnd = python_random_with_seed(s["seed"]);
  std::vector<std::string> labels = strings(s["labels"]);
  for (const json& c : s["cases"]) {
    EXPECT_EQ(harness_stratified_sample(rnd, labels, c["k"]), indices(c["indices"]))
        << "k=" << c["k"];
  }
  std::vector<std::string> small = strings(s["small_labels"]);
  for (const json& c : s["small_cases"]) {
    EXPECT_EQ(harness_stratified_sample(rnd, small, c["k"]), indices(c["indices"]))
        << "small k=" << c["k"];
  }
  EXPECT_EQ(python_random_u32(rnd), s["after"].get<uint32_t>());
  EXPECT_THROW(harness_stratified_sample(rnd, {}, 1), Error);
  EXPECT_THROW(harness_stratified_sample(rnd, {"a", "b"}, 3), Error);  // 2 > 1 in a group
}

TEST(PythonRandom, HarnessSequence) {
  // evaluator.py's order of the 1119 docs, then 20 draws of 3 from 20073 training docs.
  const json& h = fixture()["harness_sequence"];
  PythonRandom rnd;
  python_random_seed(rnd, 42);
  std::vector<size_t> order(h["n_docs"].get<size_t>());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  python_shuffle_indices(rnd, order);
  EXPECT_EQ(order, indices(h["order"]));
  for (const json& want : h["shots"]) {
    EXPECT_EQ(harness_fewshot_indices(rnd, h["n_train"], h["k"]), indices(want));
  }
  EXPECT_EQ(python_random_u32(rnd), h["after"].get<uint32_t>());
}

TEST(PythonRandom, HarnessStratifiedSequence) {
  const json& h = fixture()["harness_stratified_sequence"];
  std::vector<std::string> labels = strings(h["labels"]);
  PythonRandom rnd = python_random_with_seed(42);
  std::vector<size_t> order(h["n_docs"].get<size_t>());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  python_shuffle_indices(rnd, order);
  EXPECT_EQ(order, indices(h["order"]));
  for (const json& want : h["shots"]) {
    EXPECT_EQ(harness_fewshot_indices(rnd, labels.size(), h["k"], &labels), indices(want));
  }
  EXPECT_EQ(python_random_u32(rnd), h["after"].get<uint32_t>());
}

TEST(PythonRandom, ZeroShotDrawsNothing) {
  PythonRandom a = python_random_with_seed(42);
  PythonRandom b = a;
  std::vector<std::string> labels{"x", "y"};
  EXPECT_TRUE(harness_fewshot_indices(a, 100, 0).empty());
  EXPECT_TRUE(harness_fewshot_indices(a, 2, 0, &labels).empty());
  EXPECT_EQ(python_random_u32(a), python_random_u32(b));
}

TEST(PythonRandom, WithoutTrainingDocsDropsEqualDocs) {
  const json& w = fixture()["without_training"];
  std::vector<std::string> values = strings(w["values"]);
  PythonRandom rnd = python_random_with_seed(w["seed"]);
  for (const json& d : w["draws"]) {
    size_t doc = d["doc"];
    auto equals_current = [&](size_t i) { return values[i] == values[doc]; };
    EXPECT_EQ(harness_fewshot_indices_without_training(rnd, values.size(), d["k"], equals_current),
              indices(d["indices"]))
        << "doc=" << doc << " k=" << d["k"];
  }
  EXPECT_EQ(python_random_u32(rnd), w["after"].get<uint32_t>());
}

TEST(PythonRandom, OtherSeedsDiffer) {
  // The comparisons above can fail: neighbouring seeds, and a seed's high word, change the draws.
  const json& h = fixture()["harness_sequence"];
  for (uint64_t seed : {41ull, 43ull, 42ull + (1ull << 32)}) {
    PythonRandom rnd = python_random_with_seed(seed);
    std::vector<size_t> order(h["n_docs"].get<size_t>());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    python_shuffle_indices(rnd, order);
    EXPECT_NE(order, indices(h["order"])) << "seed " << seed;
  }
  PythonRandom zero = python_random_with_seed(0);
  EXPECT_NE(python_random_u32(zero), fixture()["generators"][1]["u32"][0].get<uint32_t>());
}

}  // namespace
}  // namespace hibari
