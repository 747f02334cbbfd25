// cli/tokenizer_commands.cpp — `hibari tokenizer encode|decode`: JSON Lines in, JSON Lines out.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "data/tokenizer.h"

namespace hibari::cli {

namespace {

// Flags of `hibari tokenizer encode|decode`.
struct TokenizerArgs {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

// One JSON object per stdin line, or an Error "stdin:LINE: problem".
nlohmann::json read_stdin_object(const std::string& line, size_t number) {
  std::string where = "stdin:" + std::to_string(number);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(where, "invalid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  }
  if (!j.is_object()) fail_file(where, "expected a JSON object");
  return j;
}

void run_tokenizer_encode(const TokenizerArgs& args) {
  Tokenizer tokenizer(args.tokenizer);
  std::string line, out;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    nlohmann::json j = read_stdin_object(line, number);
    auto it = j.find("text");
    if (it == j.end() || !it->is_string()) {
      fail_file("stdin:" + std::to_string(number), "expected a string \"text\"");
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
  Tokenizer tokenizer(args.tokenizer);
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

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  CLI::App* tokenizer_cmd = app.add_subcommand("tokenizer", "run a tokenizer");
  tokenizer_cmd->require_subcommand(1);
  auto args = std::make_shared<TokenizerArgs>();
  TokenizerArgs& tk = *args;
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

  encode->callback([args] { run_tokenizer_encode(*args); });
  decode->callback([args] { run_tokenizer_decode(*args); });
  add_tokenizer_extend_command(*tokenizer_cmd);
}

}  // namespace hibari::cli
