// cli/main.cpp — the `hibari` command: subcommands, flags and exit codes; no logic of its own.
// Every hibari::Error becomes one line on stderr and exit code 1.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "data/jsonl_reader.h"
#include "data/tokenize_job.h"
#include "data/tokenizer.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace {

// Flags of `hibari data tokenize`.
struct DataTokenizeArgs {
  hibari::TokenizeOptions job;
  std::string tokenizer;
  std::string bad_lines = "fail";
  bool add_bos = false;
  CLI::Option* add_bos_flag = nullptr;  // says whether --add-bos/--no-add-bos was given
  std::string special_tokens_in_text = "match";
};

// Flags of `hibari tokenizer encode|decode`.
struct TokenizerArgs {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

void run_data_tokenize(DataTokenizeArgs& args) {
  if (args.special_tokens_in_text != "match") {
    hibari::fail("--special-tokens-in-text " + args.special_tokens_in_text +
                 " is not supported: the tokenizer always matches special-token strings in text "
                 "(use match)");
  }
  args.job.bad_lines =
      args.bad_lines == "skip" ? hibari::BadLinePolicy::skip : hibari::BadLinePolicy::fail;
  hibari::Tokenizer tokenizer(args.tokenizer);
  bool bos_given = args.add_bos_flag->count() > 0;
  args.job.add_bos = bos_given ? args.add_bos : tokenizer.adds_bos();
  if (!bos_given && !tokenizer.adds_bos()) {
    std::fprintf(stderr,
                 "hibari: WARNING: the tokenizer %s adds no BOS token, so the documents will have "
                 "no BOS; pass --add-bos to add one, or --no-add-bos to say this is intended\n",
                 tokenizer.path().c_str());
  }

  // A progress line, rewritten in place at most 4 times a second, only on a terminal.
  const bool tty = isatty(fileno(stderr)) != 0;
  double last_shown = -1;
  auto progress = [&](const hibari::TokenizeProgress& p) {
    if (!tty || p.seconds - last_shown < 0.25) return;
    last_shown = p.seconds;
    double mb = static_cast<double>(p.bytes_read) / 1e6;
    std::fprintf(stderr, "\rhibari: %zu documents, %.1f MB read, %.1f MB/s   ", p.documents, mb,
                 p.seconds > 0 ? mb / p.seconds : 0.0);
    std::fflush(stderr);
  };
  hibari::TokenizeSummary s = hibari::tokenize_to_indexed_dataset(tokenizer, args.job, progress);
  if (last_shown >= 0) std::fputc('\n', stderr);
  std::fprintf(stderr,
               "hibari: tokenized %zu documents, %zu tokens (%.1f MB read) in %.2f s into "
               "%s.bin/.idx; skipped %zu bad lines (%s); %zu blank lines\n",
               s.totals.documents, s.totals.tokens, static_cast<double>(s.totals.bytes_read) / 1e6,
               s.totals.seconds, args.job.output_prefix.c_str(), s.skipped.total(),
               s.skipped.to_string().c_str(), s.blank_lines);
}

// One JSON object per stdin line, or an Error "stdin:LINE: problem".
nlohmann::json read_stdin_object(const std::string& line, size_t number) {
  std::string where = "stdin:" + std::to_string(number);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    hibari::fail_file(where, "invalid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  }
  if (!j.is_object()) hibari::fail_file(where, "expected a JSON object");
  return j;
}

void run_tokenizer_encode(const TokenizerArgs& args) {
  hibari::Tokenizer tokenizer(args.tokenizer);
  std::string line, out;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    nlohmann::json j = read_stdin_object(line, number);
    auto it = j.find("text");
    if (it == j.end() || !it->is_string()) {
      hibari::fail_file("stdin:" + std::to_string(number), "expected a string \"text\"");
    }
    std::vector<int32_t> ids =
        tokenizer.encode(it->get_ref<const std::string&>(), args.add_special_tokens);
    out = "{\"ids\":[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(ids[i]);
    }
    out += "]}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
}

void run_tokenizer_decode(const TokenizerArgs& args) {
  hibari::Tokenizer tokenizer(args.tokenizer);
  std::string line;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string where = "stdin:" + std::to_string(number);
    nlohmann::json j = read_stdin_object(line, number);
    auto it = j.find("ids");
    if (it == j.end() || !it->is_array()) hibari::fail_file(where, "expected an array \"ids\"");
    std::vector<int32_t> ids;
    ids.reserve(it->size());
    for (const nlohmann::json& id : *it) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        hibari::fail_file(where, "\"ids\" must hold non-negative 32-bit integers");
      }
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    nlohmann::json out = {{"text", tokenizer.decode(ids, args.skip_special_tokens)}};
    std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hibari: build Japanese-English language models end to end"};
  app.require_subcommand(1);

  std::string train_config;
  CLI::App* train = app.add_subcommand("train", "train a model as described by a TOML run file");
  train->add_option("--config", train_config, "the run file (TOML)")->required();
  bool print_reference = false;
  CLI::App* config_cmd =
      app.add_subcommand("config", "print every run-file key with its default and description");
  config_cmd->add_flag("--reference", print_reference, "the full reference (default)");

  CLI::App* data = app.add_subcommand("data", "prepare training data");
  data->require_subcommand(1);
  DataTokenizeArgs tok;
  tok.job.workers = std::max(1u, std::thread::hardware_concurrency());
  CLI::App* tokenize = data->add_subcommand(
      "tokenize", "tokenize JSON Lines corpora into a Megatron indexed dataset (PREFIX.bin/.idx)");
  tokenize
      ->add_option("--input", tok.job.inputs,
                   "a JSON Lines file (.jsonl, .jsonl.gz or .jsonl.zst); repeat for more, read in "
                   "order")
      ->required();
  tokenize->add_option("--tokenizer", tok.tokenizer, "a HF tokenizer.json (or its directory)")
      ->required();
  tokenize
      ->add_option("--output-prefix", tok.job.output_prefix,
                   "writes PREFIX.bin and PREFIX.idx (only when everything succeeded)")
      ->required();
  tokenize
      ->add_option("--workers", tok.job.workers,
                   "tokenizing threads (output is the same for any number)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  tokenize->add_option("--json-key", tok.job.json_key, "the key holding each document's text")
      ->capture_default_str();
  tokenize
      ->add_option("--bad-lines", tok.bad_lines,
                   "a line without a document (bad JSON or UTF-8, missing, non-string or empty "
                   "text): fail names FILE:LINE and stops; skip counts it by reason and goes on")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "skip"}));
  tok.add_bos_flag = tokenize->add_flag(
      "--add-bos,!--no-add-bos", tok.add_bos,
      "put BOS first in each document (default: as the tokenizer's post-processor does; a "
      "warning says when that is no BOS)");
  tokenize->add_flag("--append-eod,!--no-append-eod", tok.job.append_eod,
                     "put the tokenizer's EOS last in each document (default: on)");
  tokenize
      ->add_option("--special-tokens-in-text", tok.special_tokens_in_text,
                   "special-token strings inside the text become special tokens (match, as HF "
                   "does); 'ignore' is not supported by hibari's tokenizer yet")
      ->capture_default_str();

  CLI::App* tokenizer_cmd = app.add_subcommand("tokenizer", "run a tokenizer");
  tokenizer_cmd->require_subcommand(1);
  TokenizerArgs tk;
  CLI::App* encode = tokenizer_cmd->add_subcommand(
      "encode", "JSON Lines {\"text\": ...} on stdin -> {\"ids\": [...]} lines on stdout");
  encode->add_option("--tokenizer", tk.tokenizer, "a HF tokenizer.json (or its directory)")
      ->required();
  encode->add_flag("--add-special-tokens", tk.add_special_tokens,
                   "apply the post-processor's template (e.g. a leading BOS)");
  CLI::App* decode = tokenizer_cmd->add_subcommand(
      "decode", "JSON Lines {\"ids\": [...]} on stdin -> {\"text\": ...} lines on stdout");
  decode->add_option("--tokenizer", tk.tokenizer, "a HF tokenizer.json (or its directory)")
      ->required();
  decode->add_flag("--skip-special-tokens", tk.skip_special_tokens,
                   "leave special tokens out of the text");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train) {
      hibari::RunConfig config = hibari::load_run_config(train_config);
      hibari::run_training(config, stdout);
    } else if (*config_cmd) {
      std::fputs(hibari::run_config_reference().c_str(), stdout);
    } else if (*tokenize) {
      run_data_tokenize(tok);
    } else if (*encode) {
      run_tokenizer_encode(tk);
    } else if (*decode) {
      run_tokenizer_decode(tk);
    }
  } catch (const hibari::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hibari: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
