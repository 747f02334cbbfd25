// train/run_config.h — the TOML file a run is described by (`hibari train --config run.toml`).
// Each section is a struct whose fields are listed once, in `visit`, with their TOML key and a
// one-line description: the TOML reader, the defaults dump and the documentation all walk that list
// (gemma.cpp's ForEach).  A key the list does not know is an error naming the file and the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hibari {

struct ModelSection {
  std::string config;  // path to a Hugging Face config.json, relative to the TOML file
  std::string init_from;
  template <class V>
  void visit(V&& v) {
    v("config", config, "Hugging Face config.json of the model (path relative to this file)");
    v("init_from", init_from,
      "start from the weights of this Hugging Face model directory (continual pretraining); its "
      "config.json must match `config` (default: random initialization)");
  }
};

struct DataSection {
  std::vector<std::string> prefixes;  // Megatron indexed datasets PREFIX.bin / PREFIX.idx
  std::vector<std::string> names;
  std::vector<double> weights;
  std::string split = "969,30,1";
  std::string tokenizer;
  std::string cache_dir;
  bool add_extra_token_to_sequence = true;
  bool drop_last_partial_validation_sequence = true;
  double mid_level_dataset_surplus = 0.005;
  // Megatron's blend_per_split (--train-data-path, --valid-data-path, --test-data-path): each
  // split's own datasets, each read whole; instead of prefixes, weights and split.
  std::vector<std::string> train_prefixes, valid_prefixes, test_prefixes;
  std::vector<double> train_weights, valid_weights, test_weights;
  // Set by load_run_config when train_prefixes was given; prefixes and weights then hold
  // train_prefixes and train_weights, so the rest of the run reads one list of train datasets.
  bool blend_per_split = false;
  template <class V>
  void visit(V&& v) {
    v("prefixes", prefixes,
      "Megatron indexed datasets (PREFIX.bin/.idx, from `hibari data tokenize`), relative to this "
      "file");
    v("names", names,
      "a name per dataset, for metrics (valid_loss/NAME) and the resume state (default: the file "
      "name of the prefix)");
    v("weights", weights, "blend weights, one per dataset (any scale; needed for 2 or more)");
    v("split", split, "Megatron's train,valid,test shares of each dataset's documents");
    v("tokenizer", tokenizer,
      "tokenizer.json, SentencePiece .model or a directory holding one: checks the vocabulary and "
      "turns sample prompts into tokens");
    v("cache_dir", cache_dir,
      "where the sample-order indices are cached (default: a cache folder beside each dataset)");
    v("add_extra_token_to_sequence", add_extra_token_to_sequence,
      "Megatron's option: a sample is seq_length + 1 tokens (targets are the inputs shifted); "
      "false: seq_length tokens, the last position has no target");
    v("drop_last_partial_validation_sequence", drop_last_partial_validation_sequence,
      "Megatron's option: false keeps the validation split's last, shorter sample (padded, the "
      "padding not scored)");
    v("mid_level_dataset_surplus", mid_level_dataset_surplus,
      "Megatron's option: blended datasets build indices for this many more samples than their "
      "share (a single dataset with a weight is blended too, as in Megatron)");
    v("train_prefixes", train_prefixes,
      "Megatron's blend_per_split (--train-data-path): the training datasets, each read whole "
      "(no split); instead of prefixes, weights and split; `names` name these");
    v("train_weights", train_weights,
      "blend weights of train_prefixes, one per dataset (needed for 2 or more; a single "
      "dataset is not blended, as in Megatron)");
    v("valid_prefixes", valid_prefixes,
      "Megatron's --valid-data-path: the validation datasets, each read whole (needs "
      "[train].eval_iters; none: no validation)");
    v("valid_weights", valid_weights, "blend weights of valid_prefixes (needed for 2 or more)");
    v("test_prefixes", test_prefixes,
      "Megatron's --test-data-path: the test datasets, each read whole (needs [train].eval_iters; "
      "none: no test pass)");
    v("test_weights", test_weights, "blend weights of test_prefixes (needed for 2 or more)");
  }
};

struct TrainSection {
  int64_t seed = 1234;
  int64_t seq_length = 256;
  int64_t micro_batch_size = 8;
  int64_t global_batch_size = 8;
  int64_t steps = 100;
  int64_t train_samples = 0;
  std::vector<int64_t> rampup_batch_size;
  int64_t threads = 0;
  int64_t log_every = 1;
  int64_t eval_every = 0;
  int64_t eval_batches = 4;
  int64_t eval_iters = 0;
  double peak_flops = 0;
  std::vector<std::string> sample_prompts;
  int64_t sample_tokens = 128;
  double sample_temperature = 0.8;
  int64_t sample_top_k = 40;
  int64_t freeze_vocab_below = 0;
  double watchdog_seconds = 3600;
  std::string nan_policy = "abort";
  double spike_factor = 3.0;
  template <class V>
  void visit(V&& v) {
    v("seed", seed, "seed of initialization and data order");
    v("seq_length", seq_length, "tokens per sequence");
    v("micro_batch_size", micro_batch_size, "sequences per forward/backward pass");
    v("global_batch_size", global_batch_size,
      "sequences per optimizer step (a multiple of micro_batch_size; the rest is accumulation)");
    v("steps", steps, "optimizer steps to run");
    v("train_samples", train_samples,
      "Megatron's sample-based run instead of steps: the samples to train on (sizes the sample "
      "indices as Megatron's train_samples does; steps become Megatron's train_iters); 0: off");
    v("rampup_batch_size", rampup_batch_size,
      "Megatron's batch-size ramp-up [start, increment, samples] (needs train_samples): the "
      "global batch grows from start by increment every samples / ((global_batch_size - start) / "
      "increment) samples read; the sample order stays the same, only the step boundaries move");
    v("threads", threads, "CPU threads (0: OMP_NUM_THREADS, else all cores)");
    v("log_every", log_every, "write a progress line every this many steps");
    v("eval_every", eval_every, "validation loss every this many steps (0: only at the end)");
    v("eval_batches", eval_batches, "micro-batches per dataset in a validation pass");
    v("eval_iters", eval_iters,
      "Megatron's accounting of validation (0: off): each validation pass reads the next "
      "eval_iters global batches of the blended validation stream, sized (steps / eval_every + "
      "1) x eval_iters x global_batch_size as Megatron's eval_interval = eval_every; as "
      "Megatron, the run ends with one more validation pass (a second one at the last step when "
      "it is a multiple of eval_every) and a test pass over eval_iters global batches of the "
      "test split");
    v("peak_flops", peak_flops,
      "FLOP/s that MFU divides by (0: measure this machine's sgemm rate at start)");
    v("sample_prompts", sample_prompts, "prompts continued by the model at the end of training");
    v("sample_tokens", sample_tokens, "tokens generated per prompt");
    v("sample_temperature", sample_temperature, "sampling temperature (0: greedy)");
    v("sample_top_k", sample_top_k, "sample among the k most likely tokens (0: all)");
    v("freeze_vocab_below", freeze_vocab_below,
      "keep the embedding and output rows of token ids below this fixed (after `hibari convert "
      "--resize-vocab`: the original vocabulary size, so only the new tokens' rows train); 0: off");
    v("watchdog_seconds", watchdog_seconds,
      "abort the run (exit code 3, naming the phase) when one phase of a step (data, forward, "
      "backward, optimizer, validation, checkpoint) takes longer than this; 0: no watchdog");
    v("nan_policy", nan_policy,
      "a NaN/Inf loss or gradient: abort (stop with an error; the last checkpoint stays good) or "
      "skip (drop that step's update and go on)");
    v("spike_factor", spike_factor,
      "log a loss spike when the loss exceeds this many times the mean of the last 50 steps (0: "
      "off)");
  }
};

struct OptimizerSection {
  double lr = 3e-4;
  double min_lr = 3e-5;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  template <class V>
  void visit(V&& v) {
    v("lr", lr, "peak learning rate");
    v("min_lr", min_lr, "learning rate at the end of the decay");
    v("beta1", beta1, "AdamW beta1");
    v("beta2", beta2, "AdamW beta2");
    v("eps", eps, "AdamW epsilon");
    v("weight_decay", weight_decay, "decoupled weight decay (never applied to norm weights)");
    v("grad_clip", grad_clip, "clip the global gradient norm to this (0: no clipping)");
  }
};

struct ScheduleSection {
  int64_t warmup_steps = 0;
  int64_t decay_steps = 0;
  std::string decay = "cosine";
  template <class V>
  void visit(V&& v) {
    v("warmup_steps", warmup_steps, "linear warmup steps");
    v("decay_steps", decay_steps, "step at which min_lr is reached (0: train.steps)");
    v("decay", decay, "cosine, linear or constant");
  }
};

struct CheckpointSection {
  int64_t every = 0;
  int64_t keep = 3;
  std::string dir;
  bool resume = true;
  bool background = true;
  template <class V>
  void visit(V&& v) {
    v("every", every,
      "write a checkpoint every this many steps (0: only at the end and on SIGTERM/SIGINT)");
    v("keep", keep, "keep the newest this many checkpoints (0: all)");
    v("dir", dir, "where checkpoints go (default: <run.dir>/ckpt)");
    v("resume", resume, "continue from the newest intact checkpoint in dir when there is one");
    v("background", background, "write checkpoints on a background thread while training goes on");
  }
};

struct ParallelSection {
  int64_t tp = 1;
  int64_t pp = 1;
  bool sequence_parallel = false;
  int64_t zero_stage = 0;
  int64_t shard_group = 0;
  bool quantized_gather = false;
  template <class V>
  void visit(V&& v) {
    v("tp", tp,
      "tensor-parallel ranks per layer (Megatron: heads, MLP columns and vocabulary split); the "
      "data-parallel size is the process count / (tp x pp)");
    v("pp", pp, "pipeline stages (layers split evenly, 1F1B schedule over the micro-batches)");
    v("sequence_parallel", sequence_parallel,
      "with tp > 1: norms and the residual stream on 1/tp of the tokens (reduce-scatter and "
      "all-gather instead of all-reduce)");
    v("zero_stage", zero_stage,
      "0: plain data parallelism; 1: AdamW state sharded over the dp ranks; 2: + gradients; 3: + "
      "parameters (gathered layer by layer)");
    v("shard_group", shard_group,
      "hybrid sharding (ZeRO stage 2 or 3): shard within groups of this many dp ranks (e.g. a "
      "node) and replicate across groups; 0: shard over all dp ranks");
    v("quantized_gather", quantized_gather,
      "ZeRO-3: gather parameters as int8 blocks with quantized scales (about 1/4 of the bytes)");
  }
};

struct RunSection {
  std::string dir = "runs/default";
  template <class V>
  void visit(V&& v) {
    v("dir", dir,
      "run directory: config copy, metrics.jsonl, TensorBoard events (relative to cwd)");
  }
};

struct RunConfig {
  std::string path;  // the TOML file; relative paths in it are resolved against its folder
  ModelSection model;
  DataSection data;
  TrainSection train;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  CheckpointSection checkpoint;
  ParallelSection parallel;
  RunSection run;
};

// Reads, validates and resolves relative paths.  Errors name the file and the key.
RunConfig load_run_config(const std::string& path);
// Every section and key with its default and description, as a commented TOML file.
std::string run_config_reference();

}  // namespace hibari
