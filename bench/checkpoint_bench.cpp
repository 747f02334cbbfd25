// bench/checkpoint_bench.cpp — checkpoint write rate beside the disk's sequential write rate, and
// the stall a checkpoint causes in the training step (bench/README.md, "Checkpoints").
//
// One process, one target directory (--dir), three measurements:
//   1. disk: S bytes (S = the checkpoint's tensor bytes) written with write(2) in 8 MiB blocks to
//      one file, then fsync; median of --repeats.  The best a single writer gets from this disk.
//   2. write_checkpoint (checkpoint/native_checkpoint.h) of the model's parameters and AdamW's
//      exp_avg / exp_avg_sq, called on this thread: NaN/Inf scan, safetensors headers, XXH64 of
//      every file, fsync, rename, `latest`; MB = bytes of the files of the step directory.  Median
//      of --repeats.
//   3. training: the real step (loader batch, zero grads, forward, backward, clip 1.0, AdamW) fed
//   by
//      data/loader.h from a small random indexed dataset written to --dir.  First the median step
//      with no checkpoint; then train/train_checkpoint.h's checkpoint_save, background (the
//      trainer's way) and then foreground, each checkpoint after 2 control steps whose median is
//      the step it is measured against (on a shared machine the load drifts; a baseline taken
//      just before follows it):
//        background: the time checkpoint_save takes on the training thread (the snapshot memcpy,
//          the loader state, starting the writer thread), the extra time of the steps that run
//          while the writer works (a step "overlaps" until ROOT/latest names the new checkpoint
//          after it), and checkpoint_wait afterwards (normally 0).  Their sum is the stall.
//        foreground: checkpoint_save with background=false, the whole write on the training
//          thread, plus the extra time of the step after it.
//      The first checkpoint of each kind allocates the writer's snapshot buffer; it is reported on
//      its own and the medians are taken over the --repeats after it.
// Prints a Markdown table.  MB = 1e6 bytes.
//
//   checkpoint_bench --dir DIR [--threads N] [--repeats N] [--steps N] [--warmup N]
//                    [--vocab V --hidden C --layers L --heads NH --kv-heads NKV
//                     --intermediate F --seq T --batch B] [--seed S] [--pause-ms MS]
// --pause-ms: a pause before each disk / write_checkpoint run (after the previous run's files are
// removed).  On a VM that hands freed memory back to its host (Firecracker's balloon), page-cache
// pages freed a few seconds ago are faulted in again at ~300-400 MB/s, as a run's checkpoint every
// N steps is; with no pause the write reuses the pages just freed.
// The default model is bench/README.md's configuration B (19.5M parameters; a 234 MB checkpoint).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/indexed_dataset.h"
#include "data/loader.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "train/train_checkpoint.h"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds (user + system) of the whole process so far.
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) std::cerr << "checkpoint_bench: " << problem << "\n";
  std::cerr << "usage: checkpoint_bench --dir DIR [--threads N] [--repeats N] [--steps N]\n"
            << "       [--warmup N] [--vocab V] [--hidden C] [--layers L] [--heads NH]\n"
            << "       [--kv-heads NKV] [--intermediate F] [--seq T] [--batch B] [--seed S]\n"
            << "       [--pause-ms MS]\n";
  std::exit(problem.empty() ? 0 : 2);
}

size_t parse_size(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    long long v = std::stoll(value, &used);
    if (used != value.size() || v < 0) throw std::invalid_argument(value);
    return size_t(v);
  } catch (const std::exception&) {
    usage(flag + " expects a non-negative integer, got '" + value + "'");
  }
}

// ---- 1. the disk --------------------------------------------------------------------------------

// Seconds to write `bytes` to `path` in blocks of block.size() with write(2), fsync included.
double disk_write_seconds(const std::string& path, size_t bytes, const std::vector<char>& block) {
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) hibari::fail_file(path, std::strerror(errno));
  for (size_t done = 0; done < bytes;) {
    size_t n = std::min(block.size(), bytes - done);
    ssize_t w = ::write(fd, block.data(), n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) hibari::fail_file(path, std::strerror(errno));
    done += size_t(w);
  }
  if (::fsync(fd) != 0) hibari::fail_file(path, std::strerror(errno));
  ::close(fd);
  double s = seconds_since(t0);
  fs::remove(path);  // untimed
  return s;
}

// ---- 2. write_checkpoint ------------------------------------------------------------------------

std::vector<int64_t> shape_of(const hibari::ParamInfo& p) {
  if (p.ndim == 1) return {int64_t(p.shape[0])};
  return {int64_t(p.shape[0]), int64_t(p.shape[1])};
}

// The tensors checkpoint_save writes, pointing at the live model and optimizer (no snapshot).
hibari::CheckpointContent model_content(const hibari::Llama& model, const hibari::AdamW& opt,
                                        int64_t step, const std::string& config_json) {
  hibari::CheckpointContent c;
  c.step = step;
  auto& params = c.tensor_files["model"];
  auto& moments = c.tensor_files["optimizer"];
  for (const hibari::ParamInfo& p : model.layout.params) {
    params.push_back({p.name, shape_of(p), model.params + p.offset});
    moments.push_back({"exp_avg." + p.name, shape_of(p), opt.m.data() + p.offset});
    moments.push_back({"exp_avg_sq." + p.name, shape_of(p), opt.v.data() + p.offset});
  }
  c.text_files = {{"config.json", config_json}};
  return c;
}

size_t directory_bytes(const fs::path& dir) {
  size_t total = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) total += size_t(e.file_size());
  return total;
}

// ---- 3. training --------------------------------------------------------------------------------

// A random dataset of `documents` documents of 4096 tokens below `vocab`, at `prefix`.
void write_dataset(const std::string& prefix, size_t vocab, size_t documents, uint64_t seed) {
  hibari::IndexedDatasetWriter writer(prefix, hibari::token_dtype_for_vocab(vocab));
  std::vector<int32_t> tokens(4096);
  for (size_t d = 0; d < documents; ++d) {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = int32_t(hibari::random_below(seed, uint32_t(d), i, uint32_t(vocab)));
    writer.add_document(tokens.data(), tokens.size());
  }
  writer.finish();
}

struct Training {
  hibari::Llama& model;
  hibari::AdamW& opt;
  hibari::Loader& loader;
  size_t B, T;
  std::vector<int32_t> inputs, targets;
  int64_t step = 0;  // optimizer steps taken
};

// One training step as the trainer takes it (one micro-batch per step); returns its seconds.
double train_step(Training& t) {
  auto t0 = Clock::now();
  hibari::loader_next_batch(t.loader);
  hibari::loader_read_micro_batch(t.loader, 0, t.inputs.data(), t.targets.data());
  hibari::llama_zero_grads(t.model);
  hibari::llama_forward(t.model, t.inputs.data(), t.targets.data(), t.B, t.T, 1.0f);
  hibari::llama_backward(t.model);
  hibari::clip_grad_norm(t.model.grads, t.model.layout.total, 1.0);
  hibari::adamw_step(t.opt, t.model.params, t.model.grads, 3e-4f);
  ++t.step;
  return seconds_since(t0);
}

std::string read_latest(const fs::path& root) {
  std::ifstream in(root / "latest");
  std::string name;
  std::getline(in, name);
  return name;
}

// Steps taken right before a checkpoint, the baseline its stall is measured against: the machine
// may be shared, and a local baseline follows the load better than one taken minutes earlier.
double control_step_s(Training& t, size_t n) {
  std::vector<double> s;
  for (size_t i = 0; i < n; ++i) s.push_back(train_step(t));
  return median(s);
}

// One background checkpoint: what it costs the training thread.
struct BackgroundStall {
  double control_s = 0;   // median of the control steps just before
  double save_s = 0;      // checkpoint_save on the training thread
  size_t overlapped = 0;  // steps run while the writer worked
  double overlap_s = 0;   // their total time
  double wait_s = 0;      // checkpoint_wait after them
  double extra_s() const { return overlap_s - double(overlapped) * control_s; }
  double stall_s() const { return save_s + extra_s() + wait_s; }
};

BackgroundStall background_checkpoint(Training& t, hibari::CheckpointWriter& w, size_t control,
                                      const std::string& config_json, const std::string& run_toml) {
  BackgroundStall r;
  r.control_s = control_step_s(t, control);
  auto t0 = Clock::now();
  hibari::checkpoint_save(w, t.step, t.model, t.opt, t.loader, config_json, run_toml, true);
  r.save_s = seconds_since(t0);
  const std::string name = hibari::checkpoint_dir_name(t.step);
  // `latest` moves once the step directory is complete; only removing old ones (keep) follows.
  while (read_latest(w.root) != name && r.overlapped < 1000) {
    r.overlap_s += train_step(t);
    ++r.overlapped;
  }
  std::string problem;
  t0 = Clock::now();
  hibari::checkpoint_wait(w, problem);
  r.wait_s = seconds_since(t0);
  if (!problem.empty()) hibari::fail("background checkpoint failed: " + problem);
  return r;
}

// One foreground checkpoint: the save and the step after it, against control steps just before.
struct ForegroundStall {
  double control_s = 0, save_s = 0, next_s = 0;
  double stall_s() const { return save_s + (next_s - control_s); }
};

ForegroundStall foreground_checkpoint(Training& t, hibari::CheckpointWriter& w, size_t control,
                                      const std::string& config_json, const std::string& run_toml) {
  ForegroundStall r;
  r.control_s = control_step_s(t, control);
  auto t0 = Clock::now();
  hibari::checkpoint_save(w, t.step, t.model, t.opt, t.loader, config_json, run_toml, false);
  r.save_s = seconds_since(t0);
  r.next_s = train_step(t);
  std::string problem;
  hibari::checkpoint_wait(w, problem);
  if (!problem.empty()) hibari::fail("foreground checkpoint failed: " + problem);
  return r;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

int run(int argc, char** argv) {
  std::string dir;
  size_t vocab = 32000, hidden = 256, layers = 4, heads = 4, kv_heads = 2, intermediate = 768;
  size_t seq = 256, batch = 8;
  size_t threads = 2, repeats = 3, steps = 6, warmup = 2, seed = 1234, pause_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("");
    if (i + 1 >= argc) usage(flag + " expects a value");
    std::string value = argv[++i];
    if (flag == "--dir") {
      dir = value;
      continue;
    }
    size_t* field = flag == "--vocab"          ? &vocab
                    : flag == "--hidden"       ? &hidden
                    : flag == "--layers"       ? &layers
                    : flag == "--heads"        ? &heads
                    : flag == "--kv-heads"     ? &kv_heads
                    : flag == "--intermediate" ? &intermediate
                    : flag == "--seq"          ? &seq
                    : flag == "--batch"        ? &batch
                    : flag == "--threads"      ? &threads
                    : flag == "--repeats"      ? &repeats
                    : flag == "--steps"        ? &steps
                    : flag == "--warmup"       ? &warmup
                    : flag == "--seed"         ? &seed
                    : flag == "--pause-ms"     ? &pause_ms
                                               : nullptr;
    if (!field) usage("unknown flag " + flag);
    *field = parse_size(flag, value);
  }
  if (dir.empty()) usage("--dir is required (a directory on the disk to measure)");
  if (repeats == 0 || steps == 0) usage("--repeats and --steps must be at least 1");
  if (heads == 0 || kv_heads == 0 || hidden % heads || heads % kv_heads)
    usage("hidden must divide by heads, and heads by kv-heads");

  hibari::ModelConfig config;
  config.vocab_size = vocab;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.num_key_value_heads = kv_heads;
  config.head_dim = hidden / heads;
  config.max_position_embeddings = seq;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.initializer_range = 0.02;
  config.tie_word_embeddings = false;
  const std::string config_json = hibari::model_config_to_json(config).dump(2) + "\n";
  const std::string run_toml =
      "# checkpoint_bench\n[train]\nmicro_batch_size = " + std::to_string(batch) +
      "\nseq_length = " + std::to_string(seq) + "\n";

  hibari::set_num_threads(int(threads));
  const fs::path work = fs::path(dir) / ("checkpoint_bench." + std::to_string(::getpid()));
  fs::create_directories(work);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{work};

  hibari::Llama model;
  hibari::llama_create(model, config, batch, seq);
  hibari::llama_init_parameters(model.params, model.layout, config.initializer_range, seed);
  std::vector<hibari::ParamRange> ranges;
  for (const hibari::ParamInfo& p : model.layout.params)
    ranges.push_back({p.offset, p.numel, p.weight_decay});
  hibari::AdamW opt;
  hibari::adamw_create(opt,
                       hibari::AdamWConfig{.beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.1f},
                       std::move(ranges), model.layout.total);

  const std::string prefix = (work / "data").string();
  write_dataset(prefix, vocab, 64, seed);
  hibari::LoaderOptions lo;
  lo.sources = {{"bench", prefix, 1.0}};
  lo.seq_length = int32_t(seq);
  lo.seed = uint32_t(seed);
  lo.global_batch_size = int64_t(batch);
  lo.micro_batch_size = int64_t(batch);
  lo.train_samples = int64_t(batch) * 1000;
  lo.vocab_size = vocab;
  lo.cache_dir = (work / "cache").string();
  hibari::Loader loader = hibari::loader_open(lo);
  Training t{model,
             opt,
             loader,
             batch,
             seq,
             std::vector<int32_t>(batch * seq),
             std::vector<int32_t>(batch * seq)};

  std::cerr << "checkpoint_bench: " << hibari::parameter_count(config) << " parameters, " << warmup
            << " warm-up steps ...\n";
  for (size_t s = 0; s < warmup; ++s) train_step(t);  // also gives AdamW's moments real values

  // 1. The disk, S = the checkpoint's tensor bytes.
  const size_t tensor_bytes = 3 * model.layout.total * sizeof(float);
  std::vector<char> block(size_t(8) << 20);
  for (size_t i = 0; i < block.size(); ++i) block[i] = char(hibari::random_below(seed, 7, i, 256));
  // CPU seconds are the process's during the call: the training threads are idle then, so it is
  // the writer's own CPU time, which a background write takes from training on a busy machine.
  std::vector<double> disk_s, disk_cpu;
  for (size_t r = 0; r < repeats; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    const double cpu0 = process_cpu_s();
    disk_s.push_back(disk_write_seconds((work / "disk_test").string(), tensor_bytes, block));
    disk_cpu.push_back(process_cpu_s() - cpu0);
  }

  // 2. write_checkpoint, the live model as content; each run into an empty root.
  std::vector<double> write_s, write_cpu;
  size_t checkpoint_bytes = 0;
  for (size_t r = 0; r < repeats; ++r) {
    const fs::path root = work / "write";
    hibari::CheckpointContent c = model_content(model, opt, t.step, config_json);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    const double cpu0 = process_cpu_s();
    auto t0 = Clock::now();
    hibari::write_checkpoint(root.string(), c, 0);
    write_s.push_back(seconds_since(t0));
    write_cpu.push_back(process_cpu_s() - cpu0);
    checkpoint_bytes = directory_bytes(root / hibari::checkpoint_dir_name(t.step));
    fs::remove_all(root);
  }

  // 3. Training: steps without checkpoints, then background and foreground checkpoints.
  std::cerr << "checkpoint_bench: " << steps << " steps without checkpoints ...\n";
  std::vector<double> base_steps;
  for (size_t s = 0; s < steps; ++s) base_steps.push_back(train_step(t));
  const double step_s = median(base_steps);

  std::cerr << "checkpoint_bench: " << repeats + 1 << " background checkpoints ...\n";
  const size_t control = 2;
  hibari::CheckpointWriter bw;
  bw.root = (work / "train_bg").string();
  bw.keep = 2;
  std::vector<BackgroundStall> bg;
  for (size_t r = 0; r <= repeats; ++r)
    bg.push_back(background_checkpoint(t, bw, control, config_json, run_toml));

  std::cerr << "checkpoint_bench: " << repeats + 1 << " foreground checkpoints ...\n";
  hibari::CheckpointWriter fw;
  fw.root = (work / "train_fg").string();
  fw.keep = 2;
  std::vector<ForegroundStall> fg;
  for (size_t r = 0; r <= repeats; ++r)
    fg.push_back(foreground_checkpoint(t, fw, control, config_json, run_toml));

  // ---- The table: write rates; then per checkpoint, medians over all but the first of each kind
  // (the first allocates the writer's snapshot buffer, once per run).
  const double mb = double(checkpoint_bytes) / 1e6, disk_mb = double(tensor_bytes) / 1e6;
  const double disk_med = median(disk_s), write_med = median(write_s);
  std::vector<double> b_control, b_save, b_n, b_slow, b_extra, b_wait, b_stall, b_pct;
  for (size_t r = 1; r < bg.size(); ++r) {
    const BackgroundStall& x = bg[r];
    b_control.push_back(x.control_s);
    b_save.push_back(x.save_s);
    b_n.push_back(double(x.overlapped));
    b_slow.push_back(x.overlapped ? x.extra_s() / (double(x.overlapped) * x.control_s) : 0.0);
    b_extra.push_back(x.extra_s());
    b_wait.push_back(x.wait_s);
    b_stall.push_back(x.stall_s());
    b_pct.push_back(x.stall_s() / x.control_s);
  }
  std::vector<double> f_control, f_save, f_next, f_stall, f_pct;
  for (size_t r = 1; r < fg.size(); ++r) {
    f_control.push_back(fg[r].control_s);
    f_save.push_back(fg[r].save_s);
    f_next.push_back(fg[r].next_s - fg[r].control_s);
    f_stall.push_back(fg[r].stall_s());
    f_pct.push_back(fg[r].stall_s() / fg[r].control_s);
  }
  // Percentages of a step: each component over the median control step; the stall rows are the
  // median of each checkpoint's stall / its own control step.
  const double ref_s = median(b_control);
  auto pct_of = [](double s, double step) { return fmt("%.1f%%", 100 * s / step); };
  auto ms = [](double s) { return fmt("%.0f", 1e3 * s); };

  std::cout << "checkpoint_bench: " << hibari::parameter_count(config) / 1e6
            << "M parameters (vocab " << vocab << ", d " << hidden << ", " << layers
            << " layers, ffn " << intermediate << "), B=" << batch << " T=" << seq << ", "
            << hibari::num_threads() << " threads, dir " << fs::absolute(dir).string() << "\n\n";
  std::cout << "| write (pause " << pause_ms << " ms before each) | MB | s (median of " << repeats
            << ") | MB/s | of disk | CPU s |\n"
            << "|---|---:|---:|---:|---:|---:|\n"
            << "| disk: write(2), 8 MiB blocks, fsync | " << fmt("%.1f", disk_mb) << " | "
            << fmt("%.3f", disk_med) << " | " << fmt("%.0f", disk_mb / disk_med) << " | 100% | "
            << fmt("%.3f", median(disk_cpu)) << " |\n"
            << "| hibari write_checkpoint (NaN scan, XXH64, fsync, rename) | " << fmt("%.1f", mb)
            << " | " << fmt("%.3f", write_med) << " | " << fmt("%.0f", mb / write_med) << " | "
            << fmt("%.0f%%", 100 * (mb / write_med) / (disk_mb / disk_med)) << " | "
            << fmt("%.3f", median(write_cpu)) << " |\n\n";

  std::cout << "| training step (medians of " << repeats << " checkpoints) | ms | % of a step |\n"
            << "|---|---:|---:|\n"
            << "| step, no checkpoint (median of " << steps << " in a row) | " << ms(step_s)
            << " | |\n"
            << "| step, the 2 control steps before each checkpoint | " << ms(ref_s) << " | 100% |\n"
            << "| background: checkpoint_save on the training thread (snapshot + thread start) | "
            << ms(median(b_save)) << " | " << pct_of(median(b_save), ref_s) << " |\n"
            << "| background: extra time of the steps overlapping the write ("
            << fmt("%.0f", median(b_n)) << " step(s), " << fmt("%+.1f%%", 100 * median(b_slow))
            << " each) | " << ms(median(b_extra)) << " | " << pct_of(median(b_extra), ref_s)
            << " |\n"
            << "| background: checkpoint_wait after them | " << ms(median(b_wait)) << " | "
            << pct_of(median(b_wait), ref_s) << " |\n"
            << "| **background: stall per checkpoint** | **" << ms(median(b_stall)) << "** | **"
            << fmt("%.1f%%", 100 * median(b_pct)) << "** |\n"
            << "| foreground: checkpoint_save, background=false | " << ms(median(f_save)) << " | "
            << pct_of(median(f_save), median(f_control)) << " |\n"
            << "| foreground: extra time of the step after it | " << ms(median(f_next)) << " | "
            << pct_of(median(f_next), median(f_control)) << " |\n"
            << "| **foreground: stall per checkpoint** | **" << ms(median(f_stall)) << "** | **"
            << fmt("%.1f%%", 100 * median(f_pct)) << "** |\n\n";

  std::cout << "steps in a row (s):";
  for (double s : base_steps) std::cout << " " << fmt("%.3f", s);
  std::cout << "\nbackground checkpoints (#0 allocates the snapshot; not in the medians):\n";
  for (size_t r = 0; r < bg.size(); ++r)
    std::cout << "  " << r << ": control " << ms(bg[r].control_s) << " ms, save "
              << ms(bg[r].save_s) << " ms, " << bg[r].overlapped << " overlapped step(s) "
              << ms(bg[r].overlap_s) << " ms, wait " << ms(bg[r].wait_s) << " ms, stall "
              << ms(bg[r].stall_s()) << " ms (" << pct_of(bg[r].stall_s(), bg[r].control_s)
              << ")\n";
  std::cout << "foreground checkpoints (#0 allocates the snapshot; not in the medians):\n";
  for (size_t r = 0; r < fg.size(); ++r)
    std::cout << "  " << r << ": control " << ms(fg[r].control_s) << " ms, save "
              << ms(fg[r].save_s) << " ms, next step " << ms(fg[r].next_s) << " ms, stall "
              << ms(fg[r].stall_s()) << " ms (" << pct_of(fg[r].stall_s(), fg[r].control_s)
              << ")\n";
  std::cout << "disk runs (s):";
  for (double s : disk_s) std::cout << " " << fmt("%.3f", s);
  std::cout << "\nwrite_checkpoint runs (s):";
  for (double s : write_s) std::cout << " " << fmt("%.3f", s);
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_bench: " << e.what() << "\n";
    return 1;
  }
}
