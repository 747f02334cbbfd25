// infer/chat.h — chat templates for instruction-tuned models.  Hugging Face stores a Jinja
// template in tokenizer_config.json ("chat_template"); hibari does not run Jinja: it recognizes the
// common shapes by their marker strings and renders them itself, exactly as the template would:
//   llama3   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n...<|eot_id|>
//   llama2   <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>   (Llama-2-chat, ELYZA)
//   chatml   <|im_start|>system\n...<|im_end|>\n                           (Qwen, Swallow-instruct)
// A template that is none of these is a one-line error; a model without one gets the built-in
// default (plain "role: content" lines; see chat.cpp).
#pragma once

#include <string>
#include <vector>

namespace hibari {

enum class ChatFormat { llama3, llama2, chatml, plain };

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::plain;
  std::string bos_token, eos_token;  // tokenizer_config.json's, as text ("" when absent)
  std::string default_system;        // chatml: the system turn written when there is none (Qwen)
};

// Which known template `jinja` is; `source` names the file in the error for an unknown one.
ChatTemplate detect_chat_template(const std::string& jinja, const std::string& source);

// The chat template of a model directory: tokenizer_config.json's chat_template (with its
// bos_token / eos_token) when the file and the key exist, else ChatFormat::plain.
ChatTemplate chat_template_for_model(const std::string& dir);

// The prompt text for `messages`, ending where the assistant's answer starts
// (add_generation_prompt).  The text includes BOS where the template writes it (llama3, llama2):
// encode it with add_special_tokens = false.
std::string apply_chat_template(const ChatTemplate& chat, const std::vector<ChatMessage>& messages);

}  // namespace hibari
