// cli/convert_command.cpp — `hibari convert`: a Hugging Face model directory or a hibari checkpoint
// read into hibari's flat parameter buffer and written back out (as Hugging Face, for now),
// optionally with another dtype, shard size or a grown vocabulary.  The output is a directory
// `hibari generate` and transformers load as it is: the source's config.json keys are kept
// (model/hf_weights.h, hf_config_text) and the tokenizer files found beside the source are copied.
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "checkpoint/sharded_checkpoint.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/text_tokenizer.h"
#include "infer/model_loader.h"
#include "model/config.h"
#include "model/hf_weights.h"
#include "model/params.h"

namespace hibari::cli {

namespace {

struct ConvertArgs {
  std::string from, to = "hf", output, dtype = "f32", max_shard_size = "5GB";
  size_t resize_vocab = 0;
  uint64_t resize_seed = 0;
};

namespace fs = std::filesystem;

// The files of a Hugging Face tokenizer (and the generation defaults) that belong beside the
// weights; copied when present.
const char* const kTokenizerFiles[] = {
    "tokenizer.json",    "tokenizer.model",     "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "chat_template.jinja", "generation_config.json"};

// The source's tokenizer: the directory `hibari generate --model FROM` takes it from (FROM, then
// the two directories above it: a checkpoint's root and run directory), else for a checkpoint its
// run.toml's [data].tokenizer (relative paths taken from the working directory, as the run file's
// own directory is not recorded).  `file` is the tokenizer.json / .model; `dir` holds the files
// that go with it.  Both empty when there is none.
struct TokenizerSource {
  std::string file, dir;
};

TokenizerSource find_tokenizer(const std::string& from, const std::string& run_toml) {
  if (std::string found = find_model_tokenizer(from); !found.empty())
    return {found, fs::path(found).parent_path().string()};
  if (run_toml.empty()) return {};
  std::error_code ec;
  std::string named;
  try {
    const toml::table run = toml::parse(run_toml);
    named = run["data"]["tokenizer"].value_or(std::string());
  } catch (const toml::parse_error&) {
    return {};  // the trainer read this file; a checkpoint whose copy does not parse has no
                // tokenizer
  }
  if (named.empty()) return {};
  if (fs::is_directory(named, ec)) {
    const TextTokenizer t = load_text_tokenizer(named);
    return {t.path(), named};
  }
  if (fs::is_regular_file(named, ec)) return {named, fs::path(named).parent_path().string()};
  std::fprintf(stderr, "hibari: the checkpoint's run.toml names the tokenizer %s, not found here\n",
               named.c_str());
  return {};
}

// README.md of a --resize-vocab output: does the copied tokenizer (`tokens` tokens, copied from
// `source` as `name`; none when source is empty) fit the new embedding?  `summary`: one line.
std::string resize_readme(const ConvertArgs& args, size_t old_vocab, size_t new_vocab,
                          const std::string& source, const std::string& name, size_t tokens,
                          std::string& summary) {
  std::string text = "# " + fs::path(args.output).filename().string() +
                     "\n\nWritten by `hibari convert --resize-vocab " + std::to_string(new_vocab) +
                     "` from `" + args.from +
                     "`: model.embed_tokens (and lm_head when untied) grew from " +
                     std::to_string(old_vocab) + " to " + std::to_string(new_vocab) +
                     " rows; each new row is the mean of the old rows plus small noise (seed " +
                     std::to_string(args.resize_seed) + ").\n\n## Tokenizer\n\n";
  if (source.empty()) {
    summary = "no tokenizer was found beside " + args.from;
    return text +
           "No tokenizer was found beside the source, so none was copied. Put the "
           "tokenizer with " +
           std::to_string(new_vocab) + " tokens here before `hibari generate`.\n";
  }
  text += "`" + name + "` (copied from `" + source + "`) has " + std::to_string(tokens) +
          " tokens; the embedding has " + std::to_string(new_vocab) + " rows.\n\n";
  if (tokens == new_vocab) {
    summary = "the copied " + name + " matches the resized embedding";
    return text + "They match.\n";
  }
  summary = "the copied " + name + " has " + std::to_string(tokens) +
            " tokens, the resized embedding " + std::to_string(new_vocab) + " rows";
  if (tokens < new_vocab)
    return text + "They do not match: rows " + std::to_string(tokens) + " to " +
           std::to_string(new_vocab - 1) +
           " belong to no token of this tokenizer. Replace the tokenizer files here with the "
           "extended tokenizer (`hibari tokenizer extend` writes one) before training or "
           "generating with the new tokens.\n";
  return text +
         "They do not match: the tokenizer has more tokens than the embedding has rows, "
         "and `hibari generate` refuses it. Convert again with --resize-vocab " +
         std::to_string(tokens) + " or more.\n";
}

// Reads every model tensor of a sharded checkpoint once, one at a time (a shard's checksum is
// checked when it is first touched), so that a corrupt step is found before anything is written.
void verify_sharded(ShardedCheckpoint& c) {
  std::vector<float> x;
  for (const auto& [name, t] : c.tensors) {
    if (name.rfind("exp_avg", 0) == 0) continue;
    x.resize(size_t(t.rows * t.cols));
    sharded_read(c, name, whole_slice(t.shape), x.data());
  }
  sharded_release(c);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A sharded checkpoint as a Hugging Face directory with bounded memory (sharded_export_weights:
// one tensor at a time), the same files save_hf_weights writes: config.json (the step's keys kept),
// generation_config.json, what `carry` names, and the weights in the parameter registry's order.
void export_sharded(ShardedCheckpoint& c, const ParameterLayout& layout, const ModelConfig& config,
                    const std::string& out_dir, const HfSaveOptions& options,
                    const HfCarryOver& carry) {
  AtomicDir dir(out_dir);
  write_file_atomic(
      dir.file("config.json"),
      hf_config_text(config, options.dtype, read_text_file(carry.config_path), carry.config_path));
  nlohmann::json gen = {{"_from_model_config", true}};
  if (config.bos_token_id >= 0) gen["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1) gen["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) gen["eos_token_id"] = config.eos_token_ids;
  write_file_atomic(dir.file("generation_config.json"), gen.dump(2) + "\n");
  for (const auto& [path, name] : carry.files)
    write_file_atomic(dir.file(name), read_text_file(path));
  std::vector<std::pair<std::string, std::string>> names;  // model tensors only, not exp_avg*
  for (const ParamInfo& p : layout.params) names.push_back({p.name, p.name});
  sharded_export_weights(c, names, dir.tmp_path, options.dtype, options.max_shard_bytes);
  dir.commit();
}

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
  // first.  A parallel run's sharded one (version 2) holds config.json and shards of every tensor
  // under HF names: exported tensor by tensor.
  std::string from = args.from;
  std::unique_ptr<LoadedCheckpoint> checkpoint;
  std::optional<ShardedCheckpoint> sharded;
  refuse_step_without_manifest(from);  // else read as a Hugging Face directory, unverified
  if (checkpoint_manifest_version(from) == kShardedCheckpointVersion) {
    sharded.emplace(sharded_open(from));
  } else if (std::filesystem::exists(std::filesystem::path(from) / "manifest.json")) {
    checkpoint = std::make_unique<LoadedCheckpoint>(load_checkpoint(from));
  } else if (std::filesystem::exists(std::filesystem::path(from) / "latest")) {
    // the newest intact step of either format; a corrupt one is skipped with a note
    const std::vector<std::pair<int64_t, std::string>> steps = checkpoint_step_dirs(from);
    std::string first_problem;
    for (const auto& [step, dir] : steps) {
      try {
        if (checkpoint_manifest_version(dir) == kShardedCheckpointVersion) {
          ShardedCheckpoint c = sharded_open(dir);
          verify_sharded(c);
          sharded.emplace(std::move(c));
        } else {
          checkpoint = std::make_unique<LoadedCheckpoint>(load_checkpoint(dir));
        }
        from = dir;
        break;
      } catch (const Error& e) {
        if (first_problem.empty()) first_problem = e.what();
        std::fprintf(stderr, "hibari: skipping a corrupt checkpoint: %s\n", e.what());
      }
    }
    if (!steps.empty() && !checkpoint && !sharded)
      fail("no intact checkpoint in " + from + "; the newest: " + first_problem);
  }
  std::string run_toml;
  if (checkpoint && checkpoint->text_files.count("run.toml"))
    run_toml = checkpoint->text("run.toml");
  if (sharded && sharded->text_files.count("run.toml")) run_toml = sharded->text("run.toml");
  checkpoint.reset();
  const std::string config_path = (std::filesystem::path(from) / "config.json").string();
  if (!std::filesystem::exists(config_path)) {
    fail_file(config_path, "missing (not a Hugging Face model directory?)");
  }
  ModelConfig config = load_model_config(config_path);
  ParameterLayout layout = llama_parameter_layout(config);
  std::vector<float> params;
  if (sharded && args.resize_vocab > 0) {
    // the whole model (--resize-vocab needs it), read tensor by tensor from the shards
    sharded.reset();
    LoadedModel m = load_model_for_inference(from);
    check_hf_config(config, m.config, config_path);
    params = std::move(m.params);
  } else if (!sharded) {
    params.resize(layout.total);
    load_hf_weights(layout, params.data(), config, from);
  }

  HfCarryOver carry;
  carry.config_path = config_path;
  const TokenizerSource tokenizer = find_tokenizer(from, run_toml);
  std::string tokenizer_name;
  size_t tokenizer_tokens = 0;
  if (!tokenizer.file.empty()) {
    // The tokenizer under the name `generate` looks for; the files that go with it as they are.
    const TextTokenizer loaded = load_text_tokenizer(tokenizer.file);
    tokenizer_tokens = loaded.vocab_size();
    tokenizer_name = loaded.is_sentencepiece() ? "tokenizer.model" : "tokenizer.json";
    const std::string& name = tokenizer_name;
    carry.files.push_back({tokenizer.file, name});
    for (const char* other : kTokenizerFiles) {
      const fs::path path = fs::path(tokenizer.dir) / other;
      if (other != name && other != std::string("generation_config.json") &&
          fs::is_regular_file(path))
        carry.files.push_back({path.string(), other});
    }
  }
  // generation_config.json belongs to the model: only the source directory's own is taken.
  if (fs::is_regular_file(fs::path(from) / "generation_config.json"))
    carry.files.push_back(
        {(fs::path(from) / "generation_config.json").string(), "generation_config.json"});
  std::string summary;
  if (args.resize_vocab > 0) {
    const size_t old_vocab = config.vocab_size;
    if (args.resize_vocab != config.vocab_size) {
      std::vector<float> grown;
      config =
          resize_vocab(config, layout, params.data(), args.resize_vocab, args.resize_seed, grown);
      layout = llama_parameter_layout(config);
      params.swap(grown);
    }
    carry.readme = resize_readme(args, old_vocab, config.vocab_size, tokenizer.file, tokenizer_name,
                                 tokenizer_tokens, summary);
  }
  if (sharded) {
    export_sharded(*sharded, layout, config, args.output, options, carry);
  } else {
    save_hf_weights(layout, params.data(), config, args.output, options, carry);
  }
  std::printf("wrote %s (%zu parameters, vocab_size %zu, %s)\n", args.output.c_str(), layout.total,
              config.vocab_size, st_dtype_name(options.dtype));
  if (!summary.empty())
    std::fprintf(stderr, "hibari: %s (see %s/README.md)\n", summary.c_str(), args.output.c_str());
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
