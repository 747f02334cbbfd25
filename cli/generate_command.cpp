// cli/generate_command.cpp — `hibari generate`: KV-cached sampling from a Hugging Face directory or
// a hibari checkpoint (infer/).  Prompts are batched together.  One prompt: its text streams to
// stdout as it becomes final (infer/stream_decoder.h); several: each completion is printed when it
// ends, in prompt order.  --output jsonl: one JSON object per prompt, in prompt order, and nothing
// else on stdout.  stderr gets the token counts and prefill / decode throughput.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/jsonl_reader.h"
#include "infer/chat.h"
#include "infer/decoder.h"
#include "infer/generate.h"
#include "infer/model_loader.h"
#include "infer/stream_decoder.h"

namespace hibari::cli {

namespace {

struct GenerateArgs {
  std::string model, tokenizer, prompts_file, system, output = "text";
  std::vector<std::string> prompts;
  size_t max_new_tokens = 128, top_k = 0;
  double temperature = 0.0, top_p = 1.0;
  uint64_t seed = 0;
  bool chat = false;
  int threads = 0;
};

// One prompt per line, or JSON Lines with a "prompt" string (a line starting with '{').
std::vector<std::string> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot be read");
  std::vector<std::string> prompts;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    // Checked here so the error names this file and line, not the tokenizer that would refuse it.
    if (!is_valid_utf8(line))
      fail_file(path, "line " + std::to_string(number) + ": not valid UTF-8");
    if (line[0] != '{') {
      prompts.push_back(line);
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail_file(path, "line " + std::to_string(number) + ": not valid JSON");
    }
    if (!j.contains("prompt") || !j["prompt"].is_string())
      fail_file(path, "line " + std::to_string(number) + ": no \"prompt\" string");
    prompts.push_back(j["prompt"].get<std::string>());
  }
  if (prompts.empty()) fail_file(path, "no prompts");
  return prompts;
}

// Where tokenizer_config.json (the chat template) may be: the tokenizer's directory, the model's.
ChatTemplate find_chat_template(const std::string& model_dir, const TextTokenizer& tokenizer) {
  const std::string tokenizer_dir = std::filesystem::path(tokenizer.path()).parent_path().string();
  for (const std::string& dir : {tokenizer_dir, model_dir}) {
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::path(dir) / "tokenizer_config.json", ec))
      return chat_template_for_model(dir);
  }
  return {};
}

void add_stop(std::vector<int32_t>& stop, std::optional<int32_t> id) {
  if (id && std::find(stop.begin(), stop.end(), *id) == stop.end()) stop.push_back(*id);
}

// One --output jsonl line.  generate ends a sequence at a stop token (left out of its tokens) or
// at max_new_tokens, so a sequence shorter than that ended at a stop token.
std::string jsonl_line(const std::string& prompt, size_t prompt_tokens,
                       const std::vector<int32_t>& ids, const std::string& text,
                       size_t max_new_tokens) {
  nlohmann::ordered_json j;
  j["prompt"] = prompt;
  j["text"] = text;
  j["token_ids"] = ids;
  j["finish_reason"] = ids.size() < max_new_tokens ? "stop" : "length";
  j["prompt_tokens"] = prompt_tokens;
  // A prompt given on the command line need not be UTF-8; its stray bytes become U+FFFD.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void run_generate(const GenerateArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  std::vector<std::string> texts = a.prompts;
  if (!a.prompts_file.empty()) {
    std::vector<std::string> more = read_prompts_file(a.prompts_file);
    texts.insert(texts.end(), more.begin(), more.end());
  }
  if (texts.empty()) fail("no prompt: give --prompt TEXT or --prompts-file FILE");
  if (a.temperature < 0) fail("--temperature must be >= 0");
  if (!(a.top_p > 0 && a.top_p <= 1)) fail("--top-p must be in (0, 1]");

  LoadedModel model = load_model_for_inference(a.model);
  for (const std::string& note : model.notes) std::fprintf(stderr, "hibari: %s\n", note.c_str());
  const TextTokenizer tokenizer = load_tokenizer_for_model(a.model, a.tokenizer);
  if (tokenizer.vocab_size() > model.config.vocab_size)
    fail(tokenizer.path() + ": the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
         " tokens, the model's vocabulary " + std::to_string(model.config.vocab_size));

  std::vector<int32_t> stop;
  add_stop(stop, tokenizer.eos_id());
  for (int64_t id : model.config.eos_token_ids) add_stop(stop, int32_t(id));
  std::vector<std::vector<int32_t>> prompts;
  if (a.chat) {
    const ChatTemplate chat = find_chat_template(model.weights_dir, tokenizer);
    if (chat.format == ChatFormat::llama3) add_stop(stop, tokenizer.token_id("<|eot_id|>"));
    if (chat.format == ChatFormat::chatml) add_stop(stop, tokenizer.token_id("<|im_end|>"));
    for (const std::string& text : texts) {
      std::vector<ChatMessage> messages;
      if (!a.system.empty()) messages.push_back({"system", a.system});
      messages.push_back({"user", text});
      // llama3 / llama2 write BOS in the text; ChatML has none; the plain default takes the
      // tokenizer's own special tokens.
      const bool add_special = chat.format == ChatFormat::plain;
      prompts.push_back(tokenizer.encode(apply_chat_template(chat, messages), add_special));
    }
  } else {
    if (!a.system.empty()) fail("--system needs --chat");
    for (const std::string& text : texts) prompts.push_back(tokenizer.encode(text, true));
  }
  size_t longest = 0, total = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("prompt " + std::to_string(i + 1) + " encodes to no tokens");
    longest = std::max(longest, prompts[i].size());
    total += prompts[i].size();
  }
  const size_t positions = longest + a.max_new_tokens;
  if (positions > model.config.max_position_embeddings)
    fail("the longest prompt (" + std::to_string(longest) + " tokens) + --max-new-tokens " +
         std::to_string(a.max_new_tokens) + " exceeds the model's max_position_embeddings " +
         std::to_string(model.config.max_position_embeddings));

  Decoder decoder;
  decoder_create(decoder, model.config, model.weights,
                 {.max_batch = prompts.size(),
                  .max_seq = positions,
                  .max_tokens = std::max(prompts.size(), std::min<size_t>(total, 512)),
                  .pack_in_place = true});  // the loaded weights serve only this decoder
  GenerateOptions options{
      .max_new_tokens = a.max_new_tokens,
      .sampling = {.temperature = a.temperature, .top_k = a.top_k, .top_p = a.top_p},
      .seed = a.seed,
      .stop_tokens = stop};

  // Output: one prompt streams; several print whole completions in prompt order as they end.
  const bool jsonl = a.output == "jsonl";
  std::vector<std::vector<int32_t>> produced(prompts.size());
  std::vector<uint8_t> finished(prompts.size(), 0);
  size_t printed_prompts = 0;
  GenerateCallbacks callbacks;
  const bool streaming = prompts.size() == 1 && !jsonl;
  StreamDecoder stream;
  stream.tokenizer = &tokenizer;
  auto write = [](const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  callbacks.on_token = [&](size_t i, int32_t token) {
    produced[i].push_back(token);
    if (streaming) {
      const std::string piece = stream_decoder_push(stream, token);
      if (!piece.empty()) write(piece);
    }
  };
  callbacks.on_done = [&](size_t i) {
    finished[i] = 1;
    if (streaming) {
      write(stream_decoder_finish(stream) + "\n");
      return;
    }
    while (printed_prompts < prompts.size() && finished[printed_prompts]) {
      const size_t p = printed_prompts++;
      const std::string text = tokenizer.decode(produced[p], true);
      if (jsonl) {
        write(jsonl_line(texts[p], prompts[p].size(), produced[p], text, a.max_new_tokens));
      } else {
        write("--- " + std::to_string(p + 1) + " ---\n" + text + "\n");
      }
    }
  };
  GenerateStats stats;
  generate(decoder, prompts, options, callbacks, &stats);
  // The first new token of each prompt comes from the prefill's logits; decode steps make the rest.
  const size_t decoded = stats.generated_tokens - std::min(stats.generated_tokens, prompts.size());
  std::fprintf(
      stderr,
      "hibari: %zu prompt tokens, %zu generated tokens; prefill %.1f tokens/s, "
      "decode %.1f tokens/s (%s, %d threads)\n",
      stats.prompt_tokens, stats.generated_tokens,
      stats.prefill_seconds > 0 ? double(stats.prompt_tokens) / stats.prefill_seconds : 0.0,
      stats.decode_seconds > 0 ? double(decoded) / stats.decode_seconds : 0.0,
      model.description.c_str(), num_threads());
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text with a KV cache from a model");
  cmd->add_option("--model", args->model,
                  "Hugging Face directory, hibari checkpoint (step_NNNNNN) or checkpoint root")
      ->required();
  cmd->add_option("--prompt", args->prompts, "a prompt (repeatable; prompts run as one batch)");
  cmd->add_option("--prompts-file", args->prompts_file,
                  "prompts, one per line, or JSON Lines with a \"prompt\" field");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "tokens to generate per prompt")
      ->capture_default_str();
  cmd->add_option("--temperature", args->temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "keep the k most likely tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "nucleus: the most likely tokens with this probability")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed of the sampling")->capture_default_str();
  cmd->add_flag("--chat", args->chat,
                "wrap each prompt in the model's chat template (tokenizer_config.json)");
  cmd->add_option("--system", args->system, "system message for --chat");
  cmd->add_option("--tokenizer", args->tokenizer,
                  "tokenizer.json / tokenizer.model (default: found next to the model)");
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: the default policy)");
  cmd->add_option("--output", args->output,
                  "text: one prompt streams, several print as '--- N ---' blocks; jsonl: one JSON "
                  "object per prompt (prompt, text, token_ids, finish_reason, prompt_tokens)")
      ->check(CLI::IsMember({"text", "jsonl"}))
      ->capture_default_str();
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace hibari::cli
