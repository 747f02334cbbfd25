#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "checkpoint/native_checkpoint.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/loader.h"
#include "data/text_tokenizer.h"
#include "infer/sample.h"
#include "model/hf_weights.h"
#include "model/llama.h"
#include "optim/schedule.h"
#include "parallel/rank_status.h"
#include "train/distributed.h"
#include "train/distributed_checkpoint.h"
#include "train/metrics.h"
#include "train/peak_flops.h"
#include "train/train_checkpoint.h"
#include "train/watchdog.h"

namespace hibari {

namespace {

// SIGTERM and SIGINT ask the loop to write a checkpoint and stop after the current step; a second
// one while that is going on kills the process as usual (the handler is reset after the first).
std::atomic<int> stop_signal{0};

extern "C" void on_stop_signal(int signal) {
  stop_signal.store(signal);
  std::signal(signal, SIG_DFL);
}

struct StopSignals {
  StopSignals() {
    stop_signal.store(0);
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGINT, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
  }
  int received() const { return stop_signal.load(); }
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot read");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The config as run, and the model's config.json, copied into the run directory.
void write_run_files(const RunConfig& c, const ModelConfig& model, const std::string& dir) {
  std::filesystem::copy_file(c.path, std::filesystem::path(dir) / "run.toml",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream json(std::filesystem::path(dir) / "config.json");
  json << model_config_to_json(model).dump(2) << "\n";
  if (!json) fail_file(dir + "/config.json", "write failed");
}

// The blend-weighted mean of the datasets' validation losses that exist: the loss of the mix the
// model is trained on.
double blended_loss(const std::vector<double>& losses, const std::vector<double>& weights) {
  double sum = 0, weight = 0;
  for (size_t d = 0; d < losses.size(); ++d) {
    if (std::isnan(losses[d])) continue;
    sum += weights[d] * losses[d];
    weight += weights[d];
  }
  return weight > 0 ? sum / weight : std::numeric_limits<double>::quiet_NaN();
}

LoaderOptions loader_options(const RunConfig& c, size_t vocab_size, const Grid& grid) {
  const TrainSection& t = c.train;
  LoaderOptions o;
  for (size_t i = 0; i < c.data.prefixes.size(); ++i) {
    o.sources.push_back({.name = c.data.names[i],
                         .prefix = c.data.prefixes[i],
                         .weight = c.data.weights.empty() ? 1.0 : c.data.weights[i]});
  }
  o.weighted = !c.data.weights.empty();
  o.split = c.data.split;
  // Megatron's blend_per_split: the validation and test splits' own datasets, named by file.
  o.blend_per_split = c.data.blend_per_split;
  auto split_sources = [](const std::vector<std::string>& prefixes,
                          const std::vector<double>& weights) {
    std::vector<LoaderSource> sources;
    for (size_t i = 0; i < prefixes.size(); ++i)
      sources.push_back({.name = std::filesystem::path(prefixes[i]).filename().string(),
                         .prefix = prefixes[i],
                         .weight = weights.empty() ? 1.0 : weights[i]});
    return sources;
  };
  o.valid_sources = split_sources(c.data.valid_prefixes, c.data.valid_weights);
  o.test_sources = split_sources(c.data.test_prefixes, c.data.test_weights);
  o.add_extra_token = c.data.add_extra_token_to_sequence;
  o.drop_last_partial_validation_sequence = c.data.drop_last_partial_validation_sequence;
  o.surplus = c.data.mid_level_dataset_surplus;
  o.seq_length = int32_t(t.seq_length);
  o.seed = uint32_t(t.seed);
  o.global_batch_size = t.global_batch_size;
  o.micro_batch_size = t.micro_batch_size;
  // Megatron sizes the indices by train_samples when the run is given in samples.
  o.train_samples = t.train_samples > 0 ? t.train_samples : t.steps * t.global_batch_size;
  o.rampup_batch_size = t.rampup_batch_size;
  o.valid_samples = t.eval_batches * t.micro_batch_size;
  if (t.eval_iters > 0) {
    o.megatron_eval = true;
    std::tie(o.valid_samples, o.test_samples) =
        megatron_eval_samples(t.steps, t.eval_every, t.eval_iters, t.global_batch_size);
  }
  o.vocab_size = vocab_size;
  o.dp_rank = grid.coord.dp;
  o.dp_size = grid.sizes.dp;
  o.cache_dir = c.data.cache_dir;
  return o;
}

// Generated text with control characters other than newline and tab escaped, so a sample cannot
// move the terminal's cursor.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) {
    if (ch == '\n' || ch == '\t' || ch >= 0x20) {
      out.push_back(char(ch));
    } else {
      out += "\\x" + std::string(1, "0123456789abcdef"[ch >> 4]) + "0123456789abcdef"[ch & 15];
    }
  }
  return out;
}

}  // namespace

TrainSummary run_training(const RunConfig& c, FILE* out, bool live) {
  const TrainSection& t = c.train;
  set_num_threads(int(t.threads));
  ModelConfig model_config = load_model_config(c.model.config);
  if (size_t(t.seq_length) > model_config.max_position_embeddings)
    fail_file(c.model.config, "[train].seq_length " + std::to_string(t.seq_length) +
                                  " exceeds max_position_embeddings " +
                                  std::to_string(model_config.max_position_embeddings));
  if (size_t(t.freeze_vocab_below) > model_config.vocab_size)
    fail_file(c.path, "[train].freeze_vocab_below " + std::to_string(t.freeze_vocab_below) +
                          " exceeds the model's vocab_size " +
                          std::to_string(model_config.vocab_size));
  std::optional<TextTokenizer> tokenizer;
  if (!c.data.tokenizer.empty()) {
    tokenizer = load_text_tokenizer(c.data.tokenizer);
    if (tokenizer->vocab_size() > model_config.vocab_size)
      fail_file(c.model.config, "vocab_size " + std::to_string(model_config.vocab_size) +
                                    " is smaller than the tokenizer's " +
                                    std::to_string(tokenizer->vocab_size()) + " (" +
                                    tokenizer->path() + ")");
  }
  const size_t T = size_t(t.seq_length);
  Distributed dist;
  distributed_create(dist, c, model_config, size_t(t.freeze_vocab_below));
  struct FreeGrid {
    Distributed& d;
    ~FreeGrid() { distributed_free(d); }
  } free_grid{dist};
  Llama& model = dist.model;
  const bool leader = dist.leader;
  // Only the leader (world rank 0) talks; the others' output goes nowhere.
  FILE* null_out = leader ? nullptr : std::fopen("/dev/null", "w");
  if (!leader) out = null_out;
  struct CloseNull {
    FILE* f;
    ~CloseNull() {
      if (f) std::fclose(f);
    }
  } close_null{null_out};
  LrSchedule schedule{.lr = c.optimizer.lr,
                      .min_lr = c.optimizer.min_lr,
                      .warmup_steps = c.schedule.warmup_steps,
                      .decay_steps = c.schedule.decay_steps,
                      .decay = parse_lr_decay(c.schedule.decay)};
  // One process keeps its state in one-process layout already and writes one file set; a
  // parallel run writes sharded checkpoints (train/distributed_checkpoint.h), each rank its own
  // part: nothing is gathered.
  const bool single = dist.world.size == 1 && c.parallel.zero_stage == 0;
  TrainingState state{.layout = &dist.full_layout,
                      .params = single ? model.params : nullptr,
                      .m = single ? dist.optimizer.m.data() : nullptr,
                      .v = single ? dist.optimizer.v.data() : nullptr,
                      .optimizer_step = 0};

  // Where the run starts: the newest intact checkpoint, else HF weights, else a fresh init.
  std::vector<std::string> notes;
  std::unique_ptr<LoadedCheckpoint> checkpoint;
  int64_t start_step = 0;
  std::optional<LoaderState> loader_state;
  std::string sharded_dir;
  if (c.checkpoint.resume) {
    // A sharded checkpoint (a parallel run's): every rank reads only its own slices.
    loader_state = distributed_checkpoint_resume(dist, c.checkpoint.dir, model_config, start_step,
                                                 sharded_dir, notes);
    if (!loader_state) checkpoint = load_latest_checkpoint(c.checkpoint.dir, &notes);
  }
  std::string start_source = "random initialization (seed " + std::to_string(t.seed) + ")";
  if (!sharded_dir.empty()) {
    start_source = "checkpoint " + sharded_dir + " (step " + std::to_string(start_step) + ")";
  } else if (checkpoint) {
    if (single) {
      loader_state = checkpoint_restore(*checkpoint, model_config, state, start_step);
      dist.optimizer.step = state.optimizer_step;
    } else {
      // Every rank reads the checkpoint (full tensors) and keeps its part: any layout resumes
      // any other's checkpoint.
      const size_t n = dist.full_layout.total;
      std::vector<float> full(3 * n);
      TrainingState read{.layout = &dist.full_layout,
                         .params = full.data(),
                         .m = full.data() + n,
                         .v = full.data() + 2 * n,
                         .optimizer_step = 0};
      loader_state = checkpoint_restore(*checkpoint, model_config, read, start_step);
      distributed_load_params(dist, read.params);
      distributed_load_moments(dist, read.m, read.v, read.optimizer_step);
    }
    start_source = "checkpoint " + checkpoint->dir + " (step " + std::to_string(start_step) + ")";
    checkpoint.reset();  // unmap its files
  } else if (!c.model.init_from.empty()) {
    std::vector<float> full(dist.full_layout.total);
    load_hf_weights(dist.full_layout, full.data(), model_config, c.model.init_from);
    distributed_load_params(dist, full.data());
    start_source = "Hugging Face weights " + c.model.init_from;
  } else {
    distributed_init_params(dist, model_config.initializer_range, uint64_t(t.seed));
  }
  Loader loader =
      loader_open(loader_options(c, model_config.vocab_size, dist.grid),
                  loader_state ? &*loader_state : nullptr,
                  c.checkpoint.dir + "/" + checkpoint_dir_name(start_step) + "/state.json", &notes);

  if (leader) {
    std::filesystem::create_directories(c.run.dir);
    write_run_files(c, model_config, c.run.dir);
    metrics_drop_after(c.run.dir, start_step);
  }
  barrier(dist.world);  // the run directory exists before any rank writes its status there
  std::optional<MetricsLog> metrics;
  if (leader) metrics.emplace(c.run.dir);
  const std::string config_json = model_config_to_json(model_config).dump(2) + "\n";
  const std::string run_toml = read_text_file(c.path);
  CheckpointWriter checkpoints;
  checkpoints.root = c.checkpoint.dir;
  checkpoints.keep = int(c.checkpoint.keep);
  const StopSignals stop_signals;
  // Under mpirun each rank publishes where it is, so a watchdog that fires can name the rank
  // that is late and the collective every rank is in.
  RankStatus rank_status;
  if (dist.world.size > 1)
    rank_status_open(rank_status, c.run.dir + "/ranks", dist.world.rank, dist.world.size);
  struct CloseStatus {
    RankStatus& s;
    bool open;
    ~CloseStatus() {
      if (open) rank_status_close(s);
    }
  } close_status{rank_status, dist.world.size > 1};
  Watchdog watchdog(t.watchdog_seconds, stderr, dist.world.size > 1 ? &rank_status : nullptr);

  // MFU: say once what is divided by what.
  const double flops_per_token = llama_train_flops_per_token(model_config, T);
  double peak = t.peak_flops;
  std::string peak_source = "train.peak_flops from the config";
  if (peak == 0) {
    peak = measure_sgemm_flops();
    peak_source = "measured: 2048^3 sgemm on " + std::to_string(num_threads()) + " threads";
  }
  const size_t tokens_per_step = size_t(t.global_batch_size) * T;  // after any ramp-up
  std::fprintf(out, "hibari train: %s\n", c.path.c_str());
  std::fprintf(
      out,
      "  model   %s: %zu layers, hidden %zu, heads %zu/%zu, ffn %zu, vocab %zu, %.2fM params\n",
      c.model.config.c_str(), model_config.num_hidden_layers, model_config.hidden_size,
      model_config.num_attention_heads, model_config.num_key_value_heads,
      model_config.intermediate_size, model_config.vocab_size,
      double(parameter_count(model_config)) / 1e6);
  for (size_t d = 0; d < loader.datasets.size(); ++d) {
    const LoaderDataset& data = loader.datasets[d];
    if (c.data.blend_per_split)
      std::fprintf(out, "  data    %s (%s): %zu documents, %zu tokens, weight %.3f, read whole\n",
                   data.name.c_str(), data.prefix.c_str(), data.data.document_count(),
                   data.data.token_count(), loader.weights[d]);
    else
      std::fprintf(
          out,
          "  data    %s (%s): %zu documents, %zu tokens, weight %.3f, %zu validation samples\n",
          data.name.c_str(), data.prefix.c_str(), data.data.document_count(),
          data.data.token_count(), loader.weights[d], data.valid.num_samples());
  }
  // blend_per_split: the validation and test splits' own datasets.
  for (size_t which : {1, 2}) {
    for (const LoaderDataset& data : loader.split_datasets[which])
      std::fprintf(out, "  %s %s (%s): %zu documents, %zu tokens, %zu samples\n",
                   which == 1 ? "valid  " : "test   ", data.name.c_str(), data.prefix.c_str(),
                   data.data.document_count(), data.data.token_count(),
                   (which == 1 ? data.valid : data.test).num_samples());
  }
  std::fprintf(out, "  batch   %zu tokens per step (%lld x %zu; %lld micro-batches of %zu)\n",
               tokens_per_step, (long long)t.global_batch_size, T,
               (long long)(dist.accumulation * dist.grid.sizes.dp), dist.B);
  if (!t.rampup_batch_size.empty()) {
    const std::vector<int64_t>& r = t.rampup_batch_size;
    std::fprintf(out,
                 "          ramp-up: %lld sequences at first, + %lld every %.1f samples up to %lld "
                 "samples (now %lld); %lld steps for %lld samples\n",
                 (long long)r[0], (long long)r[1],
                 double(r[2]) / double((t.global_batch_size - r[0]) / r[1]), (long long)r[2],
                 (long long)loader_batch_size(loader), (long long)t.steps,
                 (long long)t.train_samples);
  }
  if (dist.world.size > 1) {
    const GridSizes& g = dist.grid.sizes;
    std::fprintf(out,
                 "  layout  %d processes = dp %d x tp %d x pp %d%s; %lld micro-batches per dp rank"
                 "%s\n",
                 dist.world.size, g.dp, g.tp, g.pp,
                 c.parallel.sequence_parallel ? " (sequence parallel)" : "",
                 (long long)dist.accumulation, g.pp > 1 ? ", 1F1B" : "");
  }
  std::fprintf(out,
               "  memory  %.1f MiB planned for the model (parameters, gradients, activations)\n",
               double(model.arena.bytes()) / (1 << 20));
  std::fprintf(out, "          %s\n", zero_memory_line(dist.zero).c_str());
  std::fprintf(out, "  MFU     = tokens/s x %.4g FLOP/token / %.4g FLOP/s\n", flops_per_token,
               peak);
  std::fprintf(out,
               "          FLOP/token = 6 x %zu matmul params + 6 x L x T x Q (causal attention)\n",
               matmul_parameter_count(model_config));
  std::fprintf(out, "          peak = %.1f GFLOP/s (%s)\n", peak / 1e9, peak_source.c_str());
  std::fprintf(out, "  run dir %s (metrics.jsonl, TensorBoard events); checkpoints %s\n",
               c.run.dir.c_str(), c.checkpoint.dir.c_str());
  std::fprintf(out, "  start   %s\n", start_source.c_str());
  for (const std::string& note : notes) std::fprintf(out, "  note    %s\n", note.c_str());
  std::fflush(out);

  TrainSummary summary;
  auto run_start = Clock::now();
  double train_seconds = 0;
  int64_t tokens_run = 0;  // tokens of the steps this process ran
  summary.resumed_from = start_step;
  std::vector<double> recent_losses;  // for spike detection, the last 50
  dist.watchdog = &watchdog;
  CommBytes bytes_before_steps{}, bytes_of_steps{};  // training steps only (not validation)
  // Megatron's accounting: a pass reads eval_iters global batches; a split without data (None in
  // Megatron) is not evaluated.
  const bool megatron_eval = t.eval_iters > 0;
  const int64_t eval_samples = t.eval_iters * t.global_batch_size;
  const int64_t eval_micro = eval_samples / t.micro_batch_size;
  const bool has_valid = loader_eval_stream_size(loader, 1) > 0;
  const bool has_test = loader_eval_stream_size(loader, 2) > 0;
  for (int64_t step = start_step + 1; step <= t.steps; ++step) {
    auto step_start = Clock::now();
    dist.step = step;
    bytes_before_steps = distributed_bytes(dist);
    watchdog_enter(watchdog, "data", step);
    loader_next_batch(loader);
    double loss = distributed_forward_backward(dist, loader);
    watchdog_enter(watchdog, "optimizer", step);
    double grad_norm =
        distributed_finish_grads(dist, size_t(t.freeze_vocab_below), c.optimizer.grad_clip);
    double lr = learning_rate(schedule, step);
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (!finite && t.nan_policy == "abort")
      fail("step " + std::to_string(step) + ": loss " + std::to_string(loss) + ", gradient norm " +
           std::to_string(grad_norm) + "; stopping (nan_policy = abort; the last checkpoint is " +
           (checkpoints.last_written >= 0 ? checkpoint_dir_name(checkpoints.last_written)
                                          : std::string("none")) +
           ")");
    if (finite) {
      distributed_optimizer_step(dist, float(lr));
    } else {
      std::fprintf(out,
                   "%sstep %lld: loss %g, gradient norm %g: update skipped (nan_policy = skip)\n",
                   live ? "\r\033[K" : "", (long long)step, loss, grad_norm);
    }
    double step_seconds = seconds_since(step_start);
    train_seconds += step_seconds;
    bytes_of_steps =
        comm_bytes_add(bytes_of_steps, comm_bytes_sub(distributed_bytes(dist), bytes_before_steps));

    // With a ramp-up the step's batch is the loader's, not G.
    const int64_t step_tokens = int64_t(loader.batch.size()) * int64_t(T);
    tokens_run += step_tokens;
    double tokens_per_second = double(step_tokens) / step_seconds;
    double mfu = tokens_per_second * flops_per_token / peak;
    std::vector<Metric> row = {{"loss", loss},
                               {"lr", lr},
                               {"grad_norm", grad_norm},
                               {"tokens_per_s", tokens_per_second},
                               {"mfu", mfu},
                               {"tokens", double(loader.state.consumed_samples) * double(T)}};
    const bool interval = t.eval_every > 0 && step % t.eval_every == 0;
    // Megatron evaluates in its loop at every eval_interval and once more after training (below);
    // hibari's own validation runs at every eval_every and at the last step.
    const bool eval_now = megatron_eval ? interval && has_valid : interval || step == t.steps;
    if (eval_now) {
      watchdog_enter(watchdog, "validation", step);
      if (megatron_eval) {
        // Megatron's accounting: evaluation k (k = step / eval_every - 1 here) reads the k-th
        // eval_iters global batches of the validation stream, as its valid iterator goes on from
        // one evaluation to the next.
        summary.valid_loss = distributed_eval_stream(
            dist, loader, 1, (step / t.eval_every - 1) * eval_samples, eval_micro);
        row.push_back({"valid_loss", summary.valid_loss});
      } else {
        std::vector<double> losses = distributed_validation(dist, loader, t.eval_batches);
        summary.valid_loss = blended_loss(losses, loader.weights);
        // No dataset with a validation split (blend_per_split trains on whole datasets): no
        // valid_loss rather than null.
        if (!std::isnan(summary.valid_loss)) row.push_back({"valid_loss", summary.valid_loss});
        for (size_t d = 0; d < losses.size(); ++d) {
          if (!std::isnan(losses[d]))
            row.push_back({"valid_loss/" + loader.datasets[d].name, losses[d]});
        }
      }
    }
    if (finite && t.spike_factor > 0 && recent_losses.size() >= 10) {
      double mean = 0;
      for (double l : recent_losses) mean += l;
      mean /= double(recent_losses.size());
      if (loss > t.spike_factor * mean) {
        row.push_back({"loss_spike", loss / mean});
        std::fprintf(out, "%sstep %lld: loss spike: %.4f is %.1fx the mean of the last %zu steps\n",
                     live ? "\r\033[K" : "", (long long)step, loss, loss / mean,
                     recent_losses.size());
      }
    }
    if (finite) {
      if (recent_losses.size() == 50) recent_losses.erase(recent_losses.begin());
      recent_losses.push_back(loss);
    }
    if (!finite) row.push_back({"skipped_step", 1});
    if (metrics) metrics->write(step, row);
    if (step == start_step + 1) summary.first_loss = loss;
    summary.last_loss = loss;
    summary.steps = step;

    const int64_t steps_run = step - start_step;
    double average_tokens_per_second = double(tokens_run) / train_seconds;
    double eta = double(t.steps - step) * train_seconds / double(steps_run);
    char line[256];
    std::snprintf(
        line, sizeof line,
        "step %5lld/%lld | loss %.4f | lr %.3e | grad %.3f | %.0f tok/s | MFU %.1f%% | ETA %s",
        (long long)step, (long long)t.steps, loss, lr, grad_norm, average_tokens_per_second,
        100 * average_tokens_per_second * flops_per_token / peak, format_duration(eta).c_str());
    std::string text = line;
    if (eval_now && std::isfinite(summary.valid_loss)) {
      std::snprintf(line, sizeof line, " | valid %.4f", summary.valid_loss);
      text += line;
      for (const Metric& m : row) {
        if (m.name.rfind("valid_loss/", 0) != 0) continue;
        std::snprintf(line, sizeof line, " %s %.4f", m.name.c_str() + 11, m.value);
        text += line;
      }
    }
    if (step % t.log_every == 0 || step == t.steps || eval_now) {
      std::fprintf(out, "%s%s\n", live ? "\r\033[K" : "", text.c_str());
    } else if (live) {
      std::fprintf(out, "\r\033[K%s", text.c_str());
    }
    if (megatron_eval && step == t.steps && (has_valid || has_test)) {
      // Megatron's pretrain() evaluates after training: "iteration N on validation set" reads the
      // next eval_iters global batches (evaluation steps / eval_every, the last of the
      // (steps / eval_every + 1) its split sizes count), then "on test set" the first ones of the
      // test stream.  With steps a multiple of eval_every that is a second validation at the same
      // step, as in Megatron; it goes in a metrics row of its own for step N.
      watchdog_enter(watchdog, "validation", step);
      std::vector<Metric> end_row;
      std::string end_text = "after training:";
      if (has_valid) {
        summary.valid_loss = distributed_eval_stream(
            dist, loader, 1, (step / t.eval_every) * eval_samples, eval_micro);
        end_row.push_back({"valid_loss", summary.valid_loss});
        std::snprintf(line, sizeof line, " valid %.4f", summary.valid_loss);
        end_text += line;
      }
      if (has_test) {
        const double test_loss = distributed_eval_stream(dist, loader, 2, 0, eval_micro);
        end_row.push_back({"test_loss", test_loss});
        std::snprintf(line, sizeof line, "%s test %.4f", has_valid ? " |" : "", test_loss);
        end_text += line;
      }
      if (metrics) metrics->write(step, end_row);
      std::fprintf(out, "%s\n", end_text.c_str());
    }
    std::fflush(out);

    int signal = stop_signals.received();
    if (dist.world.size > 1) {
      // mpirun forwards a signal to every rank, but not at the same instant: the ranks agree
      // (any rank that saw one stops them all) so that all of them write and stop after this step.
      double any = distributed_sum(dist, signal != 0 ? 1.0 : 0.0);
      if (any > 0 && signal == 0) signal = SIGTERM;
    }
    const bool every = c.checkpoint.every > 0 && step % c.checkpoint.every == 0;
    if (every || step == t.steps || signal != 0) {
      // The last one and the one a signal asks for are written before the process goes on.
      watchdog_enter(watchdog, "checkpoint", step);
      const bool background = c.checkpoint.background && step != t.steps && signal == 0;
      if (single) {
        state.optimizer_step = dist.optimizer.step;
        checkpoint_save(checkpoints, step, state, loader, config_json, run_toml, background);
      } else {
        // Every rank writes its own shard at once (synchronously: the ranks agree on the outcome).
        const std::string problem = distributed_checkpoint_save(
            dist, c.checkpoint.dir, int(c.checkpoint.keep), step,
            {{"state.json", leader ? training_state_json(step, dist.optimizer.step, loader) : ""},
             {"config.json", config_json},
             {"run.toml", run_toml}});
        if (problem.empty()) checkpoints.last_written = step;
        if (!problem.empty() && leader)
          std::fprintf(stderr, "hibari: warning: %s\n", problem.c_str());
      }
    }
    watchdog_idle(watchdog);
    if (signal != 0) {
      summary.stopped_by_signal = signal;
      break;
    }
  }
  std::string problem;
  checkpoint_wait(checkpoints, problem);
  if (!problem.empty()) std::fprintf(out, "hibari: warning: %s\n", problem.c_str());
  if (summary.stopped_by_signal != 0) {
    std::fprintf(out, "\nstopped by %s after step %lld; checkpoint %s\n",
                 strsignal(summary.stopped_by_signal), (long long)summary.steps,
                 checkpoints.last_written == summary.steps
                     ? (c.checkpoint.dir + "/" + checkpoint_dir_name(summary.steps)).c_str()
                     : "NOT written");
    std::fflush(out);
    return summary;
  }
  if (summary.steps == 0) {
    std::fprintf(out, "nothing to do: the checkpoint is at step %lld of %lld\n",
                 (long long)start_step, (long long)t.steps);
    return summary;
  }
  summary.tokens_per_second = double(tokens_run) / train_seconds;
  std::fprintf(out, "done: %lld steps in %s, %.0f tokens/s; loss %.4f -> %.4f\n",
               (long long)summary.steps, format_duration(seconds_since(run_start)).c_str(),
               summary.tokens_per_second, summary.first_loss, summary.last_loss);
  if (dist.world.size > 1) {
    const double steps = double(summary.steps - start_step);
    auto mb = [steps](uint64_t b) { return double(b) / steps / 1e6; };
    std::fprintf(out,
                 "sent per step by rank 0: %.3f MB = all-reduce %.3f + reduce-scatter %.3f + "
                 "all-gather %.3f + point-to-point %.3f (ring volumes)\n",
                 mb(comm_bytes_total(bytes_of_steps)), mb(bytes_of_steps.all_reduce),
                 mb(bytes_of_steps.reduce_scatter), mb(bytes_of_steps.all_gather),
                 mb(bytes_of_steps.point_to_point));
  }

  if (!single && !t.sample_prompts.empty())
    std::fprintf(out, "(samples are printed by one-process runs: `hibari generate` on %s)\n",
                 c.checkpoint.dir.c_str());
  for (size_t i = 0; single && tokenizer && i < t.sample_prompts.size(); ++i) {
    std::vector<int32_t> tokens = tokenizer->encode(t.sample_prompts[i], true);
    SampleOptions options{.max_new_tokens = size_t(t.sample_tokens),
                          .temperature = t.sample_temperature,
                          .top_k = size_t(t.sample_top_k),
                          .seed = uint64_t(t.seed) + i,
                          .stop_tokens = {}};
    if (std::optional<int32_t> eos = tokenizer->eos_id()) options.stop_tokens.push_back(*eos);
    std::vector<int32_t> generated = sample_continuation(model, tokens, options);
    tokens.insert(tokens.end(), generated.begin(), generated.end());
    std::fprintf(out, "\n--- sample %zu ---\n%s\n", i + 1,
                 printable(tokenizer->decode(tokens, true)).c_str());
  }
  std::fflush(out);
  return summary;
}

}  // namespace hibari
