// checkpoint/safetensors.h — the safetensors format, reader and writer in one place.
// Layout: uint64 little-endian header size H, H bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// then the data section; offsets are relative to the data section, tensors are row-major and
// little-endian.  The reader validates everything before handing out a byte: a truncated or foreign
// file is an error naming the file, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hibari {

enum class StDtype { F32, F16, BF16, F64, I32, I64, U8 };
size_t st_dtype_size(StDtype t);
const char* st_dtype_name(StDtype t);

struct SafeTensorInfo {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  size_t begin, end;  // byte offsets in the data section
  size_t numel() const;
};

struct SafeTensorsFile {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<SafeTensorInfo> tensors;  // in file order of data offsets
  std::vector<uint8_t> data;            // the data section

  const SafeTensorInfo* find(const std::string& name) const;
  // The named tensor converted to fp32 (from F32, F16, BF16 or F64); throws naming the file and the
  // tensor if it is absent, or if `expected_shape` is non-empty and differs.
  std::vector<float> read_f32(const std::string& name,
                              const std::vector<int64_t>& expected_shape = {}) const;
  // The named I32 or I64 tensor as int64.
  std::vector<int64_t> read_i64(const std::string& name) const;
};

SafeTensorsFile safetensors_read(const std::string& path);

struct SafeTensorOut {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * st_dtype_size(dtype) bytes
};
// Writes atomically: a temporary file beside `path`, fsync, rename.  A failure leaves no file.
void safetensors_write(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace hibari
