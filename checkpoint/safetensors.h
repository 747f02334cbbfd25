// checkpoint/safetensors.h — the safetensors format, reader and writer in one place, and Hugging
// Face's sharded model directories built from it.
// Layout: uint64 little-endian header size H, H bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// then the data section; offsets are relative to the data section, tensors are row-major and
// little-endian.  The reader maps the file and validates everything before handing out a byte
// (offsets inside the file, shape x dtype = byte length, tensors tiling the data section without
// overlap or hole): a truncated or foreign file is an error naming the file, never a crash.
//
// A sharded model directory (what transformers' save_pretrained writes past max_shard_size):
//   model-00001-of-00003.safetensors ... model-00003-of-00003.safetensors
//   model.safetensors.index.json  {"metadata": {"total_size": <data bytes>},
//                                  "weight_map": {"<tensor>": "<shard file>", ...}}
// and a small model is a single model.safetensors without an index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/file_io.h"

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

// One file, mapped read-only.  `data` views the mapping, so a tensor read in its own dtype is not
// copied; the views live as long as the SafeTensorsFile (moving it keeps them valid).
struct SafeTensorsFile {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<SafeTensorInfo> tensors;  // in file order of data offsets
  MappedFile mapping;
  std::span<const uint8_t> data;  // the data section, inside `mapping`

  const SafeTensorInfo* find(const std::string& name) const;
  // The named tensor's bytes; throws naming the file and the tensor if it is absent, or if
  // `expected_shape` is non-empty and differs.
  const SafeTensorInfo& require(const std::string& name,
                                const std::vector<int64_t>& expected_shape = {}) const;
  std::span<const uint8_t> bytes(const SafeTensorInfo& t) const;
  // Zero-copy view of an F32 tensor (an error for another dtype, or when its offset in the file is
  // not 4-byte aligned, which only a foreign writer produces; read_f32 copies those).
  std::span<const float> view_f32(const std::string& name,
                                  const std::vector<int64_t>& expected_shape = {}) const;
  // The named tensor converted to fp32 (from F32, F16, BF16 exactly, or F64 rounded) into `out`
  // (numel floats), or as a vector.
  void read_f32_into(const std::string& name, float* out,
                     const std::vector<int64_t>& expected_shape = {}) const;
  std::vector<float> read_f32(const std::string& name,
                              const std::vector<int64_t>& expected_shape = {}) const;
  // The named I32 or I64 tensor as int64.
  std::vector<int64_t> read_i64(const std::string& name) const;
};

SafeTensorsFile safetensors_read(const std::string& path);

struct SafeTensorOut {
  std::string name;
  StDtype dtype;  // in the file
  std::vector<int64_t> shape;
  const void* data;  // numel * st_dtype_size(dtype) bytes, or numel floats with data_is_f32
  // `data` holds F32 values that the writer rounds to `dtype` (BF16 or F16, round to nearest even
  // as torch's .to() does).
  bool data_is_f32 = false;
};
// Writes atomically: a temporary file beside `path`, fsync, rename.  A failure leaves no file.
// Tensors are laid out sorted by name, so equal inputs give equal bytes.
// With `xxh64`, the XXH64 of the file's bytes is computed while writing (no second pass).
void safetensors_write(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       uint64_t* xxh64 = nullptr);

// fp32 -> IEEE half, round to nearest even; overflow to inf, NaN stays NaN (torch's .half()).
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// ---- Hugging Face model directories ----

constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";
constexpr const char* kSafetensorsSingleName = "model.safetensors";

// The weights of a model directory: every shard of the index (or the single file) mapped.
struct SafeTensorsModel {
  std::string dir;
  std::string index_path;  // empty for a single model.safetensors
  std::vector<SafeTensorsFile> files;
  // name -> (file, tensor) for every tensor of every file.
  std::map<std::string, std::pair<const SafeTensorsFile*, const SafeTensorInfo*>> tensors;

  // The file holding `name`, or nullptr.
  const SafeTensorsFile* file_of(const std::string& name) const;
};

// Opens DIR/model.safetensors.index.json and its shards, or else DIR/model.safetensors.  The index
// must be consistent with the shards: every tensor it names must be in the shard it names, a shard
// must hold no tensor the index does not place there, and a missing shard is an error naming it.
// Moving a SafeTensorsModel keeps its pointers valid (vector and map moves keep their elements).
SafeTensorsModel safetensors_open_model(const std::string& dir);

// Writes `tensors` as DIR/model.safetensors when their data fit in `max_shard_bytes`, else as
// model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json.  Tensors go to shards
// in the order given (a new shard starts when the next tensor would overflow the current one; a
// tensor larger than the limit gets a shard of its own), as huggingface_hub's
// split_state_dict_into_shards.  Each file is written atomically; DIR must exist and should be
// fresh (shards of an earlier write with another count are not removed; save_hf_weights writes
// into a new temporary directory).  Returns the names of the files written.
std::vector<std::string> safetensors_write_model(
    const std::string& dir, const std::vector<SafeTensorOut>& tensors, size_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace hibari
