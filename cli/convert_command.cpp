// cli/convert_command.cpp — `hibari convert`: a Hugging Face model directory or a hibari checkpoint
// read into hibari's flat parameter buffer and written back out (as Hugging Face, for now),
// optionally with another
// dtype, shard size or a grown vocabulary.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "cli/commands.h"
#include "core/error.h"
#include "model/config.h"
#include "model/params.h"
#include "model/hf_weights.h"

namespace hibari::cli {

namespace {

struct ConvertArgs {
  std::string from, to = "hf", output, dtype = "f32", max_shard_size = "5GB";
  size_t resize_vocab = 0;
  uint64_t resize_seed = 0;
};

void run_convert(const ConvertArgs& args) {
  if (args.to != "hf") fail("--to " + args.to + ": only 'hf' is supported so far");
  HfSaveOptions options;
  if (args.dtype == "f32") {
    options.dtype = StDtype::F32;
  } else if (args.dtype == "bf16") {
    options.dtype = StDtype::BF16;
  } else {
    fail("--dtype " + args.dtype + ": expected f32 or bf16");
  }
  options.max_shard_bytes = parse_byte_size(args.max_shard_size, "--max-shard-size");

  // A native checkpoint (its directory, or a checkpoint root whose newest intact one is taken)
  // holds config.json and model.safetensors under HF names; it is verified against its manifest
  // first.
  std::string from = args.from;
  std::unique_ptr<LoadedCheckpoint> checkpoint;
  if (std::filesystem::exists(std::filesystem::path(from) / "manifest.json")) {
    checkpoint = std::make_unique<LoadedCheckpoint>(load_checkpoint(from));
  } else if (std::filesystem::exists(std::filesystem::path(from) / "latest")) {
    std::vector<std::string> notes;
    checkpoint = load_latest_checkpoint(from, &notes);
    for (const std::string& note : notes) std::fprintf(stderr, "hibari: %s\n", note.c_str());
    if (checkpoint) from = checkpoint->dir;
  }
  checkpoint.reset();
  const std::string config_path = (std::filesystem::path(from) / "config.json").string();
  if (!std::filesystem::exists(config_path)) {
    fail_file(config_path, "missing (not a Hugging Face model directory?)");
  }
  ModelConfig config = load_model_config(config_path);
  ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params(layout.total);
  load_hf_weights(layout, params.data(), config, from);

  if (args.resize_vocab > 0 && args.resize_vocab != config.vocab_size) {
    std::vector<float> grown;
    config =
        resize_vocab(config, layout, params.data(), args.resize_vocab, args.resize_seed, grown);
    layout = llama_parameter_layout(config);
    params.swap(grown);
  }
  save_hf_weights(layout, params.data(), config, args.output, options);
  std::printf("wrote %s (%zu parameters, vocab_size %zu, %s)\n", args.output.c_str(), layout.total,
              config.vocab_size, st_dtype_name(options.dtype));
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  ConvertArgs& a = *args;
  CLI::App* cmd = app.add_subcommand(
      "convert", "read a Hugging Face Llama directory into hibari and write it out again");
  cmd->add_option("--from", a.from,
                  "Hugging Face model directory (config.json + safetensors), a hibari checkpoint "
                  "(ckpt/step_000123), or a checkpoint folder (ckpt: its newest intact one)")
      ->required();
  cmd->add_option("--to", a.to, "output format: hf")->capture_default_str();
  cmd->add_option("--output", a.output, "output directory (must not exist, or be empty)")
      ->required();
  cmd->add_option("--dtype", a.dtype, "dtype of the written weights: f32 or bf16")
      ->capture_default_str();
  cmd->add_option("--max-shard-size", a.max_shard_size,
                  "largest safetensors shard (5GB, 500MB, 2GiB...); above it the weights are "
                  "sharded with model.safetensors.index.json")
      ->capture_default_str();
  CLI::Option* resize = cmd->add_option(
      "--resize-vocab", a.resize_vocab,
      "grow embed_tokens / lm_head to this many rows; new rows = mean of the old rows "
      "+ normal noise (std 0.01 x the matrix's std)");
  cmd->add_option("--resize-seed", a.resize_seed, "seed of the new rows' noise")
      ->capture_default_str()
      ->needs(resize);
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace hibari::cli
