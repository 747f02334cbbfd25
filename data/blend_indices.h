// data/blend_indices.h — a weighted blend of datasets (e.g. JA:EN:code = 64.4:25.6:10) in the
// order Megatron-LM core's BlendedDataset gives it (megatron/core/datasets/blended_dataset.py,
// blended_megatron_dataset_builder.py, helpers.cpp), so a run moved from Megatron-LM reads the same
// dataset at every step.
//
// Blended sample i is sample dataset_sample_index[i] of dataset dataset_index[i]; that sample is
// then looked up through the dataset's own GPT indices (data/gpt_indices.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hibari {

// utils.py normalize: w / numpy.sum(w), the sum taken as numpy takes it (pairwise), so the
// quotients match Megatron's bit for bit.
std::vector<double> normalize_weights(std::span<const double> weights);

// numpy.sum of a float64 array: pairwise summation in blocks of 8 (numpy's pairwise_sum).
double numpy_sum(std::span<const double> values);

// The sizes of one split of a weighted blend, as BlendedMegatronDatasetBuilder derives them.
struct BlendPlan {
  std::vector<double> weights;       // what BlendedDataset blends with: normalize(normalize(raw))
  std::vector<int64_t> target;       // samples the blend takes from each dataset: ceil(n * w)
  std::vector<int64_t> num_samples;  // samples to build per dataset: ceil(target * (1 + surplus))
  int64_t size = 0;                  // samples in the blend: sum(target), a little over n
};

// Megatron's default mid_level_dataset_surplus.
constexpr double megatron_blend_surplus = 0.005;

// _get_size_per_split_per_dataset for a split of `num_samples` samples, with `raw_weights` as
// given by the user (any positive scale).
BlendPlan plan_blend(std::span<const double> raw_weights, int64_t num_samples,
                     double surplus = megatron_blend_surplus);

struct BlendIndices {
  std::vector<int16_t> dataset_index;         // (size) which dataset
  std::vector<int64_t> dataset_sample_index;  // (size) which sample of that dataset
};

// helpers.cpp build_blending_indices: each sample goes to the dataset furthest behind its share
// (largest weight * max(i, 1) - taken so far; the lowest index wins ties).
BlendIndices build_blending_indices(std::span<const double> weights, int64_t size);
// The rule itself, one sample at a time: the dataset blended sample i (counted from the start of
// the blend) comes from, when taken[d] samples have come from dataset d so far.  The loader walks
// the blend with it instead of holding the whole index.
size_t blend_next_dataset(std::span<const double> weights, std::span<const int64_t> taken,
                          int64_t i);

// helpers.cpp build_exhaustive_blending_indices: exactly sizes[d] samples from dataset d,
// interleaved by the same error rule (Megatron's blend without weights).
BlendIndices build_exhaustive_blending_indices(std::span<const int64_t> sizes);

}  // namespace hibari
