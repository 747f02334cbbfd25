// core/tensor.h — a non-owning view of a strided array: a pointer, a dtype, a shape and strides
// (in elements). Memory belongs to an Arena or a flat parameter buffer; a Tensor never frees.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace hibari {

struct Tensor {
  static constexpr int max_dims = 4;

  void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  std::array<int64_t, max_dims> shape{};
  std::array<int64_t, max_dims> strides{};  // in elements, not bytes

  // A contiguous (row-major) view over `data` with the given shape.
  static Tensor contiguous(void* data, DType dtype, std::initializer_list<int64_t> dims) {
    Tensor t;
    t.data = data;
    t.dtype = dtype;
    check(dims.size() <= max_dims, "Tensor: more than 4 dimensions");
    t.ndim = int(dims.size());
    int i = 0;
    for (int64_t d : dims) t.shape[size_t(i++)] = d;
    int64_t stride = 1;
    for (int k = t.ndim - 1; k >= 0; --k) {
      t.strides[size_t(k)] = stride;
      stride *= t.shape[size_t(k)];
    }
    return t;
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int k = 0; k < ndim; ++k) n *= shape[size_t(k)];
    return n;
  }

  bool is_contiguous() const {
    int64_t stride = 1;
    for (int k = ndim - 1; k >= 0; --k) {
      if (shape[size_t(k)] != 1 && strides[size_t(k)] != stride) return false;
      stride *= shape[size_t(k)];
    }
    return true;
  }

  float* f32() const {
    check(dtype == DType::f32, "Tensor: expected an F32 tensor");
    return static_cast<float*>(data);
  }

  // Row r of the leading dimension, as a view with one dimension fewer.
  Tensor row(int64_t r) const {
    check(ndim >= 1 && r >= 0 && r < shape[0], "Tensor::row: index out of range");
    Tensor t;
    t.dtype = dtype;
    t.ndim = ndim - 1;
    for (int k = 1; k < ndim; ++k) {
      t.shape[size_t(k - 1)] = shape[size_t(k)];
      t.strides[size_t(k - 1)] = strides[size_t(k)];
    }
    t.data = static_cast<char*>(data) + size_t(r * strides[0]) * dtype_size(dtype);
    return t;
  }

  std::string shape_string() const {
    std::string s = "(";
    for (int k = 0; k < ndim; ++k) {
      if (k) s += ", ";
      s += std::to_string(shape[size_t(k)]);
    }
    return s + ")";
  }
};

}  // namespace hibari
