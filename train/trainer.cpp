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

#include "checkpoint/native_checkpoint.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/loader.h"
#include "data/text_tokenizer.h"
#include "infer/sample.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "train/hf_weights.h"
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

// The embedding and output matrices, whose first `frozen_rows` rows a continual-pretraining run
// with an extended vocabulary may keep fixed.
bool is_vocab_matrix(const ParamInfo& p) {
  return p.name == "model.embed_tokens.weight" || p.name == "lm_head.weight";
}

// What AdamW updates: every parameter, less the frozen rows of the vocabulary matrices (so neither
// their moments nor weight decay touch them).
std::vector<ParamRange> adamw_ranges(const ParameterLayout& layout, size_t frozen_rows) {
  std::vector<ParamRange> ranges;
  for (const ParamInfo& p : layout.params) {
    size_t skip = is_vocab_matrix(p) ? std::min(frozen_rows, p.shape[0]) * p.shape[1] : 0;
    if (p.numel > skip) ranges.push_back({p.offset + skip, p.numel - skip, p.weight_decay});
  }
  return ranges;
}

// Zeroes the gradient of the frozen rows, so that the gradient norm and clipping see only what
// trains.
void zero_frozen_grads(const ParameterLayout& layout, float* grads, size_t frozen_rows) {
  for (const ParamInfo& p : layout.params) {
    if (!is_vocab_matrix(p)) continue;
    std::fill_n(grads + p.offset, std::min(frozen_rows, p.shape[0]) * p.shape[1], 0.0f);
  }
}

// Validation loss per dataset: the mean over `eval_batches` fixed micro-batches of its validation
// split (the same ones at every evaluation).  NaN for a dataset whose split holds no sample.
std::vector<double> validation_losses(Llama& model, Loader& loader, const TrainSection& t,
                                      std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  std::vector<double> losses(loader.datasets.size(), std::numeric_limits<double>::quiet_NaN());
  const size_t B = size_t(t.micro_batch_size), T = size_t(t.seq_length);
  for (size_t d = 0; d < loader.datasets.size(); ++d) {
    if (t.eval_batches == 0 || loader_valid_samples(loader, d) == 0) continue;
    double sum = 0;
    for (int64_t i = 0; i < t.eval_batches; ++i) {
      loader_read_valid(loader, d, i * int64_t(B), inputs.data(), targets.data());
      sum += llama_forward(model, inputs.data(), targets.data(), B, T, 0.0f);
    }
    losses[d] = sum / double(t.eval_batches);
  }
  return losses;
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

LoaderOptions loader_options(const RunConfig& c, size_t vocab_size) {
  const TrainSection& t = c.train;
  LoaderOptions o;
  for (size_t i = 0; i < c.data.prefixes.size(); ++i) {
    o.sources.push_back({.name = c.data.names[i],
                         .prefix = c.data.prefixes[i],
                         .weight = c.data.weights.empty() ? 1.0 : c.data.weights[i]});
  }
  o.split = c.data.split;
  o.seq_length = int32_t(t.seq_length);
  o.seed = uint32_t(t.seed);
  o.global_batch_size = t.global_batch_size;
  o.micro_batch_size = t.micro_batch_size;
  o.train_samples = t.steps * t.global_batch_size;
  o.valid_samples = t.eval_batches * t.micro_batch_size;
  o.vocab_size = vocab_size;
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

TrainSummary run_training(const RunConfig& c, FILE* out) {
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
  const size_t B = size_t(t.micro_batch_size), T = size_t(t.seq_length);
  const int64_t accumulation = t.global_batch_size / t.micro_batch_size;
  Llama model;
  llama_create(model, model_config, B, T);
  AdamW optimizer;
  adamw_create(optimizer,
               {.beta1 = float(c.optimizer.beta1),
                .beta2 = float(c.optimizer.beta2),
                .eps = float(c.optimizer.eps),
                .weight_decay = float(c.optimizer.weight_decay)},
               adamw_ranges(model.layout, size_t(t.freeze_vocab_below)), model.layout.total);
  LrSchedule schedule{.lr = c.optimizer.lr,
                      .min_lr = c.optimizer.min_lr,
                      .warmup_steps = c.schedule.warmup_steps,
                      .decay_steps = c.schedule.decay_steps,
                      .decay = parse_lr_decay(c.schedule.decay)};

  // Where the run starts: the newest intact checkpoint, else HF weights, else a fresh init.
  std::vector<std::string> notes;
  std::unique_ptr<LoadedCheckpoint> checkpoint;
  if (c.checkpoint.resume) checkpoint = load_latest_checkpoint(c.checkpoint.dir, &notes);
  int64_t start_step = 0;
  std::optional<LoaderState> loader_state;
  std::string start_source = "random initialization (seed " + std::to_string(t.seed) + ")";
  if (checkpoint) {
    loader_state = checkpoint_restore(*checkpoint, model, optimizer, start_step);
    start_source = "checkpoint " + checkpoint->dir + " (step " + std::to_string(start_step) + ")";
    checkpoint.reset();  // unmap its files
  } else if (!c.model.init_from.empty()) {
    load_hf_weights(model.layout, model.params, model_config, c.model.init_from);
    start_source = "Hugging Face weights " + c.model.init_from;
  } else {
    llama_init_parameters(model.params, model.layout, model_config.initializer_range,
                          uint64_t(t.seed));
  }
  Loader loader = loader_open(
      loader_options(c, model_config.vocab_size), loader_state ? &*loader_state : nullptr,
      c.checkpoint.dir + "/" + checkpoint_dir_name(start_step) + "/state.json", &notes);

  std::filesystem::create_directories(c.run.dir);
  write_run_files(c, model_config, c.run.dir);
  metrics_drop_after(c.run.dir, start_step);
  MetricsLog metrics(c.run.dir);
  const std::string config_json = model_config_to_json(model_config).dump(2) + "\n";
  const std::string run_toml = read_text_file(c.path);
  CheckpointWriter checkpoints;
  checkpoints.root = c.checkpoint.dir;
  checkpoints.keep = int(c.checkpoint.keep);
  const StopSignals stop_signals;
  Watchdog watchdog(t.watchdog_seconds, stderr);

  // MFU: say once what is divided by what.
  const double flops_per_token = llama_train_flops_per_token(model_config, T);
  double peak = t.peak_flops;
  std::string peak_source = "train.peak_flops from the config";
  if (peak == 0) {
    peak = measure_sgemm_flops();
    peak_source = "measured: 2048^3 sgemm on " + std::to_string(num_threads()) + " threads";
  }
  const size_t tokens_per_step = size_t(t.global_batch_size) * T;
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
    std::fprintf(
        out, "  data    %s (%s): %zu documents, %zu tokens, weight %.3f, %zu validation samples\n",
        data.name.c_str(), data.prefix.c_str(), data.data.document_count(), data.data.token_count(),
        loader.weights[d], data.valid.num_samples());
  }
  std::fprintf(out, "  batch   %zu tokens per step (%lld x %zu; %lld micro-batches of %zu)\n",
               tokens_per_step, (long long)t.global_batch_size, T, (long long)accumulation, B);
  std::fprintf(out, "  memory  %.1f MiB planned (parameters, gradients, activations)\n",
               double(model.arena.bytes()) / (1 << 20));
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

  const bool live = isatty(fileno(out));
  std::vector<int32_t> inputs(B * T), targets(B * T);
  TrainSummary summary;
  auto run_start = Clock::now();
  double train_seconds = 0;
  summary.resumed_from = start_step;
  std::vector<double> recent_losses;  // for spike detection, the last 50
  for (int64_t step = start_step + 1; step <= t.steps; ++step) {
    auto step_start = Clock::now();
    llama_zero_grads(model);
    watchdog_enter(watchdog, "data", step);
    loader_next_batch(loader);
    double loss = 0;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      watchdog_enter(watchdog, "data", step);
      loader_read_micro_batch(loader, micro, inputs.data(), targets.data());
      watchdog_enter(watchdog, "forward", step);
      loss += llama_forward(model, inputs.data(), targets.data(), B, T, 1.0f / float(accumulation));
      watchdog_enter(watchdog, "backward", step);
      llama_backward(model);
    }
    loss /= double(accumulation);
    if (t.freeze_vocab_below > 0)
      zero_frozen_grads(model.layout, model.grads, size_t(t.freeze_vocab_below));
    watchdog_enter(watchdog, "optimizer", step);
    double grad_norm = clip_grad_norm(model.grads, model.layout.total, c.optimizer.grad_clip);
    double lr = learning_rate(schedule, step);
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (!finite && t.nan_policy == "abort")
      fail("step " + std::to_string(step) + ": loss " + std::to_string(loss) + ", gradient norm " +
           std::to_string(grad_norm) + "; stopping (nan_policy = abort; the last checkpoint is " +
           (checkpoints.last_written >= 0 ? checkpoint_dir_name(checkpoints.last_written)
                                          : std::string("none")) +
           ")");
    if (finite) {
      adamw_step(optimizer, model.params, model.grads, float(lr));
    } else {
      std::fprintf(out,
                   "%sstep %lld: loss %g, gradient norm %g: update skipped (nan_policy = skip)\n",
                   isatty(fileno(out)) ? "\r\033[K" : "", (long long)step, loss, grad_norm);
    }
    double step_seconds = seconds_since(step_start);
    train_seconds += step_seconds;

    double tokens_per_second = double(tokens_per_step) / step_seconds;
    double mfu = tokens_per_second * flops_per_token / peak;
    std::vector<Metric> row = {{"loss", loss},
                               {"lr", lr},
                               {"grad_norm", grad_norm},
                               {"tokens_per_s", tokens_per_second},
                               {"mfu", mfu},
                               {"tokens", double(step) * double(tokens_per_step)}};
    bool eval_now = (t.eval_every > 0 && step % t.eval_every == 0) || step == t.steps;
    if (eval_now) {
      watchdog_enter(watchdog, "validation", step);
      std::vector<double> losses = validation_losses(model, loader, t, inputs, targets);
      summary.valid_loss = blended_loss(losses, loader.weights);
      row.push_back({"valid_loss", summary.valid_loss});
      for (size_t d = 0; d < losses.size(); ++d) {
        if (!std::isnan(losses[d]))
          row.push_back({"valid_loss/" + loader.datasets[d].name, losses[d]});
      }
    }
    if (finite && t.spike_factor > 0 && recent_losses.size() >= 10) {
      double mean = 0;
      for (double l : recent_losses) mean += l;
      mean /= double(recent_losses.size());
      if (loss > t.spike_factor * mean) {
        row.push_back({"loss_spike", loss / mean});
        std::fprintf(out, "%sstep %lld: loss spike: %.4f is %.1fx the mean of the last %zu steps\n",
                     isatty(fileno(out)) ? "\r\033[K" : "", (long long)step, loss, loss / mean,
                     recent_losses.size());
      }
    }
    if (finite) {
      if (recent_losses.size() == 50) recent_losses.erase(recent_losses.begin());
      recent_losses.push_back(loss);
    }
    if (!finite) row.push_back({"skipped_step", 1});
    metrics.write(step, row);
    if (step == start_step + 1) summary.first_loss = loss;
    summary.last_loss = loss;
    summary.steps = step;

    const int64_t steps_run = step - start_step;
    double average_tokens_per_second = double(steps_run * int64_t(tokens_per_step)) / train_seconds;
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
    std::fflush(out);

    const int signal = stop_signals.received();
    const bool every = c.checkpoint.every > 0 && step % c.checkpoint.every == 0;
    if (every || step == t.steps || signal != 0) {
      // The last one and the one a signal asks for are written before the process goes on.
      watchdog_enter(watchdog, "checkpoint", step);
      checkpoint_save(checkpoints, step, model, optimizer, loader, config_json, run_toml,
                      c.checkpoint.background && step != t.steps && signal == 0);
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
  summary.tokens_per_second =
      double((summary.steps - start_step) * int64_t(tokens_per_step)) / train_seconds;
  std::fprintf(out, "done: %lld steps in %s, %.0f tokens/s; loss %.4f -> %.4f\n",
               (long long)summary.steps, format_duration(seconds_since(run_start)).c_str(),
               summary.tokens_per_second, summary.first_loss, summary.last_loss);

  for (size_t i = 0; tokenizer && i < t.sample_prompts.size(); ++i) {
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
