// bench/train_step_bench.cpp — throughput of one hibari training step, the C++ side of
// bench/run.sh (bench/torch_peer.py is the PyTorch side; bench/README.md says what is measured).
//
// A step is what the trainer does per micro-batch: zero the gradients, forward + backward over
// B x T random tokens (targets = inputs shifted by one), global-norm clip at 1.0, one AdamW step.
// After `--warmup` steps, `--steps` steps are timed one by one; the median gives tokens/s.  Then
// the sgemm rate of this process on the same threads is measured (hibari::measure_sgemm_flops), and
// MFU = tokens/s * llama_train_flops_per_token / sgemm FLOP/s.  Peak RSS is getrusage's ru_maxrss.
// Prints one line of JSON.
//
//   train_step_bench --config A|B [--steps N] [--warmup N] [--threads N]
//                    [--vocab V --hidden C --layers L --heads NH --kv-heads NKV
//                     --intermediate F --seq T --batch B] [--sgemm-n N] [--seed S]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "train/peak_flops.h"

namespace {

struct BenchConfig {
  std::string name;
  size_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0;
  size_t seq = 0, batch = 0;
};

BenchConfig preset(const std::string& name) {
  if (name == "A") return {"A", 32000, 512, 8, 8, 4, 1536, 512, 8};
  if (name == "B") return {"B", 32000, 256, 4, 4, 2, 768, 256, 8};
  throw std::runtime_error("unknown --config '" + name + "' (A or B)");
}

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) std::cerr << "train_step_bench: " << problem << "\n";
  std::cerr << "usage: train_step_bench --config A|B [--steps N] [--warmup N] [--threads N]\n"
            << "       [--vocab V] [--hidden C] [--layers L] [--heads NH] [--kv-heads NKV]\n"
            << "       [--intermediate F] [--seq T] [--batch B] [--sgemm-n N] [--seed S]\n";
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

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run(int argc, char** argv) {
  BenchConfig bc = preset("B");
  size_t steps = 0, warmup = 2, threads = 2, sgemm_n = 2048, seed = 1234;
  bool steps_given = false;
  // Size flags may follow --config to override it; --config resets every size.
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("");
    if (i + 1 >= argc) usage(flag + " expects a value");
    std::string value = argv[++i];
    if (flag == "--config") {
      try {
        bc = preset(value);
      } catch (const std::exception& e) {
        usage(e.what());
      }
    } else if (flag == "--steps") {
      steps = parse_size(flag, value);
      steps_given = true;
    } else if (flag == "--warmup") {
      warmup = parse_size(flag, value);
    } else if (flag == "--threads") {
      threads = parse_size(flag, value);
    } else if (flag == "--sgemm-n") {
      sgemm_n = parse_size(flag, value);
    } else if (flag == "--seed") {
      seed = parse_size(flag, value);
    } else {
      size_t* field = flag == "--vocab"          ? &bc.vocab
                      : flag == "--hidden"       ? &bc.hidden
                      : flag == "--layers"       ? &bc.layers
                      : flag == "--heads"        ? &bc.heads
                      : flag == "--kv-heads"     ? &bc.kv_heads
                      : flag == "--intermediate" ? &bc.intermediate
                      : flag == "--seq"          ? &bc.seq
                      : flag == "--batch"        ? &bc.batch
                                                 : nullptr;
      if (!field) usage("unknown flag " + flag);
      *field = parse_size(flag, value);
      bc.name = "custom";
    }
  }
  if (!steps_given) steps = bc.name == "A" ? 5 : 10;
  if (steps == 0) usage("--steps must be at least 1");
  if (bc.heads == 0 || bc.kv_heads == 0 || bc.hidden % bc.heads || bc.heads % bc.kv_heads)
    usage("hidden must divide by heads, and heads by kv-heads");

  hibari::ModelConfig config;
  config.vocab_size = bc.vocab;
  config.hidden_size = bc.hidden;
  config.intermediate_size = bc.intermediate;
  config.num_hidden_layers = bc.layers;
  config.num_attention_heads = bc.heads;
  config.num_key_value_heads = bc.kv_heads;
  config.head_dim = bc.hidden / bc.heads;
  config.max_position_embeddings = bc.seq;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.initializer_range = 0.02;
  config.tie_word_embeddings = false;

  hibari::set_num_threads(int(threads));
  const size_t B = bc.batch, T = bc.seq, N = B * T;

  hibari::Llama model;
  hibari::llama_create(model, config, B, T);
  hibari::llama_init_parameters(model.params, model.layout, config.initializer_range, seed);
  std::vector<hibari::ParamRange> ranges;
  for (const hibari::ParamInfo& p : model.layout.params)
    ranges.push_back({p.offset, p.numel, p.weight_decay});
  hibari::AdamW opt;
  hibari::adamw_create(opt,
                       hibari::AdamWConfig{.beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.1f},
                       std::move(ranges), model.layout.total);

  // Random tokens, a fresh batch per step, drawn before the clock starts: (B, T+1) ids per step,
  // inputs = [:, :-1], targets = [:, 1:].
  const size_t total_steps = warmup + steps;
  std::vector<int32_t> inputs(total_steps * N), targets(total_steps * N);
  for (size_t s = 0; s < total_steps; ++s) {
    for (size_t b = 0; b < B; ++b) {
      std::vector<int32_t> row(T + 1);
      for (size_t t = 0; t <= T; ++t)
        row[t] = int32_t(
            hibari::random_below(seed, uint32_t(s), b * (T + 1) + t, uint32_t(config.vocab_size)));
      std::copy(row.begin(), row.end() - 1, inputs.begin() + (s * B + b) * T);
      std::copy(row.begin() + 1, row.end(), targets.begin() + (s * B + b) * T);
    }
  }

  std::vector<double> times;
  float loss_first = 0, loss_last = 0;
  double norm_last = 0;
  for (size_t s = 0; s < total_steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    hibari::llama_zero_grads(model);
    float loss =
        hibari::llama_forward(model, inputs.data() + s * N, targets.data() + s * N, B, T, 1.0f);
    hibari::llama_backward(model);
    norm_last = hibari::clip_grad_norm(model.grads, model.layout.total, 1.0);
    hibari::adamw_step(opt, model.params, model.grads, 3e-4f);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s == 0) loss_first = loss;
    loss_last = loss;
    if (s >= warmup) times.push_back(sec);
  }
  // Peak RSS of the training itself, read before the sgemm measurement allocates its matrices.
  const double rss = peak_rss_mb();

  const double step_s = median(times);
  const double tokens_per_s = double(N) / step_s;
  const double flops_per_token = hibari::llama_train_flops_per_token(config, T);
  const double sgemm = hibari::measure_sgemm_flops(sgemm_n, 3);
  const double mfu = tokens_per_s * flops_per_token / sgemm;

  nlohmann::ordered_json j;
  j["impl"] = "hibari";
  j["config"] = bc.name;
  j["vocab"] = bc.vocab;
  j["hidden"] = bc.hidden;
  j["layers"] = bc.layers;
  j["heads"] = bc.heads;
  j["kv_heads"] = bc.kv_heads;
  j["intermediate"] = bc.intermediate;
  j["seq"] = T;
  j["batch"] = B;
  j["threads"] = hibari::num_threads();
  j["warmup"] = warmup;
  j["steps"] = steps;
  j["parameters"] = hibari::parameter_count(config);
  j["tokens_per_s"] = tokens_per_s;
  j["step_s_median"] = step_s;
  j["step_s_min"] = *std::min_element(times.begin(), times.end());
  j["step_s_max"] = *std::max_element(times.begin(), times.end());
  j["peak_rss_mb"] = rss;
  j["sgemm_gflops"] = sgemm / 1e9;
  j["flops_per_token"] = flops_per_token;
  j["mfu"] = mfu;
  j["loss_first"] = loss_first;
  j["loss_last"] = loss_last;
  j["grad_norm_last"] = norm_last;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "train_step_bench: " << e.what() << "\n";
    return 1;
  }
}
