// checkpoint/sharded_checkpoint.h — checkpoints that scale: every rank writes the part of the
// training state it owns, in parallel, and any layout reads back only the slices it needs.
//
//   ROOT/step_000123/
//     shard-00000.safetensors ...  one file per writing rank: 1-D F32 entries, each a PIECE of a
//                                  full tensor, named by the full tensor's name
//     state.json, config.json, run.toml
//     manifest.json  {"format": "hibari-checkpoint", "version": 2, "step": 123,
//                     "layout": {...as written, for people},
//                     "files": {"shard-00000.safetensors": {"bytes": N, "xxh64": "<hex>"}, ...},
//                     "tensors": {"<name>": {"shape": [R, C], "dtype": "F32",
//                                 "pieces": [{"file": "shard-00001.safetensors",
//                                             "box": [r0, r1, c0, c1], "range": [b, e]}]}}}
//
// One slice representation covers tensor and pipeline parallelism and ZeRO alike.  A tensor is
// seen as a matrix (R, C) (a vector of n: (1, n)).  A piece is a BOX of it — rows [r0, r1),
// columns [c0, c1): a tp rank's row or column part, or the whole tensor — and a contiguous RANGE
// [b, e) of the box's own row-major index space: the elements a ZeRO rank owns of a contiguous
// flat buffer (or the whole box, b = 0, e = box size).  The piece's e - b floats are stored in
// that order.  The pieces of a tensor tile it exactly (the leader checks the count).
//
// Writing (collective, train/distributed_checkpoint.h): the leader makes ROOT/step_N.tmp.<pid>;
// every rank writes its shard file into it (fsynced, XXH64 taken while writing) and refuses NaN or
// Inf; the ranks agree that all went well; the leader reads each shard's header (its piece list),
// writes the text files and manifest.json, renames the directory into place and moves `latest`:
// whole-or-absent as the one-file-set format (checkpoint/native_checkpoint.h, version 1, which
// one-process runs still write and every reader still reads).
//
// Reading: sharded_open parses the manifest and checks every file's size; sharded_read copies
// "rows x cols box, flat range [b, e)" of a tensor out of the pieces that intersect it (files
// mapped, a file's XXH64 checked the first time it is touched), so a rank reads its own slices
// only, under any layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace hibari {

constexpr int kShardedCheckpointVersion = 2;

// A box of a tensor seen as (R, C), and a flat range of the box.
struct TensorSlice {
  int64_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;
  int64_t begin = 0, end = 0;  // in the box's row-major index space: end - begin elements
  int64_t box_numel() const { return (r1 - r0) * (c1 - c0); }
};

// The whole of a tensor of `shape` (1-D or 2-D) as a slice.
TensorSlice whole_slice(const std::vector<int64_t>& shape);

// What one rank writes: a piece of a full tensor.
struct ShardPiece {
  std::string tensor;          // full tensor name ("model.norm.weight", "exp_avg.<name>")
  std::vector<int64_t> shape;  // the full tensor's shape
  TensorSlice slice;
  const float* data = nullptr;  // slice.end - slice.begin floats; valid until the write returns
};

// "shard-00003.safetensors".
std::string shard_file_name(int rank);

// Writes the pieces as one safetensors file (atomically, fsynced; the piece list in its metadata).
// An Error, and no file, when a piece holds NaN or Inf (naming the tensor and `step`).  Returns
// the file's XXH64 and sets *bytes.
uint64_t write_shard_file(const std::string& path, const std::vector<ShardPiece>& pieces,
                          int64_t step, uint64_t* bytes);

struct ShardFileRecord {
  std::string name;  // in the step directory
  uint64_t bytes = 0, xxh64 = 0;
};

// The leader, once every rank's shard file is in `tmp_dir`: writes `text_files` and manifest.json
// there (reading only the shard headers), checks that the pieces tile every tensor exactly.
void write_sharded_manifest(const std::string& tmp_dir, int64_t step,
                            const std::vector<ShardFileRecord>& shards,
                            const std::map<std::string, std::string>& text_files,
                            const std::string& layout_json);

// The step's temporary directory (ROOT/step_N.tmp.<pid of the leader>), emptied; stale temporaries
// of killed writes are removed first.
std::string sharded_begin(const std::string& root, int64_t step, long leader_pid);
// fsync, rename into ROOT/step_N (replacing an older write of that step), `latest`, keep the newest
// `keep` (0: all).
void sharded_commit(const std::string& root, int64_t step, const std::string& tmp_dir, int keep);

// ---- reading ----

// Step directories (step_NNNNNN, no suffix) under ROOT as (step, path), newest first.
std::vector<std::pair<int64_t, std::string>> checkpoint_step_dirs(const std::string& root);

struct ShardedCheckpoint {
  struct Piece {
    std::string file;
    TensorSlice slice;
  };
  struct Tensor {
    std::vector<int64_t> shape;
    int64_t rows = 0, cols = 0;  // as a matrix
    std::vector<Piece> pieces;
  };
  struct File {
    uint64_t bytes = 0;
    std::string xxh64;
    std::unique_ptr<SafeTensorsFile> mapped;  // on first use, after its checksum is checked
  };
  std::string dir;
  int64_t step = 0;
  std::map<std::string, std::string> text_files;
  std::map<std::string, File> files;
  std::map<std::string, Tensor> tensors;

  const std::string& text(const std::string& name) const;
  const Tensor& tensor(const std::string& name) const;
};

// The manifest's version, 0 when DIR has no readable manifest.json.
int checkpoint_manifest_version(const std::string& dir);
// Parses DIR/manifest.json (version 2), checks every file's presence and size and the text files'
// checksums.  Errors name the file.
ShardedCheckpoint sharded_open(const std::string& dir);
// Copies `slice` of `tensor` (slice.end - slice.begin floats, in the slice's order) into `out`
// from the pieces that intersect it.  A file is mapped, and its XXH64 checked, on first use.
void sharded_read(ShardedCheckpoint& c, const std::string& tensor, const TensorSlice& slice,
                  float* out);
// Unmaps every file (their pages leave this process's memory; checksums stay checked).
void sharded_release(ShardedCheckpoint& c);

// Writes tensors of `c` as a Hugging Face weights directory (model.safetensors, or shards of at
// most `max_shard_bytes` plus model.safetensors.index.json) with bounded memory: one full tensor
// at a time is assembled from its pieces, converted to `dtype` (F32 or BF16) and appended; file
// pages are dropped after each tensor.  `names`: (checkpoint name, output name) in output order.
// Returns the files written.
std::vector<std::string> sharded_export_weights(
    ShardedCheckpoint& c, const std::vector<std::pair<std::string, std::string>>& names,
    const std::string& dir, StDtype dtype, size_t max_shard_bytes);

}  // namespace hibari
