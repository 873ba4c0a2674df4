#include "store/model_capabilities.h"

#include "store/model_name.h"

namespace resident::store {

namespace {

bool Contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace

bool TemplateMentionsTools(std::string_view t) { return Contains(t, "tools") || Contains(t, "tool_call"); }

bool TemplateMentionsThinking(std::string_view t) {
  if (Contains(t, "<think>") && Contains(t, "</think>")) return true;
  // Some Qwen/DeepSeek templates strip earlier reasoning by splitting content at </think>.
  return (Contains(t, "content.split('</think>')") || Contains(t, "content.split(\"</think>\")")) &&
         !Contains(t, "reasoning_content") && !Contains(t, "<SPECIAL_12>");
}

std::string ChatTemplateOf(const ModelEntry& entry, const GgufInfo& info) {
  return entry.template_kind == TemplateKind::kJinja ? entry.template_text : info.chat_template;
}

ModelCapabilities CapabilitiesOf(const ModelEntry& entry, const GgufInfo& info) {
  ModelCapabilities c;
  const std::string arch = info.architecture;
  auto has = [&](const std::string& key) { return info.kv.count(key) > 0; };
  if (has(arch + ".pooling_type")) c.embedding = true;
  else c.completion = true;
  const std::string tmpl = ChatTemplateOf(entry, info);
  c.tools = TemplateMentionsTools(tmpl);
  c.thinking = TemplateMentionsThinking(tmpl) || arch == "gpt-oss" || arch == "gptoss";
  // resident fills in the middle with the vocabulary's FIM tokens (Ollama asks its Go template).
  c.insert = c.completion && (has("tokenizer.ggml.fim_pre_token_id") || has("tokenizer.ggml.prefix_token_id"));
  c.vision = has(arch + ".vision.block_count");
  return c;
}

std::vector<std::string> ModelCapabilities::Names() const {
  std::vector<std::string> names;
  if (completion) names.push_back("completion");
  if (embedding) names.push_back("embedding");
  if (tools) names.push_back("tools");
  if (thinking) names.push_back("thinking");
  if (insert) names.push_back("insert");
  if (vision) names.push_back("vision");
  return names;
}

std::string FullModelName(std::string_view name) {
  auto parsed = ParseModelName(name);
  if (!parsed.ok()) return std::string(name);
  return parsed->host + "/" + parsed->ns + "/" + parsed->model + ":" + parsed->tag;
}

}  // namespace resident::store
