// bench/eval_bench.cpp — hibari's side of bench/eval_run.sh: log-likelihood scoring tokens/s of
// hibari eval's scorer (eval/scorer.h, the KV-cached decoder) on a random fp32 Llama of the
// generate bench's presets, over multiple-choice-shaped requests.  tests/reference/eval_torch.py
// `bench` is the PyTorch side, on the same model directory, requests and threads.
//
//   eval_bench DIR PRESET DOCS CONTEXT BATCH
// writes DIR/model (a Hugging Face directory: preset A or B of bench/inference_presets.h, weights
// llama_init_parameters(std 0.02, seed 1), the eval examples' tokenizer) and DIR/requests.json
// (DOCS documents, each a context of CONTEXT/2 .. CONTEXT random tokens with 4 choices of 1 .. 8
// tokens, as JCommonsenseQA-style tasks send), then times score_loglikelihood at BATCH sequences
// (best of 3 after a warm-up) and prints one JSON line.  Tokens counted: context + continuation - 1
// per request (the positions a forward over the whole request computes), the count the PyTorch
// side uses; hibari computes a question's shared context once, so its rate is the requests'
// tokens per second, not the rows it ran.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/inference_presets.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/scorer.h"
#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"

namespace {

namespace fs = std::filesystem;
using hibari::ModelConfig;

void write_model(const fs::path& dir, const std::string& name) {
  const ModelConfig c = hibari::bench::inference_preset(name);
  const hibari::ParameterLayout layout = hibari::llama_parameter_layout(c);
  std::vector<float> params(layout.total);
  hibari::llama_init_parameters(params.data(), layout, 0.02, 1);
  hibari::save_hf_weights(layout, params.data(), c, dir.string(), {});
  const fs::path tok = fs::path(HIBARI_SOURCE_DIR) / "examples/eval/tiny_model";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(tok / f, dir / f, fs::copy_options::overwrite_existing);
}

std::vector<hibari::LoglikelihoodRequest> make_requests(size_t docs, size_t context,
                                                        uint32_t vocab) {
  std::vector<hibari::LoglikelihoodRequest> reqs;
  uint64_t n = 0;
  for (size_t d = 0; d < docs; ++d) {
    const size_t len = context / 2 + hibari::random_below(3, 0, n++, uint32_t(context / 2 + 1));
    std::vector<int32_t> ctx = {1};  // BOS
    for (size_t t = 1; t < len; ++t) ctx.push_back(int32_t(hibari::random_below(3, 1, n++, vocab)));
    for (int choice = 0; choice < 4; ++choice) {
      hibari::LoglikelihoodRequest r;
      r.context = ctx;
      const size_t k = 1 + hibari::random_below(3, 2, n++, 8);
      for (size_t t = 0; t < k; ++t)
        r.continuation.push_back(int32_t(hibari::random_below(3, 1, n++, vocab)));
      reqs.push_back(std::move(r));
    }
  }
  return reqs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: eval_bench DIR A|B DOCS CONTEXT BATCH\n");
    return 2;
  }
  const fs::path dir = argv[1];
  const std::string name = argv[2];
  const size_t docs = std::strtoul(argv[3], nullptr, 10),
               context = std::strtoul(argv[4], nullptr, 10),
               batch = std::strtoul(argv[5], nullptr, 10);
  fs::remove_all(dir);
  fs::create_directories(dir / "model");
  write_model(dir / "model", name);
  const std::vector<hibari::LoglikelihoodRequest> reqs =
      make_requests(docs, context, uint32_t(hibari::bench::inference_preset(name).vocab_size));
  nlohmann::json j = nlohmann::json::array();
  size_t tokens = 0;
  for (const hibari::LoglikelihoodRequest& r : reqs) {
    j.push_back({{"context", r.context}, {"continuation", r.continuation}});
    tokens += r.context.size() + r.continuation.size() - 1;
  }
  std::ofstream(dir / "requests.json") << j.dump();

  hibari::EvalModel m;
  hibari::load_eval_model(m, (dir / "model").string(), "", batch, 2048);
  hibari::score_loglikelihood(m, reqs);  // warm-up
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    hibari::score_loglikelihood(m, reqs);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep == 0 || s < best) best = s;
  }
  std::printf(
      "{\"side\": \"hibari\", \"preset\": \"%s\", \"requests\": %zu, \"tokens\": %zu, \"batch\": "
      "%zu, \"threads\": %d, \"score_tokens_per_s\": %.1f}\n",
      name.c_str(), reqs.size(), tokens, batch, hibari::num_threads(), double(tokens) / best);
  return 0;
}
