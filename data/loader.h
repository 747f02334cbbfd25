// data/loader.h — the training stream: Megatron indexed datasets (data/indexed_dataset.h), each in
// Megatron's sample order (data/gpt_indices.h), blended by weight (data/blend_indices.h) and cut
// into global batches, of which each data-parallel rank reads its slice.
//
// Order.  Global sample g of a run is chosen by Megatron's blending rule from the samples each
// source has given so far, and a source's k-th sample is sample k of its own GPTDataset order, so
// a fresh run sees exactly the batches Megatron-LM would (same prefixes, weights, split, seed,
// seq_length and train_samples).  Within a global batch of G = A x (B x dp) samples (A
// micro-batches of B on each of dp ranks), micro-batch m of rank r is samples [(m x dp + r) x B, +
// B), as Megatron's MegatronPretrainingSampler deals them out.  Nothing depends on the number of
// threads.
//
// State.  What was read is counted per source (LoaderState): how many samples each source has
// given.  Resuming from that state continues exactly where the run stopped.  Because the counts are
// per source, a resumed run may add a source or change the weights: a new blend "segment" starts at
// that step, every source continues from its own count (nothing already read is read again), and a
// new source starts at its first sample.  A source that runs out of the samples its indices were
// built for goes on into further epochs, built with seed + 1, seed + 2, ...
//
// Validation.  Each source's validation split (Megatron's `split`, e.g. "969,30,1") is read on its
// own, so the validation loss is reported per source (per language).  With Megatron's accounting
// (megatron_eval) the validation and test splits are sized and blended as Megatron's builder does
// and read as one stream each.
//
// Separate data per split.  With Megatron's blend_per_split (--train-data-path, --valid-data-path,
// --test-data-path) each split has its own list of datasets and weights and the split string is
// ignored.  As _build_blended_dataset_splits does, each of a split's datasets is read whole: its
// sequences [round(0.0 x n), round(1.0 x n)) = [0, n), as that split (only a validation dataset
// may keep a partial last sample).  A split of one dataset is that dataset alone, sized by the
// split's sample count, even when it has a weight (unlike the `split` path, where a weighted lone
// dataset is blended); a split of several is blended by weight with mid_level_dataset_surplus, as
// on the `split` path.  A split without datasets is Megatron's None: no validation, or no test
// pass.  Validation and test then follow Megatron's accounting (megatron_eval).
//
// Megatron-LM.  The rules followed are Megatron core's at commit
// 0b9bc2088b6d6c858275d02638064cc7e0bf8b70 (the last before rampup_batch_size gave way to
// step_batch_size_schedule): the split rule (rounded cumulative bounds),
// add_extra_token_to_sequence, drop_last_partial_validation_sequence, mid_level_dataset_surplus, a
// single weighted dataset on the blended path, the batch-size ramp-up, the validation/test
// sample counts and blend_per_split; each is checked against tests/reference/megatron_indices.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/blend_indices.h"
#include "data/gpt_indices.h"
#include "data/indexed_dataset.h"

namespace hibari {

struct LoaderSource {
  std::string name;    // "ja": names the state entry and the metrics (valid_loss/ja)
  std::string prefix;  // PREFIX.bin / PREFIX.idx
  double weight = 1;   // blend weight (any positive scale); ignored for a single source
};

struct LoaderOptions {
  std::vector<LoaderSource> sources;
  std::string split = "969,30,1";  // Megatron's train,valid,test shares of each dataset's sequences
  int32_t seq_length = 0;          // T: a sample holds T + 1 tokens (inputs and shifted targets)
  uint32_t seed = 0;
  int64_t global_batch_size = 0;  // G, sequences per optimizer step over all ranks
  int64_t micro_batch_size = 0;   // B
  int64_t train_samples = 0;  // steps x G: sizes the sample indices, as Megatron's train_samples
  int64_t valid_samples = 0;  // validation samples wanted per source
  // Megatron's add_extra_token_to_sequence: a sample holds T + 1 tokens (the inputs and, shifted
  // by one, the targets).  false: T tokens; the targets are the inputs shifted, and the last
  // position has none (ignored, -100), as GPTDataset.__getitem__ pads the labels.
  bool add_extra_token = true;
  // Megatron's drop_last_partial_validation_sequence.  false: the validation split keeps its last,
  // shorter sample, padded (inputs 0, targets ignored).
  bool drop_last_partial_validation_sequence = true;
  // Megatron's mid_level_dataset_surplus: a blended source builds ceil(target x (1 + surplus))
  // samples of indices (only the blended path uses it).
  double surplus = megatron_blend_surplus;
  // Weights were given.  As Megatron's builder, a single dataset given with a weight takes the
  // blended path (its indices built for ceil(n x (1 + surplus)) samples); without a weight it is
  // sized by train_samples alone.
  bool weighted = false;
  // Megatron's rampup_batch_size {start, increment, samples}: the global batch starts at `start`
  // and grows by `increment` every samples / ((G - start) / increment) samples consumed, up to G
  // (RampupBatchsizeNumMicroBatchesCalculator).  Sample g is the same sample either way; only the
  // step boundaries move.  Empty: G from the start.
  std::vector<int64_t> rampup_batch_size;
  // Megatron's accounting of validation and test: valid_samples and test_samples are the split
  // sizes its builder is asked for ((train_iters / eval_interval + 1) x eval_iters x G and
  // eval_iters x G); a blended source builds its plan_blend share of them, and each split is read
  // as one blended stream (loader_read_eval_stream).  false: valid_samples per source, no test.
  bool megatron_eval = false;
  int64_t test_samples = 0;
  // Megatron's blend_per_split: `sources` are the training datasets, read whole (`split` is
  // ignored), and the validation and test splits read their own datasets, whole, as blended
  // streams (needs megatron_eval when either is given; empty: no such split).
  bool blend_per_split = false;
  std::vector<LoaderSource> valid_sources, test_sources;
  int dp_rank = 0, dp_size = 1;
  size_t vocab_size = 0;  // ids >= this are an error naming the dataset (0: no check)
  std::string cache_dir;  // index cache; "" = <folder of each prefix>/cache
};

// Per source: where it is, what its train indices were built for, and how far it has been read.
struct LoaderSourceState {
  std::string name, prefix;
  int64_t planned_samples = 0;  // num_samples of its GPT indices (fixed when the source joined)
  int64_t consumed = 0;         // samples given so far
  int64_t segment_start = 0;    // `consumed` when the current blend segment started
};

struct LoaderState {
  int32_t seq_length = 0;
  uint32_t seed = 0;
  std::string split;                 // options.split, or "blend_per_split"
  int64_t consumed_samples = 0;      // global samples given, all ranks together
  int64_t segment_start_sample = 0;  // consumed_samples when the current blend segment started
  std::vector<std::string> segment_sources;  // the blend of the segment: names ...
  std::vector<double> segment_weights;       // ... and normalized weights
  std::vector<LoaderSourceState> sources;    // every source ever read (also ones since removed)
  std::optional<uint64_t> next_batch_hash;   // XXH64 of the tokens of the next global batch
};

nlohmann::json loader_state_to_json(const LoaderState& state);
// `where` names the file in errors ("ckpt/step_000100/loader.json").
LoaderState loader_state_from_json(const nlohmann::json& json, const std::string& where);

// Sample `index` of source `source`'s training order.
struct SampleRef {
  int32_t source = 0;
  int64_t index = 0;
};

struct LoaderDataset {
  std::string name, prefix;
  IndexedDataset data;
  std::vector<int32_t> lengths{};          // tokens per sequence of the whole dataset
  std::vector<int32_t> train_documents{};  // the sequences of the train split
  std::vector<GptIndices> train_epochs{};  // block 0: Megatron's indices; then seed + b for block b
  GptIndices valid{};                      // empty when the split gives validation nothing
  GptIndices test{};                       // built only with Megatron's accounting
  size_t state = 0;                        // its entry in Loader::state.sources
};

struct Loader {
  LoaderOptions options;
  std::vector<LoaderDataset> datasets;  // the configured sources, in order
  std::vector<double> weights;          // their blend weights, normalized as Megatron does
  LoaderState state;
  BlendIndices eval_stream[3];  // Megatron's accounting: [1] validation, [2] test streams
  // blend_per_split: the [1] validation and [2] test datasets the streams index (their `valid` or
  // `test` indices); otherwise the streams index `datasets`.
  std::vector<LoaderDataset> split_datasets[3];
  std::vector<SampleRef> batch;  // the global batch planned by loader_next_batch
  std::vector<int64_t> taken;    // scratch: samples per dataset in the current segment
  std::vector<int32_t> sample;   // scratch: T + 1 tokens
};

// Opens every dataset and builds (or reads from the cache) its indices.  With `resume`, continues
// from that state: sources matched by name; a changed prefix, seq_length, seed or split is an
// error; changed weights or sources start a new segment (said in `notes`); otherwise the next batch
// must hash to resume->next_batch_hash, else an error naming `resume_origin`.
Loader loader_open(const LoaderOptions& options, const LoaderState* resume = nullptr,
                   const std::string& resume_origin = "",
                   std::vector<std::string>* notes = nullptr);

// The global batch size once `consumed` samples have been read: Megatron's
// get_current_global_batch_size() after update_num_microbatches(consumed), at commit
// 0b9bc2088b6d6c858275d02638064cc7e0bf8b70 (megatron/core/num_microbatches_calculator.py).
// `rampup` is {start, increment, samples} or empty.
int64_t rampup_global_batch_size(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                                 int64_t consumed);
// Megatron's update_train_iters (megatron/training/training.py, same commit): the optimizer steps
// of a sample-based run of `train_samples` samples (train_samples / G without a ramp-up).
int64_t rampup_train_iters(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                           int64_t train_samples);
// Checks a ramp-up against G and micro_batch_size x dp (every batch size of the ramp must divide
// into micro-batches); an error names `where` ("run.toml: [train].rampup_batch_size").
void check_rampup(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                  int64_t micro_times_dp, const std::string& where);
// The size of the next global batch (G, or the ramp-up's size at the samples consumed so far).
int64_t loader_batch_size(const Loader& loader);

// Plans the next global batch into loader.batch and advances the state past it.
void loader_next_batch(Loader& loader);
// Micro-batch `micro` of this rank of the planned batch: inputs and targets, (B, T) each.
void loader_read_micro_batch(Loader& loader, int64_t micro, int32_t* inputs, int32_t* targets);
// XXH64 of the tokens of the next global batch (all ranks' samples), without advancing.
uint64_t loader_next_batch_hash(Loader& loader);
// The state to save with a checkpoint: counts plus the next batch's hash.
LoaderState loader_checkpoint_state(Loader& loader);

// Validation samples [first, first + B) of dataset d's validation split (wrapping around), as
// inputs and targets (B, T).  Valid only when loader_valid_samples(loader, d) > 0.
size_t loader_valid_samples(const Loader& loader, size_t d);
// Megatron's accounting: the length of the blended validation (which = 1) or test (2) stream (0:
// none), and its samples [first, first + B) as inputs and targets (B, T).  Evaluation k of a run
// reads samples [k x eval_iters x G, + eval_iters x G) of the validation stream, as Megatron's
// valid iterator goes on from one evaluation to the next; the test pass reads [0, eval_iters x G).
int64_t loader_eval_stream_size(const Loader& loader, int which);
// Megatron's get_train_valid_test_num_samples (megatron/training/training.py at 0b9bc2088b6d):
// {validation, test} samples of a run of train_iters steps evaluated every eval_interval steps
// (and at the end) over eval_iters global batches of G.
std::pair<int64_t, int64_t> megatron_eval_samples(int64_t train_iters, int64_t eval_interval,
                                                  int64_t eval_iters, int64_t global_batch_size);
void loader_read_eval_stream(Loader& loader, int which, int64_t first, int32_t* inputs,
                             int32_t* targets);
void loader_read_valid(Loader& loader, size_t d, int64_t first, int32_t* inputs, int32_t* targets);

// Megatron's split: "969,30,1" -> normalized shares (parse_and_normalize_split), and the
// [begin, end) sequence bounds of the train/valid/test splits of `count` sequences: each bound is
// the cumulative share times count, rounded (convert_split_vector_to_split_matrix and
// _build_megatron_dataset_splits).
std::vector<double> parse_split(const std::string& split);
std::vector<int64_t> split_bounds(const std::vector<double>& shares, int64_t count);

}  // namespace hibari
