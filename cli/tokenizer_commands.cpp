// cli/tokenizer_commands.cpp — `hibari tokenizer encode|decode` (JSON Lines in, JSON Lines out) and
// `hibari tokenizer train` (JSON Lines corpora -> a tokenizer directory transformers loads).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/text_tokenizer.h"

namespace hibari::cli {

namespace {

// Flags of `hibari tokenizer encode|decode`.
struct TokenizerArgs {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
  std::string special_tokens_in_text = "match";
};

// Flags of `hibari tokenizer train`.
struct TokenizerTrainArgs {
  TokenizerTrainOptions job;
  std::string bad_lines = "fail";
  std::string user_defined_symbols;  // comma-separated
  bool no_byte_fallback = false;
};

// One JSON object per stdin line, or an Error "stdin:LINE: problem".
nlohmann::json read_stdin_object(const std::string& line, size_t number) {
  std::string where = "stdin:" + std::to_string(number);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(where, "invalid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number such as 1e309
    fail_file(where, "invalid JSON (" + json_exception_text(e) + ")");
  }
  if (!j.is_object()) fail_file(where, "expected a JSON object");
  return j;
}

void run_tokenizer_encode(const TokenizerArgs& args) {
  TextTokenizer tokenizer = load_text_tokenizer(args.tokenizer);
  const SpecialTokensInText in_text = args.special_tokens_in_text == "ignore"
                                          ? SpecialTokensInText::ignore
                                          : SpecialTokensInText::match;
  std::string line, out;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    nlohmann::json j = read_stdin_object(line, number);
    auto it = j.find("text");
    if (it == j.end() || !it->is_string()) {
      fail_file("stdin:" + std::to_string(number), "expected a string \"text\"");
    }
    std::vector<int32_t> ids =
        tokenizer.encode(it->get_ref<const std::string&>(), args.add_special_tokens, in_text);
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
  TextTokenizer tokenizer = load_text_tokenizer(args.tokenizer);
  std::string line;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string where = "stdin:" + std::to_string(number);
    nlohmann::json j = read_stdin_object(line, number);
    auto it = j.find("ids");
    if (it == j.end() || !it->is_array()) fail_file(where, "expected an array \"ids\"");
    std::vector<int32_t> ids;
    ids.reserve(it->size());
    for (const nlohmann::json& id : *it) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        fail_file(where, "\"ids\" must hold non-negative 32-bit integers");
      }
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    nlohmann::json out = {{"text", tokenizer.decode(ids, args.skip_special_tokens)}};
    std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
}

void run_tokenizer_train(TokenizerTrainArgs& args) {
  TokenizerTrainOptions& job = args.job;
  job.bad_lines = args.bad_lines == "skip" ? BadLinePolicy::skip : BadLinePolicy::fail;
  job.byte_fallback = !args.no_byte_fallback;
  std::istringstream symbols(args.user_defined_symbols);
  for (std::string s; std::getline(symbols, s, ',');) {
    if (!s.empty()) job.user_defined_symbols.push_back(s);
  }
  TokenizerTrainSummary s = train_tokenizer(job);
  std::fprintf(stderr,
               "hibari: trained a %s tokenizer of %zu pieces from %zu sentences (%zu documents) in "
               "%.2f s into %s; skipped %zu bad lines (%s); %zu blank lines\n",
               job.model_type.c_str(), s.vocab_size, s.sentences, s.documents, s.seconds,
               job.output_dir.c_str(), s.skipped.total(), s.skipped.to_string().c_str(),
               s.blank_lines);
}

void add_tokenizer_train_command(CLI::App& tokenizer_cmd) {
  auto args = std::make_shared<TokenizerTrainArgs>();
  TokenizerTrainArgs& tr = *args;
  CLI::App* train = tokenizer_cmd.add_subcommand(
      "train",
      "train a SentencePiece tokenizer (as Llama's) on JSON Lines corpora into a directory "
      "transformers loads: tokenizer.model, tokenizer_config.json, special_tokens_map.json and, "
      "for bpe, tokenizer.json");
  train
      ->add_option("--input", tr.job.inputs,
                   "a JSON Lines file (.jsonl, .jsonl.gz or .jsonl.zst); repeat for more")
      ->required();
  train->add_option("--json-key", tr.job.json_key, "the key holding each document's text")
      ->capture_default_str();
  train->add_option("--model-type", tr.job.model_type, "bpe or unigram")
      ->required()
      ->check(CLI::IsMember({"bpe", "unigram"}));
  train->add_option("--vocab-size", tr.job.vocab_size, "pieces in the vocabulary")
      ->required()
      ->check(CLI::PositiveNumber);
  train
      ->add_option("--output", tr.job.output_dir,
                   "the directory to write (whole or not at all; a previous tokenizer directory "
                   "there is replaced)")
      ->required();
  train
      ->add_option("--character-coverage", tr.job.character_coverage,
                   "share of characters the vocabulary covers; the rest go through byte pieces")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  train->add_flag("--no-byte-fallback", tr.no_byte_fallback,
                  "no <0xNN> byte pieces: uncovered characters become <unk>");
  train->add_option("--user-defined-symbols", tr.user_defined_symbols,
                    "comma-separated pieces always kept whole (e.g. <|im_start|>,<|im_end|>)");
  train
      ->add_option("--max-sentences", tr.job.max_sentences,
                   "train on at most this many lines, sampled (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--threads", tr.job.threads, "training threads (0: one a hardware thread)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train
      ->add_option("--model-max-length", tr.job.model_max_length,
                   "tokenizer_config.json's model_max_length")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train
      ->add_option("--bad-lines", tr.bad_lines,
                   "a line without a document (bad JSON or UTF-8, missing, non-string or empty "
                   "text): fail names FILE:LINE and stops; skip counts it by reason and goes on")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "skip"}));
  train->callback([args] { run_tokenizer_train(*args); });
}

}  // namespace

constexpr const char* tokenizer_help =
    "a HF tokenizer.json, a SentencePiece .model, or a directory holding tokenizer.json or "
    "tokenizer.model";

void add_tokenizer_commands(CLI::App& app) {
  CLI::App* tokenizer_cmd = app.add_subcommand("tokenizer", "run or train a tokenizer");
  tokenizer_cmd->require_subcommand(1);
  auto args = std::make_shared<TokenizerArgs>();
  TokenizerArgs& tk = *args;
  CLI::App* encode = tokenizer_cmd->add_subcommand(
      "encode", "JSON Lines {\"text\": ...} on stdin -> {\"ids\": [...]} lines on stdout");
  encode->add_option("--tokenizer", tk.tokenizer, tokenizer_help)->required();
  encode->add_flag("--add-special-tokens", tk.add_special_tokens,
                   "apply the post-processor's template (e.g. a leading BOS)");
  encode
      ->add_option("--special-tokens-in-text", tk.special_tokens_in_text,
                   "a special-token string inside the text: match makes it that token (HF's "
                   "default); ignore tokenizes it as ordinary text")
      ->capture_default_str()
      ->check(CLI::IsMember({"match", "ignore"}));
  CLI::App* decode = tokenizer_cmd->add_subcommand(
      "decode", "JSON Lines {\"ids\": [...]} on stdin -> {\"text\": ...} lines on stdout");
  decode->add_option("--tokenizer", tk.tokenizer, tokenizer_help)->required();
  decode->add_flag("--skip-special-tokens", tk.skip_special_tokens,
                   "leave special tokens out of the text");

  encode->callback([args] { run_tokenizer_encode(*args); });
  decode->callback([args] { run_tokenizer_decode(*args); });
  add_tokenizer_train_command(*tokenizer_cmd);
  add_tokenizer_extend_command(*tokenizer_cmd);
}

}  // namespace hibari::cli
