// cli/tokenizer_extend_command.cpp — `hibari tokenizer extend`: add tokens learned from a corpus
// to a HF BPE tokenizer.json (data/tokenizer_extend.h), as Swallow extended Llama-2's vocabulary
// with Japanese tokens before continual pretraining.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "data/tokenizer_extend.h"

namespace hibari::cli {

namespace {

// Flags of `hibari tokenizer extend`.
struct TokenizerExtendArgs {
  TokenizerExtendOptions job;
  std::string bad_lines = "fail";
};

void run_tokenizer_extend(TokenizerExtendArgs& args) {
  // Checked here rather than by CLI11, whose errors take two lines.
  if (args.job.add < 1) fail("--add must be at least 1 (got " + std::to_string(args.job.add) + ")");
  args.job.jsonl.bad_lines = args.bad_lines == "skip" ? BadLinePolicy::skip : BadLinePolicy::fail;
  const TokenizerExtendReport r = extend_tokenizer(args.job);
  std::fprintf(stderr,
               "hibari: added %zu tokens (ids %d..%zu) from %zu candidates in %zu passes; vocab "
               "size %zu -> %zu; wrote %s\n",
               r.added, r.first_new_id, r.vocab_size - 1, r.candidates, r.passes, r.base_vocab_size,
               r.vocab_size, args.job.output.c_str());
  std::fprintf(stderr,
               "hibari: corpus of %llu documents, %llu characters: %llu -> %llu tokens, %.3f -> "
               "%.3f characters per token (%+.1f%%); skipped %zu bad lines (%s)\n",
               static_cast<unsigned long long>(r.documents),
               static_cast<unsigned long long>(r.chars),
               static_cast<unsigned long long>(r.tokens_before),
               static_cast<unsigned long long>(r.tokens_after), r.chars_per_token_before(),
               r.chars_per_token_after(),
               r.chars_per_token_before() > 0
                   ? 100.0 * (r.chars_per_token_after() / r.chars_per_token_before() - 1.0)
                   : 0.0,
               r.skipped.total(), r.skipped.to_string().c_str());
}

}  // namespace

void add_tokenizer_extend_command(CLI::App& tokenizer) {
  auto args = std::make_shared<TokenizerExtendArgs>();
  TokenizerExtendArgs& a = *args;
  CLI::App* extend = tokenizer.add_subcommand(
      "extend",
      "add tokens learned from a corpus (SentencePiece BPE pieces) to a HF BPE tokenizer.json, "
      "with the merges that make them; new ids follow the largest id in use");
  extend
      ->add_option("--base", a.job.base,
                   "a HF tokenizer.json with a BPE model (byte-fallback/Metaspace or ByteLevel), "
                   "or its directory (tokenizer_config.json, special_tokens_map.json are copied)")
      ->required();
  extend
      ->add_option("--input", a.job.inputs,
                   "a JSON Lines corpus (.jsonl, .jsonl.gz or .jsonl.zst); repeat for more")
      ->required();
  extend->add_option("--json-key", a.job.jsonl.key, "the key holding each document's text")
      ->capture_default_str();
  extend->add_option("--add", a.job.add, "at most this many new tokens")->required();
  extend
      ->add_option("--output", a.job.output,
                   "the directory to write (new or empty; written only when everything succeeded)")
      ->required();
  extend
      ->add_option("--bad-lines", a.bad_lines,
                   "a line without a document: fail names FILE:LINE and stops; skip counts it "
                   "and goes on")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "skip"}));
  extend
      ->add_option("--threads", a.job.num_threads,
                   "SentencePiece training threads (0: one a hardware thread)")
      ->capture_default_str();
  extend->callback([args] { run_tokenizer_extend(*args); });
}

}  // namespace hibari::cli
