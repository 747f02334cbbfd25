// data/gpt_indices.h — the sample order of one GPT dataset split, built exactly as Megatron-LM
// core's GPTDataset builds it (megatron/core/datasets/gpt_dataset.py and helpers.cpp), so that a
// run moved from Megatron-LM sees the same samples in the same order.
//
// Three arrays, as Megatron names them:
//   doc_idx     (E * D)      document ids of the split, repeated for E epochs and shuffled
//   sample_idx  (S + 1, 2)   [position in doc_idx, token offset in that document] where sample s
//                            starts; sample s spans tokens up to (and including, as the extra
//                            target token) the start of sample s + 1, across documents
//   shuffle_idx (S)          the order in which samples are read: sample = shuffle_idx[i]
// D = documents in the split, E = epochs needed for the requested samples, S = samples built
// (usually a few more than requested: every full sequence the E epochs hold).
//
// The arrays are cached as .npy files (numpy format 1.0) next to the data; a cache file is used
// only when its description (every parameter plus a fingerprint of the document lengths) matches.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hibari {

struct GptIndicesConfig {
  std::optional<int64_t> num_samples;  // samples requested; none = one epoch (Megatron's None)
  int32_t seq_length = 0;              // tokens per sample (inputs), T
  uint32_t seed = 0;                   // numpy.random.RandomState seed (Megatron's random_seed)
  bool add_extra_token = true;         // samples hold T + 1 tokens (add_extra_token_to_sequence)
  bool drop_last_partial_sequence = true;  // false only for Megatron's validation split option
};

struct GptIndices {
  std::vector<int32_t> doc_idx;      // (E * D)
  std::vector<int64_t> sample_idx;   // (S + 1, 2) row-major
  std::vector<int64_t> shuffle_idx;  // (S)
  int32_t num_epochs = 0;            // E
  bool separate_final_epoch = false;
  size_t num_samples() const { return shuffle_idx.size(); }
};

// `lengths` holds the token count of every document of the dataset (Megatron's
// sequence_lengths); `documents` the ids of the split's documents (Megatron's indexed_indices).
// Mirrors GPTDataset._build_document_sample_shuffle_indices.
GptIndices build_gpt_indices(std::span<const int32_t> lengths, std::span<const int32_t> documents,
                             const GptIndicesConfig& config);

// The pieces, each mirroring the Megatron function named.
// GPTDataset._get_num_epochs: epochs whose tokens cover num_samples * T (+ 1).
int32_t gpt_num_epochs(int64_t tokens_per_epoch, const GptIndicesConfig& config);
// helpers.cpp build_sample_idx.
std::vector<int64_t> build_sample_idx(std::span<const int32_t> lengths,
                                      std::span<const int32_t> doc_idx, int32_t seq_length,
                                      int32_t num_epochs, int64_t tokens_per_epoch,
                                      bool drop_last_partial_sequence, bool add_extra_token);

// Reads the indices from `cache_dir` when a cache built with the same parameters is there,
// otherwise builds them and writes the cache (atomically: a reader never sees half a file).
// `dataset_name` (e.g. the .bin/.idx path prefix) and `split_name` ("train") go into the
// description and the file names:
//   <cache_dir>/<hash>-GPTDataset-<split_name>-{description.txt,document_index.npy,
//   sample_index.npy,shuffle_index.npy}
// where <hash> is the 64-bit FNV-1a hash of the description, in hex.
GptIndices load_or_build_gpt_indices(const std::string& cache_dir, const std::string& dataset_name,
                                     const std::string& split_name,
                                     std::span<const int32_t> lengths,
                                     std::span<const int32_t> documents,
                                     const GptIndicesConfig& config);

// The description a cache is keyed by (also written to the cache as description.txt).
std::string gpt_indices_description(const std::string& dataset_name, const std::string& split_name,
                                    std::span<const int32_t> lengths,
                                    std::span<const int32_t> documents,
                                    const GptIndicesConfig& config);

// A .npy file (format 1.0, C order, little-endian) of integers or doubles.  Reading converts any
// of <i2 <i4 <i8 <u4 <u8 (or <f8 for the double overload) to the type asked for; shape is filled.
struct NpyArray {
  std::string descr;           // "<i4", "<i8", "<u4", "<i2", "<f8"
  std::vector<int64_t> shape;  // e.g. {S + 1, 2}
  std::vector<char> data;      // raw little-endian bytes
};
NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& array);
std::vector<int64_t> npy_as_int64(const NpyArray& array);  // an error names a non-integer descr
std::vector<double> npy_as_double(const NpyArray& array);  // "<f8" only
// Helpers to make an NpyArray from values.
NpyArray npy_from(std::span<const int16_t> values, std::vector<int64_t> shape);
NpyArray npy_from(std::span<const int32_t> values, std::vector<int64_t> shape);
NpyArray npy_from(std::span<const uint32_t> values, std::vector<int64_t> shape);
NpyArray npy_from(std::span<const int64_t> values, std::vector<int64_t> shape);
NpyArray npy_from(std::span<const double> values, std::vector<int64_t> shape);

}  // namespace hibari
