// core/tensor.h: contiguous views, strides, row(), numel.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/error.h"

namespace hibari {
namespace {

TEST(Tensor, ContiguousStridesAreRowMajor) {
  std::vector<float> buf(2 * 3 * 5 * 7);
  Tensor t = Tensor::contiguous(buf.data(), DType::f32, {2, 3, 5, 7});
  EXPECT_EQ(t.ndim, 4);
  EXPECT_EQ(t.shape, (std::array<int64_t, 4>{2, 3, 5, 7}));
  EXPECT_EQ(t.strides, (std::array<int64_t, 4>{105, 35, 7, 1}));
  EXPECT_EQ(t.numel(), 210);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.f32(), buf.data());
  EXPECT_EQ(t.shape_string(), "(2, 3, 5, 7)");

  Tensor v = Tensor::contiguous(buf.data(), DType::f32, {37});
  EXPECT_EQ(v.ndim, 1);
  EXPECT_EQ(v.strides[0], 1);
  EXPECT_EQ(v.numel(), 37);
}

TEST(Tensor, ScalarHasOneElement) {
  float x = 3;
  Tensor t = Tensor::contiguous(&x, DType::f32, {});
  EXPECT_EQ(t.ndim, 0);
  EXPECT_EQ(t.numel(), 1);
  EXPECT_EQ(t.shape_string(), "()");
  Tensor empty = Tensor::contiguous(&x, DType::f32, {4, 0, 3});
  EXPECT_EQ(empty.numel(), 0);
}

TEST(Tensor, RowDropsTheLeadingDimension) {
  std::vector<float> buf(70 * 37);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  Tensor t = Tensor::contiguous(buf.data(), DType::f32, {70, 37});
  Tensor r = t.row(69);
  EXPECT_EQ(r.ndim, 1);
  EXPECT_EQ(r.shape[0], 37);
  EXPECT_EQ(r.strides[0], 1);
  EXPECT_EQ(r.numel(), 37);
  EXPECT_EQ(r.f32(), buf.data() + 69 * 37);
  EXPECT_EQ(r.f32()[5], float(69 * 37 + 5));

  Tensor t3 = Tensor::contiguous(buf.data(), DType::f32, {10, 7, 37});
  Tensor r3 = t3.row(3).row(2);
  EXPECT_EQ(r3.ndim, 1);
  EXPECT_EQ(r3.f32(), buf.data() + 3 * 7 * 37 + 2 * 37);
  EXPECT_EQ(t3.row(3).shape_string(), "(7, 37)");
  EXPECT_TRUE(t3.row(3).is_contiguous());
}

TEST(Tensor, RowOfBf16AdvancesTwoBytesPerElement) {
  std::vector<uint16_t> buf(4 * 6);
  Tensor t = Tensor::contiguous(buf.data(), DType::bf16, {4, 6});
  EXPECT_EQ(t.row(3).data, static_cast<void*>(buf.data() + 18));
  EXPECT_THROW(t.f32(), Error);
}

TEST(Tensor, StridedViewIsNotContiguous) {
  std::vector<float> buf(10 * 8);
  Tensor t = Tensor::contiguous(buf.data(), DType::f32, {10, 4});
  t.strides[0] = 8;  // every other half-row of a (10, 8) buffer
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.row(2).f32(), buf.data() + 16);
  // Size-one dimensions may have any stride.
  Tensor s = Tensor::contiguous(buf.data(), DType::f32, {1, 4});
  s.strides[0] = 1000;
  EXPECT_TRUE(s.is_contiguous());
}

TEST(Tensor, RowOutOfRangeThrows) {
  std::vector<float> buf(6);
  Tensor t = Tensor::contiguous(buf.data(), DType::f32, {2, 3});
  EXPECT_THROW(t.row(2), Error);
  EXPECT_THROW(t.row(-1), Error);
  Tensor scalar = Tensor::contiguous(buf.data(), DType::f32, {});
  EXPECT_THROW(scalar.row(0), Error);
}

TEST(Tensor, MoreThanFourDimensionsThrows) {
  float x = 0;
  EXPECT_THROW(Tensor::contiguous(&x, DType::f32, {1, 1, 1, 1, 1}), Error);
}

}  // namespace
}  // namespace hibari
