// data/loader.cpp — blended, resumable sample order over indexed datasets; see loader.h.
#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/hash.h"
#include "data/blend_indices.h"

namespace hibari {

std::vector<double> parse_split(const std::string& split) {
  // Megatron's parse_and_normalize_split: the numbers found in the string (runs of [.0-9]), padded
  // with zeros to three, normalized.
  std::vector<double> shares;
  for (size_t i = 0; i < split.size();) {
    auto is_number_char = [&](size_t k) {
      return split[k] == '.' || (split[k] >= '0' && split[k] <= '9');
    };
    if (!is_number_char(i)) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < split.size() && is_number_char(end)) ++end;
    const std::string text = split.substr(i, end - i);
    char* parsed_end = nullptr;
    const double value = std::strtod(text.c_str(), &parsed_end);
    if (parsed_end != text.c_str() + text.size() || !std::isfinite(value))
      fail("split \"" + split + "\": bad number " + text);
    shares.push_back(value);
    i = end;
  }
  if (shares.empty() || shares.size() > 3)
    fail("split \"" + split + "\": expected 1 to 3 numbers (train,valid,test)");
  shares.resize(3, 0.0);
  if (shares[0] <= 0) fail("split \"" + split + "\": the train share must be positive");
  return normalize_weights(shares);
}

std::vector<int64_t> split_bounds(const std::vector<double>& shares, int64_t count) {
  // Megatron core (commit 0b9bc2088b6d): convert_split_vector_to_split_matrix adds the shares up
  // one after another from 0, and _build_megatron_dataset_splits rounds each cumulative bound,
  // int(round(bound * float(count))) (Python's round: half to even, which is what nearbyint does
  // in the default rounding mode).  No bound is shifted afterwards (that was the legacy
  // get_train_valid_test_split_).  A split without a share is Megatron's None: an empty range.
  std::vector<int64_t> bounds = {0};
  double cumulative = 0;
  for (double share : shares) {
    const double begin = cumulative;
    cumulative += share;
    bounds.push_back(cumulative > begin ? int64_t(std::nearbyint(cumulative * double(count)))
                                        : bounds.back());
  }
  return bounds;
}

int64_t rampup_global_batch_size(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                                 int64_t consumed) {
  if (rampup.empty()) return global_batch_size;
  const int64_t start = rampup[0], increment = rampup[1], samples = rampup[2];
  if (consumed > samples) return global_batch_size;
  // rampup_samples_per_increment = ramup_samples / num_increments, a Python float, and
  // int(consumed_samples / rampup_samples_per_increment) truncates.
  const double per_increment = double(samples) / double((global_batch_size - start) / increment);
  const int64_t steps = int64_t(double(consumed) / per_increment);
  return start + steps * increment;
}

int64_t rampup_train_iters(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                           int64_t train_samples) {
  if (rampup.empty()) return train_samples / global_batch_size;
  // The ramp-up phase step by step (the last of its steps may pass `samples`), then whole
  // batches of G; a partial last batch is thrown away.
  int64_t iterations = 0, consumed = 0;
  while (consumed <= rampup[2] && consumed <= train_samples) {
    consumed += rampup_global_batch_size(rampup, global_batch_size, consumed);
    ++iterations;
  }
  if (train_samples > consumed) iterations += (train_samples - consumed) / global_batch_size;
  return iterations;
}

void check_rampup(const std::vector<int64_t>& rampup, int64_t global_batch_size,
                  int64_t micro_times_dp, const std::string& where) {
  if (rampup.empty()) return;
  if (rampup.size() != 3)
    fail(where + " needs three numbers: start batch size, increment, ramp-up samples");
  const int64_t start = rampup[0], increment = rampup[1], samples = rampup[2];
  // Megatron asserts samples >= 0 but then divides by zero at 0.
  if (start <= 0 || increment <= 0 || samples <= 0)
    fail(where + ": start, increment and samples must be positive");
  if (start >= global_batch_size || (global_batch_size - start) % increment != 0)
    fail(where + ": global_batch_size " + std::to_string(global_batch_size) +
         " must exceed the start " + std::to_string(start) + " by a multiple of the increment " +
         std::to_string(increment));
  for (int64_t size = start; size <= global_batch_size; size += increment) {
    if (size % micro_times_dp != 0)
      fail(where + ": the ramp's global batch size " + std::to_string(size) +
           " is not a multiple of micro_batch_size x data-parallel size = " +
           std::to_string(micro_times_dp));
  }
}

namespace {

std::string cache_dir_for(const LoaderOptions& o, const std::string& prefix) {
  if (!o.cache_dir.empty()) return o.cache_dir;
  std::filesystem::path folder = std::filesystem::path(prefix).parent_path();
  return (folder / "cache").string();
}

GptIndices build_train_epochs(const LoaderOptions& o, const LoaderDataset& d, int64_t planned,
                              size_t block) {
  GptIndicesConfig config{.num_samples = planned,
                          .seq_length = o.seq_length,
                          .seed = o.seed + uint32_t(block),
                          .add_extra_token = o.add_extra_token,
                          .drop_last_partial_sequence = true};
  // Block 0 is Megatron's own "train" indices; later blocks are hibari's continuation.
  std::string split_name = block == 0 ? "train" : "train_continued_" + std::to_string(block);
  return load_or_build_gpt_indices(cache_dir_for(o, d.prefix), d.prefix, split_name, d.lengths,
                                   d.train_documents, config);
}

// Reads sample `idx` of `indices` (T + add_extra_token tokens) as
// GPTDataset._query_document_sample_shuffle_indices does: from the start offset in the first
// document to the end offset (plus the extra token) in the last, whole documents in between.
// Returns the tokens read: fewer than `count` only for the last sample of indices built without
// drop_last_partial_sequence (`partial`), which the caller pads.
size_t read_gpt_sample(const LoaderDataset& d, const GptIndices& indices, int64_t idx,
                       const LoaderOptions& o, bool partial, int32_t* out, size_t count) {
  const size_t extra = o.add_extra_token ? 1 : 0;
  const int64_t s = indices.shuffle_idx[size_t(idx)];
  const int64_t first_doc = indices.sample_idx[size_t(2 * s)];
  const int64_t first_offset = indices.sample_idx[size_t(2 * s + 1)];
  const int64_t last_doc = indices.sample_idx[size_t(2 * s + 2)];
  const int64_t last_offset = indices.sample_idx[size_t(2 * s + 3)];
  size_t filled = 0;
  for (int64_t i = first_doc; i <= last_doc; ++i) {
    const size_t sequence = size_t(indices.doc_idx[size_t(i)]);
    const size_t offset = i == first_doc ? size_t(first_offset) : 0;
    const size_t end =
        i == last_doc ? size_t(last_offset) + extra : d.data.sequence_length(sequence);
    const size_t length = std::min(end - offset, count - filled);
    d.data.read(sequence, offset, length, out + filled);
    filled += length;
  }
  if (filled != count && !(partial && filled > 0 && filled < count))
    fail_file(d.prefix + ".idx", "sample " + std::to_string(idx) + " holds " +
                                     std::to_string(filled) + " tokens, expected " +
                                     std::to_string(count) + " (indices do not match the data)");
  if (o.vocab_size == 0) return filled;
  for (size_t i = 0; i < filled; ++i) {
    if (out[i] < 0 || size_t(out[i]) >= o.vocab_size)
      fail_file(d.prefix + ".bin", "token id " + std::to_string(out[i]) +
                                       " is outside the model's vocabulary of " +
                                       std::to_string(o.vocab_size));
  }
  return filled;
}

// A sample of `filled` tokens as inputs and targets (T each), as GPTDataset.__getitem__ makes
// them: targets are the inputs shifted by one; a position without a next token (past the end of a
// short sample, or the last one without the extra token) is ignored (-100) and a missing input is
// token 0 (Megatron's pad positions, whose loss it masks).
void sample_to_inputs_targets(const int32_t* sample, size_t filled, size_t T, int32_t* inputs,
                              int32_t* targets) {
  for (size_t i = 0; i < T; ++i) {
    inputs[i] = i < filled ? sample[i] : 0;
    targets[i] = i + 1 < filled ? sample[i + 1] : -100;
  }
}

size_t sample_tokens(const LoaderOptions& o) {
  return size_t(o.seq_length) + (o.add_extra_token ? 1 : 0);
}

// The indices block holding the source's sample `index`, and the index within it; builds further
// epochs when the run reads past what was built.
std::pair<const GptIndices*, int64_t> locate(Loader& loader, LoaderDataset& d, int64_t index) {
  const int64_t planned = loader.state.sources[d.state].planned_samples;
  for (size_t block = 0;; ++block) {
    if (block == d.train_epochs.size())
      d.train_epochs.push_back(build_train_epochs(loader.options, d, planned, block));
    const int64_t size = int64_t(d.train_epochs[block].num_samples());
    if (index < size) return {&d.train_epochs[block], index};
    index -= size;
  }
}

void read_train_sample(Loader& loader, SampleRef ref, int32_t* out) {
  LoaderDataset& d = loader.datasets[size_t(ref.source)];
  auto [indices, idx] = locate(loader, d, ref.index);
  read_gpt_sample(d, *indices, idx, loader.options, false, out, sample_tokens(loader.options));
}

// The blend's next `count` samples into `out`, advancing `state` (a copy when only peeking).
void plan_samples(const Loader& loader, LoaderState& state, std::vector<int64_t>& taken,
                  int64_t count, std::vector<SampleRef>& out) {
  out.clear();
  const size_t n = loader.datasets.size();
  taken.resize(n);
  for (size_t d = 0; d < n; ++d) {
    const LoaderSourceState& s = state.sources[loader.datasets[d].state];
    taken[d] = s.consumed - s.segment_start;
  }
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = state.consumed_samples - state.segment_start_sample;
    const size_t d = n == 1 ? 0 : blend_next_dataset(loader.weights, taken, i);
    LoaderSourceState& s = state.sources[loader.datasets[d].state];
    out.push_back({int32_t(d), s.consumed});
    ++s.consumed;
    ++taken[d];
    ++state.consumed_samples;
  }
}

LoaderDataset open_dataset(const LoaderSource& source) {
  LoaderDataset d{
      .name = source.name, .prefix = source.prefix, .data = IndexedDataset::open(source.prefix)};
  const size_t count = d.data.sequence_count();
  d.lengths.resize(count);
  for (size_t s = 0; s < count; ++s) d.lengths[s] = int32_t(d.data.sequence_length(s));
  return d;
}

// The validation (which = 1) or test (2) indices of `documents` of d, for `wanted` samples; empty
// when the documents hold no sample.  Only the validation split may keep a partial last sample
// (drop_last_partial_validation_sequence).
GptIndices build_eval_indices(const LoaderOptions& o, const LoaderDataset& d, int which,
                              int64_t wanted, const std::vector<int32_t>& documents) {
  int64_t tokens = 0;
  for (int32_t s : documents) tokens += d.lengths[size_t(s)];
  const int64_t extra = o.add_extra_token ? 1 : 0;
  const bool partial = which == 1 && !o.drop_last_partial_validation_sequence;
  if (tokens - extra < (partial ? 1 : o.seq_length)) return {};
  GptIndicesConfig config{.num_samples = wanted,
                          .seq_length = o.seq_length,
                          .seed = o.seed,
                          .add_extra_token = o.add_extra_token,
                          .drop_last_partial_sequence = !partial};
  return load_or_build_gpt_indices(cache_dir_for(o, d.prefix), d.prefix,
                                   which == 1 ? "valid" : "test", d.lengths, documents, config);
}

// A stream of `size` samples of one dataset, in its own order (Megatron's lone mid-level dataset).
BlendIndices single_stream(int64_t size) {
  BlendIndices stream;
  stream.dataset_index.assign(size_t(size), 0);
  stream.dataset_sample_index.resize(size_t(size));
  std::iota(stream.dataset_sample_index.begin(), stream.dataset_sample_index.end(), int64_t(0));
  return stream;
}

// Megatron's accounting: the blended validation and test streams, as BlendedDataset orders the
// split's sources (a lone unweighted source is its own stream).
void build_eval_streams(Loader& loader, const std::vector<double>& raw) {
  const LoaderOptions& o = loader.options;
  for (int which : {1, 2}) {
    const int64_t size = which == 1 ? o.valid_samples : o.test_samples;
    bool any = false;
    for (const LoaderDataset& d : loader.datasets)
      any = any || (which == 1 ? d.valid : d.test).num_samples() > 0;
    if (size <= 0 || !any) continue;
    for (const LoaderDataset& d : loader.datasets) {
      if ((which == 1 ? d.valid : d.test).num_samples() == 0)
        fail_file(d.prefix + ".idx", std::string("the ") + (which == 1 ? "validation" : "test") +
                                         " split of dataset \"" + d.name +
                                         "\" holds no sample; Megatron's blend needs one");
    }
    BlendIndices& stream = loader.eval_stream[size_t(which)];
    if (loader.datasets.size() == 1 && !o.weighted) {
      stream = single_stream(size);
    } else {
      const BlendPlan plan = plan_blend(raw, size, o.surplus);
      stream = build_blending_indices(plan.weights, plan.size);
    }
  }
}

// blend_per_split: the validation and test splits from their own datasets, each read whole
// (Megatron's split_spoof (0.0, 1.0)).  One dataset is sized by the split's sample count whatever
// its weight; several are blended with the surplus, as _build_blended_dataset_splits does.
void open_split_datasets(Loader& loader) {
  const LoaderOptions& o = loader.options;
  for (int which : {1, 2}) {
    const std::vector<LoaderSource>& sources = which == 1 ? o.valid_sources : o.test_sources;
    const int64_t size = which == 1 ? o.valid_samples : o.test_samples;
    if (sources.empty() || size <= 0) continue;
    std::vector<double> raw;
    for (const LoaderSource& s : sources) raw.push_back(s.weight);
    const BlendPlan plan = plan_blend(raw, size, o.surplus);
    for (size_t j = 0; j < sources.size(); ++j) {
      LoaderDataset d = open_dataset(sources[j]);
      std::vector<int32_t> all(d.lengths.size());
      std::iota(all.begin(), all.end(), 0);
      const int64_t wanted = sources.size() == 1 ? size : plan.num_samples[j];
      GptIndices indices = build_eval_indices(o, d, which, wanted, all);
      if (indices.num_samples() == 0)
        fail_file(d.prefix + ".idx", std::string("the ") + (which == 1 ? "validation" : "test") +
                                         " dataset \"" + d.name + "\" (" +
                                         std::to_string(all.size()) +
                                         " sequences) holds no sample of seq_length tokens");
      (which == 1 ? d.valid : d.test) = std::move(indices);
      loader.split_datasets[size_t(which)].push_back(std::move(d));
    }
    loader.eval_stream[size_t(which)] =
        sources.size() == 1 ? single_stream(size) : build_blending_indices(plan.weights, plan.size);
  }
}

void validate_options(const LoaderOptions& o) {
  if (o.sources.empty()) fail("data: no datasets given");
  if (o.sources.size() > 32766) fail("data: at most 32766 datasets");
  for (size_t i = 0; i < o.sources.size(); ++i) {
    if (!(o.sources[i].weight > 0))
      fail("data: the weight of \"" + o.sources[i].name + "\" must be positive");
    for (size_t j = 0; j < i; ++j) {
      if (o.sources[j].name == o.sources[i].name)
        fail("data: two datasets are named \"" + o.sources[i].name + "\"");
    }
  }
  if (o.seq_length <= 0) fail("data: seq_length must be positive");
  if (o.micro_batch_size <= 0 || o.dp_size <= 0 ||
      o.global_batch_size % (o.micro_batch_size * o.dp_size) != 0)
    fail("data: global_batch_size must be a multiple of micro_batch_size x data-parallel size");
  if (o.dp_rank < 0 || o.dp_rank >= o.dp_size) fail("data: dp_rank outside [0, dp_size)");
  if (o.train_samples <= 0) fail("data: train_samples must be positive");
  for (const std::vector<LoaderSource>* split : {&o.valid_sources, &o.test_sources}) {
    for (const LoaderSource& s : *split) {
      if (!(s.weight > 0)) fail("data: the weight of \"" + s.name + "\" must be positive");
    }
  }
  if (!o.blend_per_split && (!o.valid_sources.empty() || !o.test_sources.empty()))
    fail("data: validation and test datasets of their own need blend_per_split");
  if (o.blend_per_split && !o.megatron_eval &&
      (!o.valid_sources.empty() || !o.test_sources.empty()))
    fail(
        "data: validation and test datasets of their own (blend_per_split) need Megatron's "
        "accounting (eval_iters)");
  check_rampup(o.rampup_batch_size, o.global_batch_size, o.micro_batch_size * o.dp_size,
               "data: rampup_batch_size");
}

}  // namespace

Loader loader_open(const LoaderOptions& options, const LoaderState* resume,
                   const std::string& resume_origin, std::vector<std::string>* notes) {
  validate_options(options);
  // blend_per_split reads every training dataset whole; the split string plays no part.
  const std::vector<double> shares =
      options.blend_per_split ? std::vector<double>{} : parse_split(options.split);
  const std::string split = options.blend_per_split ? "blend_per_split" : options.split;
  Loader loader;
  loader.options = options;

  if (resume) {
    loader.state = *resume;
    const std::string where = resume_origin.empty() ? "loader state" : resume_origin;
    if (resume->seq_length != options.seq_length)
      fail_file(where, "seq_length was " + std::to_string(resume->seq_length) + ", now " +
                           std::to_string(options.seq_length) +
                           "; the sample order cannot continue");
    if (resume->seed != options.seed)
      fail_file(where, "the data seed was " + std::to_string(resume->seed) + ", now " +
                           std::to_string(options.seed) + "; the sample order cannot continue");
    if (resume->split != split)
      fail_file(where, "split was \"" + resume->split + "\", now \"" + split +
                           "\"; the sample order cannot continue");
  } else {
    loader.state.seq_length = options.seq_length;
    loader.state.seed = options.seed;
    loader.state.split = split;
  }

  // Blend weights as Megatron's BlendedDataset sees them; sizes for sources new to this run.
  std::vector<double> raw;
  for (const LoaderSource& s : options.sources) raw.push_back(s.weight);
  const int64_t remaining =
      std::max<int64_t>(options.train_samples - loader.state.consumed_samples, 1);
  const BlendPlan plan = plan_blend(raw, remaining, options.surplus);
  loader.weights = options.sources.size() == 1 ? std::vector<double>{1.0} : plan.weights;

  for (size_t i = 0; i < options.sources.size(); ++i) {
    const LoaderSource& source = options.sources[i];
    LoaderDataset d = open_dataset(source);
    const size_t count = d.lengths.size();
    const std::vector<int64_t> bounds = options.blend_per_split
                                            ? std::vector<int64_t>{0, int64_t(count)}
                                            : split_bounds(shares, int64_t(count));
    for (int64_t s = bounds[0]; s < bounds[1]; ++s) d.train_documents.push_back(int32_t(s));
    if (d.train_documents.empty())
      fail_file(source.prefix + ".idx",
                "the train split of " + std::to_string(count) + " sequences is empty");

    auto known = std::find_if(loader.state.sources.begin(), loader.state.sources.end(),
                              [&](const LoaderSourceState& s) { return s.name == source.name; });
    if (known != loader.state.sources.end()) {
      if (known->prefix != source.prefix)
        fail_file(resume_origin.empty() ? "loader state" : resume_origin,
                  "dataset \"" + source.name + "\" was " + known->prefix + ", now " +
                      source.prefix + "; give a different dataset a new name");
      d.state = size_t(known - loader.state.sources.begin());
    } else {
      // Megatron sizes a lone dataset without a weight by train_samples, and blended ones (a
      // lone weighted one too) by plan_blend; with blend_per_split a lone dataset is never
      // blended.
      const bool lone =
          options.sources.size() == 1 && (!options.weighted || options.blend_per_split);
      int64_t planned = lone ? remaining : plan.num_samples[i];
      loader.state.sources.push_back({source.name, source.prefix, planned, 0, 0});
      d.state = loader.state.sources.size() - 1;
    }
    d.train_epochs.push_back(
        build_train_epochs(options, d, loader.state.sources[d.state].planned_samples, 0));

    // Validation (1) and test (2) indices.  Megatron's accounting sizes them as its builder sizes
    // the valid and test splits (a blended source by its plan_blend share); otherwise validation
    // wants valid_samples per source and there is no test split.  blend_per_split reads them
    // from datasets of their own (open_split_datasets).
    for (int which : {1, 2}) {
      const int64_t size = which == 1 ? options.valid_samples : options.test_samples;
      if (options.blend_per_split || size <= 0 || (which == 2 && !options.megatron_eval)) continue;
      const bool lone =
          !options.megatron_eval || (options.sources.size() == 1 && !options.weighted);
      const int64_t wanted = lone ? size : plan_blend(raw, size, options.surplus).num_samples[i];
      std::vector<int32_t> documents;
      for (int64_t s = bounds[size_t(which)]; s < bounds[size_t(which) + 1]; ++s)
        documents.push_back(int32_t(s));
      (which == 1 ? d.valid : d.test) = build_eval_indices(options, d, which, wanted, documents);
    }
    loader.datasets.push_back(std::move(d));
  }

  // The blend continues, or a new segment starts from every source's own count.
  std::vector<std::string> names;
  for (const LoaderSource& s : options.sources) names.push_back(s.name);
  const bool same_blend =
      names == loader.state.segment_sources && loader.weights == loader.state.segment_weights;
  if (!same_blend) {
    if (resume && notes)
      notes->push_back("data: the blend changed at sample " +
                       std::to_string(loader.state.consumed_samples) +
                       "; a new segment starts and every dataset continues from its own count");
    loader.state.segment_sources = names;
    loader.state.segment_weights = loader.weights;
    loader.state.segment_start_sample = loader.state.consumed_samples;
    for (LoaderSourceState& s : loader.state.sources) s.segment_start = s.consumed;
  }
  loader.sample.resize(sample_tokens(options));
  if (options.blend_per_split)
    open_split_datasets(loader);
  else if (options.megatron_eval)
    build_eval_streams(loader, raw);
  loader.batch.reserve(size_t(options.global_batch_size));
  if (resume && same_blend && resume->next_batch_hash) {
    const uint64_t now = loader_next_batch_hash(loader);
    if (now != *resume->next_batch_hash) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "the next batch hashes to %016llx, the checkpoint recorded %016llx: the "
                    "datasets or their order changed since it was written",
                    (unsigned long long)now, (unsigned long long)*resume->next_batch_hash);
      fail_file(resume_origin.empty() ? "loader state" : resume_origin, text);
    }
  }
  loader.state.next_batch_hash.reset();
  return loader;
}

int64_t loader_batch_size(const Loader& loader) {
  return rampup_global_batch_size(loader.options.rampup_batch_size,
                                  loader.options.global_batch_size, loader.state.consumed_samples);
}

void loader_next_batch(Loader& loader) {
  plan_samples(loader, loader.state, loader.taken, loader_batch_size(loader), loader.batch);
}

void loader_read_micro_batch(Loader& loader, int64_t micro, int32_t* inputs, int32_t* targets) {
  const LoaderOptions& o = loader.options;
  const size_t B = size_t(o.micro_batch_size), T = size_t(o.seq_length);
  const size_t first = size_t((micro * o.dp_size + o.dp_rank) * o.micro_batch_size);
  check(first + B <= loader.batch.size(), "loader: micro-batch outside the planned batch");
  for (size_t b = 0; b < B; ++b) {
    read_train_sample(loader, loader.batch[first + b], loader.sample.data());
    sample_to_inputs_targets(loader.sample.data(), loader.sample.size(), T, inputs + b * T,
                             targets + b * T);
  }
}

uint64_t loader_next_batch_hash(Loader& loader) {
  LoaderState peek = loader.state;
  std::vector<SampleRef> refs;
  std::vector<int64_t> taken;
  plan_samples(loader, peek, taken, loader_batch_size(loader), refs);
  Xxhash64Stream hash;
  for (SampleRef ref : refs) {
    read_train_sample(loader, ref, loader.sample.data());
    hash.update(loader.sample.data(), loader.sample.size() * sizeof(int32_t));
  }
  return hash.digest();
}

LoaderState loader_checkpoint_state(Loader& loader) {
  LoaderState state = loader.state;
  state.next_batch_hash = loader_next_batch_hash(loader);
  return state;
}

std::pair<int64_t, int64_t> megatron_eval_samples(int64_t train_iters, int64_t eval_interval,
                                                  int64_t eval_iters, int64_t global_batch_size) {
  const int64_t eval_points = train_iters / eval_interval + 1;
  return {eval_points * eval_iters * global_batch_size, eval_iters * global_batch_size};
}

int64_t loader_eval_stream_size(const Loader& loader, int which) {
  check(which == 1 || which == 2, "loader: eval stream 1 (validation) or 2 (test)");
  return int64_t(loader.eval_stream[size_t(which)].dataset_index.size());
}

void loader_read_eval_stream(Loader& loader, int which, int64_t first, int32_t* inputs,
                             int32_t* targets) {
  const int64_t n = loader_eval_stream_size(loader, which);
  check(n > 0, "loader: no evaluation stream");
  const BlendIndices& stream = loader.eval_stream[size_t(which)];
  const std::vector<LoaderDataset>& datasets =
      loader.options.blend_per_split ? loader.split_datasets[size_t(which)] : loader.datasets;
  const size_t B = size_t(loader.options.micro_batch_size);
  const size_t T = size_t(loader.options.seq_length);
  const bool partial = which == 1 && !loader.options.drop_last_partial_validation_sequence;
  for (size_t b = 0; b < B; ++b) {
    const size_t i = size_t((first + int64_t(b)) % n);
    const LoaderDataset& data = datasets[size_t(stream.dataset_index[i])];
    const GptIndices& indices = which == 1 ? data.valid : data.test;
    // Megatron's mid-level datasets hold at least their share; wrap only as a guard.
    const int64_t k = stream.dataset_sample_index[i] % int64_t(indices.num_samples());
    const size_t filled = read_gpt_sample(data, indices, k, loader.options, partial,
                                          loader.sample.data(), loader.sample.size());
    sample_to_inputs_targets(loader.sample.data(), filled, T, inputs + b * T, targets + b * T);
  }
}

size_t loader_valid_samples(const Loader& loader, size_t d) {
  return loader.datasets[d].valid.num_samples();
}

void loader_read_valid(Loader& loader, size_t d, int64_t first, int32_t* inputs, int32_t* targets) {
  const LoaderDataset& data = loader.datasets[d];
  const size_t n = data.valid.num_samples();
  check(n > 0, "loader: dataset " + data.name + " has no validation samples");
  const size_t B = size_t(loader.options.micro_batch_size);
  const size_t T = size_t(loader.options.seq_length);
  const bool partial = !loader.options.drop_last_partial_validation_sequence;
  for (size_t b = 0; b < B; ++b) {
    const int64_t idx = int64_t((size_t(first) + b) % n);
    const size_t filled = read_gpt_sample(data, data.valid, idx, loader.options, partial,
                                          loader.sample.data(), loader.sample.size());
    sample_to_inputs_targets(loader.sample.data(), filled, T, inputs + b * T, targets + b * T);
  }
}

nlohmann::json loader_state_to_json(const LoaderState& s) {
  nlohmann::json sources = nlohmann::json::array();
  for (const LoaderSourceState& x : s.sources) {
    sources.push_back({{"name", x.name},
                       {"prefix", x.prefix},
                       {"planned_samples", x.planned_samples},
                       {"consumed", x.consumed},
                       {"segment_start", x.segment_start}});
  }
  nlohmann::json j = {{"seq_length", s.seq_length},
                      {"seed", s.seed},
                      {"split", s.split},
                      {"consumed_samples", s.consumed_samples},
                      {"segment_start_sample", s.segment_start_sample},
                      {"segment_sources", s.segment_sources},
                      {"segment_weights", s.segment_weights},
                      {"sources", sources}};
  if (s.next_batch_hash) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)*s.next_batch_hash);
    j["next_batch_hash"] = hex;
  }
  return j;
}

LoaderState loader_state_from_json(const nlohmann::json& j, const std::string& where) {
  LoaderState s;
  try {
    s.seq_length = j.at("seq_length").get<int32_t>();
    s.seed = j.at("seed").get<uint32_t>();
    s.split = j.at("split").get<std::string>();
    s.consumed_samples = j.at("consumed_samples").get<int64_t>();
    s.segment_start_sample = j.at("segment_start_sample").get<int64_t>();
    s.segment_sources = j.at("segment_sources").get<std::vector<std::string>>();
    s.segment_weights = j.at("segment_weights").get<std::vector<double>>();
    for (const nlohmann::json& x : j.at("sources")) {
      s.sources.push_back({x.at("name").get<std::string>(), x.at("prefix").get<std::string>(),
                           x.at("planned_samples").get<int64_t>(), x.at("consumed").get<int64_t>(),
                           x.at("segment_start").get<int64_t>()});
    }
    if (j.contains("next_batch_hash")) {
      const std::string hex = j.at("next_batch_hash").get<std::string>();
      size_t used = 0;
      s.next_batch_hash = std::stoull(hex, &used, 16);
      if (used != hex.size() || hex.size() != 16) fail_file(where, "bad next_batch_hash " + hex);
    }
  } catch (const nlohmann::json::exception& e) {
    fail_file(where, std::string("bad loader state: ") + e.what());
  } catch (const std::logic_error&) {
    fail_file(where, "bad loader state: next_batch_hash is not hexadecimal");
  }
  int64_t total = 0;
  for (const LoaderSourceState& x : s.sources) {
    if (x.consumed < 0 || x.segment_start < 0 || x.segment_start > x.consumed ||
        x.planned_samples <= 0)
      fail_file(where, "bad loader state: inconsistent counts of dataset \"" + x.name + "\"");
    total += x.consumed;
  }
  if (total != s.consumed_samples || s.segment_start_sample > s.consumed_samples ||
      s.segment_sources.size() != s.segment_weights.size())
    fail_file(where, "bad loader state: the counts do not add up");
  return s;
}

}  // namespace hibari
