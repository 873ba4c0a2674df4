#include "store/model_capabilities.h"

#include <gtest/gtest.h>

namespace resident::store {
namespace {

TEST(ModelCapabilities, ToolsAndThinkingComeFromTheChatTemplateAsOllamaReadsIt) {
  EXPECT_TRUE(TemplateMentionsTools("{% if tools %}...{% endif %}"));
  EXPECT_TRUE(TemplateMentionsTools("{{ message.tool_calls }}"));
  EXPECT_FALSE(TemplateMentionsTools("{% for m in messages %}{{ m.content }}{% endfor %}"));
  EXPECT_TRUE(TemplateMentionsThinking("<think>\n{{ r }}\n</think>"));
  EXPECT_FALSE(TemplateMentionsThinking("<think> only opens"));
  EXPECT_TRUE(TemplateMentionsThinking("{% set c = message.content.split('</think>')[-1] %}"));
  EXPECT_FALSE(TemplateMentionsThinking("{{ reasoning_content }}{% set c = content.split('</think>') %}"));

  GgufInfo info;
  info.architecture = "llama";
  info.chat_template = "<think></think>{{ tools }}";
  ModelEntry entry;
  EXPECT_EQ(CapabilitiesOf(entry, info).Names(), (std::vector<std::string>{"completion", "tools", "thinking"}));
  // A Modelfile's Jinja TEMPLATE is what chats render with: its capabilities count.
  entry.template_kind = TemplateKind::kJinja;
  entry.template_text = "{% for m in messages %}{{ m.content }}{% endfor %}";
  EXPECT_EQ(CapabilitiesOf(entry, info).Names(), (std::vector<std::string>{"completion"}));
  // An embedding model; fill-in-the-middle tokens; a vision tower.
  info.kv["llama.pooling_type"] = "1";
  info.kv["llama.vision.block_count"] = "2";
  EXPECT_EQ(CapabilitiesOf(entry, info).Names(), (std::vector<std::string>{"embedding", "vision"}));
  info.kv.erase("llama.pooling_type");
  info.kv["tokenizer.ggml.fim_pre_token_id"] = "5";
  EXPECT_EQ(CapabilitiesOf(entry, info).Names(), (std::vector<std::string>{"completion", "insert", "vision"}));
}

TEST(ModelCapabilities, ErrorsNameTheModelInFullAsOllamaDoes) {
  EXPECT_EQ(FullModelName("tiny:latest"), "registry.ollama.ai/library/tiny:latest");
  EXPECT_EQ(FullModelName("me/m:v2"), "registry.ollama.ai/me/m:v2");
}

}  // namespace
}  // namespace resident::store
