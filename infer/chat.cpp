// infer/chat.cpp — see chat.h.  Each render function is its Jinja template written out; the
// template text is quoted above each.
#include "infer/chat.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_fields.h"

namespace hibari {

namespace {

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Python's str.strip() for the whitespace Jinja's trim/strip removes.
std::string strip(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(space);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(space) - a + 1);
}

// Meta-Llama-3-8B-Instruct:
//   {% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] +
//   '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}
//   {% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
//   {% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif
//   %}
std::string render_llama3(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string out = t.bos_token;
  for (const ChatMessage& m : messages)
    out +=
        "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// Llama-2-7b-chat-hf: a leading system message joins the first user turn as
//   '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content;
//   user:      bos_token + '[INST] ' + content.strip() + ' [/INST]'
//   assistant: ' ' + content.strip() + ' ' + eos_token
// (no generation prompt: the answer follows "[/INST]").
std::string render_llama2(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  size_t first = 0;
  std::string system;
  bool has_system = false;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    has_system = true;
    first = 1;
  }
  std::string out;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    std::string content = m.content;
    if (i == first && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    if (m.role == "user")
      out += t.bos_token + "[INST] " + strip(content) + " [/INST]";
    else if (m.role == "assistant")
      out += " " + strip(content) + " " + t.eos_token;
    else
      fail(
          "chat: the Llama-2 template takes user and assistant turns after one system message, "
          "not '" +
          m.role + "'");
  }
  return out;
}

// ChatML (Qwen2, Swallow-instruct):
//   {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}
//   {{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}
//   {{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}
//   {% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
// (the default system turn only where the template has one).
std::string render_chatml(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string out;
  if (!t.default_system.empty() && (messages.empty() || messages[0].role != "system"))
    out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  for (const ChatMessage& m : messages)
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  return out + "<|im_start|>assistant\n";
}

// hibari's default for models without a template: labelled turns, the answer after "assistant:".
std::string render_plain(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) out += m.role + ": " + m.content + "\n\n";
  return out + "assistant:";
}

// A special token in tokenizer_config.json: a string or {"content": "..."}.
std::string token_text(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "";
  const nlohmann::json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace

ChatTemplate detect_chat_template(const std::string& jinja, const std::string& source) {
  ChatTemplate t;
  if (contains(jinja, "<|start_header_id|>") && contains(jinja, "<|eot_id|>")) {
    if (contains(jinja, "Cutting Knowledge Date") || contains(jinja, "tools"))
      fail_file(source,
                "chat_template is Llama-3.1's (tools, dates), which hibari does not render");
    t.format = ChatFormat::llama3;
  } else if (contains(jinja, "<|im_start|>") && contains(jinja, "<|im_end|>")) {
    t.format = ChatFormat::chatml;
    const char* qwen_default = "You are a helpful assistant.";
    if (contains(jinja, qwen_default) && !contains(jinja, "tools"))
      t.default_system = qwen_default;
    else if (contains(jinja, "tools"))
      fail_file(source,
                "chat_template is a ChatML template with tool calls, which hibari does not "
                "render");
  } else if (contains(jinja, "[INST]") && contains(jinja, "<<SYS>>")) {
    t.format = ChatFormat::llama2;
  } else {
    fail_file(source, "chat_template is not one hibari knows (Llama-3, Llama-2 [INST], ChatML)");
  }
  return t;
}

ChatTemplate chat_template_for_model(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(path, "not valid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number such as 1e309
    fail_file(path, "not valid JSON (" + json_exception_text(e) + ")");
  }
  if (!j.is_object() || !j.contains("chat_template")) return {};
  std::string jinja;
  const nlohmann::json& ct = j["chat_template"];
  if (ct.is_string()) {
    jinja = ct.get<std::string>();
  } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, ...]
    for (const nlohmann::json& e : ct)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string())
        jinja = e["template"].get<std::string>();
    if (jinja.empty()) fail_file(path, "chat_template has no \"default\" entry");
  } else {
    fail_file(path, "chat_template is neither a string nor a list of named templates");
  }
  ChatTemplate t = detect_chat_template(jinja, path);
  t.bos_token = token_text(j, "bos_token");
  t.eos_token = token_text(j, "eos_token");
  return t;
}

std::string apply_chat_template(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  switch (t.format) {
    case ChatFormat::llama3:
      return render_llama3(t, messages);
    case ChatFormat::llama2:
      return render_llama2(t, messages);
    case ChatFormat::chatml:
      return render_chatml(t, messages);
    case ChatFormat::plain:
      break;
  }
  return render_plain(messages);
}

}  // namespace hibari
