// cli/data_commands.cpp — `hibari data tokenize`: JSON Lines corpora into a Megatron indexed
// dataset.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "data/jsonl_reader.h"
#include "data/text_tokenizer.h"
#include "data/tokenize_job.h"

namespace hibari::cli {

namespace {

// Flags of `hibari data tokenize`.
struct DataTokenizeArgs {
  TokenizeOptions job;
  std::string tokenizer;
  std::string bad_lines = "fail";
  bool add_bos = false;
  CLI::Option* add_bos_flag = nullptr;  // says whether --add-bos/--no-add-bos was given
  std::string special_tokens_in_text = "match";
};

void run_data_tokenize(DataTokenizeArgs& args) {
  args.job.bad_lines = args.bad_lines == "skip" ? BadLinePolicy::skip : BadLinePolicy::fail;
  args.job.special_tokens_in_text = args.special_tokens_in_text == "ignore"
                                        ? SpecialTokensInText::ignore
                                        : SpecialTokensInText::match;
  TextTokenizer tokenizer = load_text_tokenizer(args.tokenizer);
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
  auto progress = [&](const TokenizeProgress& p) {
    if (!tty || p.seconds - last_shown < 0.25) return;
    last_shown = p.seconds;
    double mb = static_cast<double>(p.bytes_read) / 1e6;
    std::fprintf(stderr, "\rhibari: %zu documents, %.1f MB read, %.1f MB/s   ", p.documents, mb,
                 p.seconds > 0 ? mb / p.seconds : 0.0);
    std::fflush(stderr);
  };
  TokenizeSummary s = tokenize_to_indexed_dataset(tokenizer, args.job, progress);
  if (last_shown >= 0) std::fputc('\n', stderr);
  std::fprintf(stderr,
               "hibari: tokenized %zu documents, %zu tokens (%.1f MB read) in %.2f s into "
               "%s.bin/.idx; skipped %zu bad lines (%s); %zu blank lines\n",
               s.totals.documents, s.totals.tokens, static_cast<double>(s.totals.bytes_read) / 1e6,
               s.totals.seconds, args.job.output_prefix.c_str(), s.skipped.total(),
               s.skipped.to_string().c_str(), s.blank_lines);
}

}  // namespace

void add_data_commands(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "prepare training data");
  data->require_subcommand(1);
  auto args = std::make_shared<DataTokenizeArgs>();
  DataTokenizeArgs& tok = *args;
  tok.job.workers = std::max(1u, std::thread::hardware_concurrency());
  CLI::App* tokenize = data->add_subcommand(
      "tokenize", "tokenize JSON Lines corpora into a Megatron indexed dataset (PREFIX.bin/.idx)");
  tokenize
      ->add_option("--input", tok.job.inputs,
                   "a JSON Lines file (.jsonl, .jsonl.gz or .jsonl.zst); repeat for more, read in "
                   "order")
      ->required();
  tokenize
      ->add_option("--tokenizer", tok.tokenizer,
                   "a HF tokenizer.json, a SentencePiece .model, or a directory holding "
                   "tokenizer.json or tokenizer.model")
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
                   "a special-token string inside the text (e.g. <|endoftext|>): match makes it "
                   "that special token, as HF does by default; ignore tokenizes it as ordinary "
                   "text (HF's split_special_tokens), so documents cannot inject a real EOD")
      ->capture_default_str()
      ->check(CLI::IsMember({"match", "ignore"}));

  tokenize->callback([args] { run_data_tokenize(*args); });
}

}  // namespace hibari::cli
