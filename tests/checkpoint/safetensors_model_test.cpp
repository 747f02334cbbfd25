// checkpoint/safetensors: the mapped reader (zero-copy views), fp32 -> F16 / BF16 conversion on
// write, the named corruption cases, and Hugging Face model directories (sharded writer, index-
// aware reader and its consistency errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/dtype.h"
#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

using test::error_of;
using test::one_line_error;

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * float(int(i % 97) - 48) / 7.0f;
  return v;
}

TEST(SafetensorsMapped, ViewIsZeroCopyInsideTheMapping) {
  test::ScratchDir dir("safetensors_model");
  const std::string path = dir.file("a.safetensors");
  const std::vector<float> a = ramp(1000, 1.0f), b = ramp(10, 3.0f);
  safetensors_write(
      path, {{"a", StDtype::F32, {10, 100}, a.data()}, {"b", StDtype::F32, {10}, b.data()}});
  SafeTensorsFile f = safetensors_read(path);
  std::span<const float> va = f.view_f32("a", {10, 100});
  ASSERT_EQ(va.size(), a.size());
  const auto* lo = f.mapping.data;
  const auto* p = reinterpret_cast<const unsigned char*>(va.data());
  EXPECT_TRUE(p >= lo && p + 4000 <= lo + f.mapping.size);
  EXPECT_TRUE(std::equal(va.begin(), va.end(), a.begin()));
  // Moving the file keeps the views valid.
  SafeTensorsFile g = std::move(f);
  EXPECT_EQ(g.view_f32("a").data(), va.data());
  EXPECT_TRUE(one_line_error(error_of([&] {
                               g.view_f32("a", {100, 10});
                             }),
                             path, "has shape [10, 100], expected [100, 10]"));
}

// The nearest half to x by brute force over every finite half, ties to the even encoding.
uint16_t nearest_f16(float x, const std::vector<std::pair<double, uint16_t>>& halves) {
  const double v = x;
  if (std::fabs(v) >= 65520.0) return uint16_t((x < 0 ? 0x8000 : 0) | 0x7c00);
  auto it = std::lower_bound(halves.begin(), halves.end(), std::make_pair(v, uint16_t(0)));
  uint16_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (auto c = it == halves.begin() ? it : it - 1; c != halves.end() && c <= it; ++c) {
    const double d = std::fabs(c->first - v);
    if (d < best_d || (d == best_d && (c->second & 1) == 0)) {
      best = c->second;
      best_d = d;
    }
  }
  if (best_d == 0 || (best & 0x7fff) == 0) best = uint16_t((best & 0x7fff) | (x < 0 ? 0x8000 : 0));
  return best;
}

TEST(SafetensorsMapped, F16ConversionIsExactAndRoundsToNearestEven) {
  // Every half survives f16 -> f32 -> f16 (NaNs stay NaN).
  std::vector<std::pair<double, uint16_t>> halves;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << h;
    if (!std::isinf(f) && !(h == 0x8000)) halves.push_back({double(f), uint16_t(h)});
  }
  std::sort(halves.begin(), halves.end());
  // Ties: 2^-25 is halfway between 0 and the smallest subnormal (even: 0); 3 * 2^-25 between
  // 1 and 2 units (even: 2); 65520 between 65504 and the next step (rounds to inf).
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(-1e-30f), 0x8000);
  // Random floats over the whole half range against the brute-force nearest.
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> exponent(-27.0f, 16.5f);
  for (int i = 0; i < 200000; ++i) {
    const float x = (gen() & 1 ? -1.0f : 1.0f) * std::exp2(exponent(gen));
    ASSERT_EQ(f32_to_f16(x), nearest_f16(x, halves)) << x;
  }
}

TEST(SafetensorsMapped, WriterRoundsF32ToBf16AndF16) {
  test::ScratchDir dir("safetensors_model");
  const std::string path = dir.file("c.safetensors");
  std::vector<float> v = ramp(3000, 0.37f);
  v[0] = std::numeric_limits<float>::quiet_NaN();
  v[1] = -0.0f;
  v[2] = 1.00390625f;  // halfway between two bf16 values: ties to even
  safetensors_write(path, {{"bf", StDtype::BF16, {3000}, v.data(), true},
                           {"h", StDtype::F16, {3, 1000}, v.data(), true},
                           {"f", StDtype::F32, {3000}, v.data(), true}});
  SafeTensorsFile f = safetensors_read(path);
  const auto bf = f.bytes(f.require("bf")), h = f.bytes(f.require("h"));
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t b, x;
    std::memcpy(&b, bf.data() + 2 * i, 2);
    std::memcpy(&x, h.data() + 2 * i, 2);
    ASSERT_EQ(b, f32_to_bf16(v[i])) << i;
    ASSERT_EQ(x, f32_to_f16(v[i])) << i;
  }
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  const std::vector<float> back = f.read_f32("f");
  EXPECT_EQ(std::memcmp(back.data(), v.data(), v.size() * 4), 0);
}

// ---- corruption -------------------------------------------------------------------------------

class SafetensorsCorrupt : public testing::Test {
 protected:
  void SetUp() override {
    const std::vector<float> a = ramp(16, 1.0f), b = ramp(8, 2.0f);
    safetensors_write(path_,
                      {{"a", StDtype::F32, {4, 4}, a.data()}, {"b", StDtype::F32, {8}, b.data()}});
    bytes_ = test::read_file(path_);
    header_size_ = 0;
    for (int i = 7; i >= 0; --i) header_size_ = (header_size_ << 8) | uint8_t(bytes_[size_t(i)]);
  }
  std::string header() const { return bytes_.substr(8, header_size_); }
  // The file with its header replaced (same length, so the data stays where it was).
  void put_header(std::string h) {
    ASSERT_LE(h.size(), header_size_);
    h.append(header_size_ - h.size(), ' ');
    test::write_file(path_, bytes_.substr(0, 8) + h + bytes_.substr(8 + header_size_));
  }
  std::string read_error() {
    return error_of([&] { safetensors_read(path_); });
  }

  test::ScratchDir dir_{"safetensors_model"};
  std::string path_ = dir_.file("x.safetensors");
  std::string bytes_;
  uint64_t header_size_ = 0;
};

TEST_F(SafetensorsCorrupt, Truncated) {
  test::write_file(path_, bytes_.substr(0, bytes_.size() - 4));
  EXPECT_TRUE(one_line_error(read_error(), path_, "is beyond the data section"));
  test::write_file(path_, bytes_.substr(0, 5));
  EXPECT_TRUE(one_line_error(read_error(), path_, "too short"));
}

TEST_F(SafetensorsCorrupt, BitFlippedHeader) {
  std::string h = header();
  h[h.find('{')] ^= 0x04;  // '{' -> '\x7f'
  put_header(h);
  EXPECT_TRUE(one_line_error(read_error(), path_, "header is not valid JSON"));
}

TEST_F(SafetensorsCorrupt, OverlappingOffsets) {
  nlohmann::json h = nlohmann::json::parse(header());
  h["b"]["data_offsets"] = {32, 64};  // inside a's [0, 64)
  put_header(h.dump());
  EXPECT_TRUE(one_line_error(read_error(), path_, "overlaps tensor"));
}

TEST_F(SafetensorsCorrupt, WrongByteLength) {
  nlohmann::json h = nlohmann::json::parse(header());
  h["b"]["shape"] = {9};
  put_header(h.dump());
  EXPECT_TRUE(
      one_line_error(read_error(), path_, "data_offsets span 32 bytes but F32 [9] needs 36"));
}

TEST_F(SafetensorsCorrupt, HeaderSizeBeyondFile) {
  std::string b = bytes_;
  b[0] = char(0xff);
  b[1] = char(0xff);
  test::write_file(path_, b);
  EXPECT_TRUE(one_line_error(read_error(), path_, "exceeds the file size"));
}

// ---- model directories ------------------------------------------------------------------------

struct ModelTensors {
  std::vector<std::vector<float>> values;
  std::vector<SafeTensorOut> out;
};

// Six tensors of 4000, 400, 4000, 8000, 40, 4000 bytes (F32).
ModelTensors six_tensors() {
  ModelTensors m;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> specs = {
      {"model.embed_tokens.weight", {10, 100}},
      {"model.norm.weight", {100}},
      {"layers.0.w", {100, 10}},
      {"layers.1.w", {20, 100}},
      {"layers.1.n", {10}},
      {"lm_head.weight", {10, 100}}};
  for (size_t i = 0; i < specs.size(); ++i) {
    size_t n = 1;
    for (int64_t d : specs[i].second) n *= size_t(d);
    m.values.push_back(ramp(n, float(i + 1)));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    m.out.push_back({specs[i].first, StDtype::F32, specs[i].second, m.values[i].data()});
  }
  return m;
}

TEST(SafetensorsModel, SingleFileWhenItFits) {
  test::ScratchDir dir("safetensors_model");
  ModelTensors m = six_tensors();
  EXPECT_EQ(safetensors_write_model(dir.path.string(), m.out, 20440),
            std::vector<std::string>{"model.safetensors"});
  SafeTensorsModel model = safetensors_open_model(dir.path.string());
  EXPECT_TRUE(model.index_path.empty());
  EXPECT_EQ(model.tensors.size(), 6u);
}

TEST(SafetensorsModel, ShardsFollowHuggingFaceRules) {
  test::ScratchDir dir("safetensors_model");
  ModelTensors m = six_tensors();
  // Limit 5000: [4000 + 400], [4000], [8000 alone: larger than the limit], [40 + 4000].
  const std::vector<std::string> files =
      safetensors_write_model(dir.path.string(), m.out, 5000, {{"format", "pt"}});
  const std::vector<std::string> expected = {
      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
      "model.safetensors.index.json"};
  EXPECT_EQ(files, expected);
  const nlohmann::json index =
      nlohmann::json::parse(test::read_file(dir.path / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 20440);
  EXPECT_EQ(index["weight_map"]["model.norm.weight"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.1.w"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["lm_head.weight"], "model-00004-of-00004.safetensors");

  SafeTensorsModel model = safetensors_open_model(dir.path.string());
  EXPECT_EQ(model.files.size(), 4u);
  for (size_t i = 0; i < m.out.size(); ++i) {
    const SafeTensorsFile* f = model.file_of(m.out[i].name);
    ASSERT_NE(f, nullptr) << m.out[i].name;
    EXPECT_EQ(f->metadata.at("format"), "pt");
    EXPECT_EQ(f->read_f32(m.out[i].name, m.out[i].shape), m.values[i]);
  }
  // Moving the model keeps its pointers valid.
  SafeTensorsModel moved = std::move(model);
  EXPECT_EQ(moved.file_of("lm_head.weight")->read_f32("lm_head.weight"), m.values[5]);
}

class SafetensorsModelErrors : public testing::Test {
 protected:
  void SetUp() override {
    m_ = six_tensors();
    safetensors_write_model(dir_.path.string(), m_.out, 5000);
    index_ = nlohmann::json::parse(test::read_file(index_path()));
  }
  std::string index_path() const { return dir_.file("model.safetensors.index.json"); }
  void put_index() { test::write_file(index_path(), index_.dump()); }
  std::string open_error() {
    return error_of([&] { safetensors_open_model(dir_.path.string()); });
  }

  test::ScratchDir dir_{"safetensors_model"};
  ModelTensors m_;
  nlohmann::json index_;
};

TEST_F(SafetensorsModelErrors, MissingShardIsNamed) {
  fs::remove(dir_.path / "model-00003-of-00004.safetensors");
  EXPECT_TRUE(
      one_line_error(open_error(), dir_.file("model-00003-of-00004.safetensors"), "missing shard"));
}

TEST_F(SafetensorsModelErrors, IndexPlacesATensorInTheWrongShard) {
  index_["weight_map"]["lm_head.weight"] = "model-00001-of-00004.safetensors";
  put_index();
  EXPECT_TRUE(one_line_error(open_error(), dir_.file("model-00001-of-00004.safetensors"),
                             "no tensor 'lm_head.weight'"));
}

TEST_F(SafetensorsModelErrors, ShardHoldsATensorTheIndexDoesNotName) {
  index_["weight_map"].erase("layers.1.n");
  put_index();
  EXPECT_TRUE(one_line_error(open_error(), dir_.file("model-00004-of-00004.safetensors"),
                             "tensor 'layers.1.n' is not placed in this shard"));
}

TEST_F(SafetensorsModelErrors, IndexMayNotLeaveTheDirectory) {
  index_["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors";
  put_index();
  EXPECT_TRUE(one_line_error(open_error(), index_path(), "not a file name inside the directory"));
}

TEST_F(SafetensorsModelErrors, MalformedIndex) {
  test::write_file(index_path(), "{\"weight_map\": [");
  EXPECT_TRUE(one_line_error(open_error(), index_path(), "not valid JSON"));
  test::write_file(index_path(), "{\"metadata\": {}}");
  EXPECT_TRUE(one_line_error(open_error(), index_path(), "missing the \"weight_map\" object"));
}

TEST_F(SafetensorsModelErrors, TruncatedShard) {
  const fs::path shard = dir_.path / "model-00002-of-00004.safetensors";
  const std::string bytes = test::read_file(shard);
  test::write_file(shard, bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(one_line_error(open_error(), shard.string(), "beyond the data section"));
}

TEST_F(SafetensorsModelErrors, NoWeightsAtAll) {
  test::ScratchDir empty("safetensors_model_empty");
  EXPECT_TRUE(one_line_error(error_of([&] { safetensors_open_model(empty.path.string()); }),
                             empty.path.string(), "no model.safetensors"));
}

}  // namespace
}  // namespace hibari
