// bench/generate_bench.cpp — hibari's side of bench/generate_run.sh: KV-cached greedy decoding and
// prefill scoring (sequence_logprobs) of a random fp32 Llama, timed.  bench/generate_torch.py is
// the PyTorch side with the same model shape, batch, lengths and threads.
//
//   generate_bench PRESET BATCH PROMPT NEW [blas]
// prints one JSON line: decode tokens/s (new tokens after the first / decode time), prefill
// tokens/s (generation's prompt processing) and score tokens/s (sequence_logprobs of
// BATCH x (PROMPT + NEW) tokens).  `blas`: the projections through OpenBLAS (decoder.h).
// score_mfu = score tokens/s x forward FLOPs per token (llama_train_flops_per_token / 3 at
// PROMPT + NEW) / the faster of OpenBLAS's sgemm and the rowwise GEMM on these threads
// (gemm_gflops; train/peak_flops.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/inference_presets.h"
#include "core/rng.h"
#include "core/threads.h"
#include "infer/decoder.h"
#include "infer/generate.h"
#include "model/llama.h"
#include "model/params.h"
#include "train/peak_flops.h"

namespace {

using hibari::ModelConfig;

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: generate_bench A|B BATCH PROMPT NEW [blas]\n");
    return 2;
  }
  const ModelConfig c = hibari::bench::inference_preset(argv[1]);
  const size_t B = std::strtoul(argv[2], nullptr, 10), P = std::strtoul(argv[3], nullptr, 10),
               NEW = std::strtoul(argv[4], nullptr, 10);
  const bool blas = argc > 5 && std::strcmp(argv[5], "blas") == 0;
  const hibari::ParameterLayout layout = hibari::llama_parameter_layout(c);
  std::vector<float> params(layout.total);
  hibari::llama_init_parameters(params.data(), layout, 0.02, 1);
  const hibari::LlamaWeights w = hibari::llama_weights(c, layout, params.data());

  std::vector<std::vector<int32_t>> prompts(B), scored(B);
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < P + NEW; ++t) {
      const int32_t id = int32_t(hibari::random_below(7, uint32_t(b), t, uint32_t(c.vocab_size)));
      if (t < P) prompts[b].push_back(id);
      scored[b].push_back(id);
    }
  hibari::Decoder d;
  hibari::decoder_create(
      d, c, w, {.max_batch = B, .max_seq = P + NEW, .max_tokens = 512, .blas_gemm = blas});
  hibari::GenerateOptions o;
  o.max_new_tokens = NEW;
  hibari::generate(d, prompts, o);  // warm-up
  hibari::GenerateStats best;
  for (int rep = 0; rep < 3; ++rep) {
    hibari::GenerateStats s;
    hibari::generate(d, prompts, o, {}, &s);
    if (rep == 0 || s.decode_seconds < best.decode_seconds) best.decode_seconds = s.decode_seconds;
    if (rep == 0 || s.prefill_seconds < best.prefill_seconds)
      best.prefill_seconds = s.prefill_seconds;
  }
  double score_seconds = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    hibari::sequence_logprobs(d, scored);
    const double s = seconds(t0);
    if (rep == 0 || s < score_seconds) score_seconds = s;
  }
  const double score_tokens_per_s = double(B * (P + NEW)) / score_seconds;
  const double gemm = std::max(hibari::measure_sgemm_flops(), hibari::measure_rowwise_flops());
  const double score_mfu =
      score_tokens_per_s * hibari::llama_train_flops_per_token(c, P + NEW) / 3.0 / gemm;
  std::printf(
      "{\"side\": \"hibari%s\", \"batch\": %zu, \"prompt\": %zu, \"new\": %zu, \"threads\": %d, "
      "\"decode_tokens_per_s\": %.1f, \"prefill_tokens_per_s\": %.1f, "
      "\"score_tokens_per_s\": %.1f, \"gemm_gflops\": %.1f, \"score_mfu\": %.3f}\n",
      blas ? "-blas" : "", B, P, NEW, hibari::num_threads(),
      double(B * (NEW - 1)) / best.decode_seconds, double(B * P) / best.prefill_seconds,
      score_tokens_per_s, gemm / 1e9, score_mfu);
  return 0;
}
