// infer/chat: the strings Hugging Face's templates render for a fixed conversation (written out
// from the template definitions quoted in infer/chat.cpp), detection from tokenizer_config.json,
// and a one-line error for a template hibari does not know.
#include "infer/chat.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/error_matchers.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant. "},
    {"user", " 日本の首都は？"},
    {"assistant", "東京です。"},
    {"user", "Thanks!"},
};

// Meta-Llama-3-8B-Instruct's chat_template
const char* kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
// Llama-2-7b-chat-hf's (abridged to its markers)
const char* kLlama2 =
    "{% if messages[0]['role'] == 'system' %}...{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}...{{ bos_token + '[INST] ' + content.strip() + ' "
    "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}";
// Qwen2-7B-Instruct's
const char* kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

TEST(Chat, Llama3) {
  ChatTemplate t = detect_chat_template(kLlama3, "x");
  ASSERT_EQ(t.format, ChatFormat::llama3);
  t.bos_token = "<|begin_of_text|>";
  EXPECT_EQ(apply_chat_template(t, kConversation),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "You are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n日本の首都は？<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n東京です。<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nThanks!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Chat, Llama2) {
  ChatTemplate t = detect_chat_template(kLlama2, "x");
  ASSERT_EQ(t.format, ChatFormat::llama2);
  t.bos_token = "<s>";
  t.eos_token = "</s>";
  EXPECT_EQ(apply_chat_template(t, kConversation),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant. \n<</SYS>>\n\n 日本の首都は？ [/INST]"
            " 東京です。 </s><s>[INST] Thanks! [/INST]");
  // without a system message
  EXPECT_EQ(apply_chat_template(t, {{"user", "Hi"}}), "<s>[INST] Hi [/INST]");
}

TEST(Chat, ChatMLWithQwensDefaultSystem) {
  ChatTemplate t = detect_chat_template(kQwen2, "x");
  ASSERT_EQ(t.format, ChatFormat::chatml);
  EXPECT_EQ(apply_chat_template(t, kConversation),
            "<|im_start|>system\nYou are a helpful assistant. <|im_end|>\n"
            "<|im_start|>user\n 日本の首都は？<|im_end|>\n"
            "<|im_start|>assistant\n東京です。<|im_end|>\n"
            "<|im_start|>user\nThanks!<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(t, {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, FromTokenizerConfigAndErrors) {
  test::ScratchDir dir("chat");
  const std::string path = dir.file("tokenizer_config.json");
  // no file, or no chat_template: the plain default
  EXPECT_EQ(chat_template_for_model(dir.path.string()).format, ChatFormat::plain);
  EXPECT_EQ(apply_chat_template({}, {{"system", "S"}, {"user", "U"}}),
            "system: S\n\nuser: U\n\nassistant:");
  nlohmann::json j = {{"bos_token", {{"content", "<|begin_of_text|>"}}},
                      {"eos_token", "<|eot_id|>"},
                      {"chat_template", kLlama3}};
  std::ofstream(path) << j.dump();
  const ChatTemplate t = chat_template_for_model(dir.path.string());
  EXPECT_EQ(t.format, ChatFormat::llama3);
  EXPECT_EQ(t.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(t.eos_token, "<|eot_id|>");
  j["chat_template"] = "{{ messages | tojson }}";
  std::ofstream(path) << j.dump();
  EXPECT_TRUE(
      test::one_line_error(test::error_of([&] { chat_template_for_model(dir.path.string()); }),
                           path, "not one hibari knows"));
  std::ofstream(path) << "{\"chat_template\": ";
  EXPECT_TRUE(test::one_line_error(
      test::error_of([&] { chat_template_for_model(dir.path.string()); }), path, "not valid JSON"));
}

}  // namespace
}  // namespace hibari
