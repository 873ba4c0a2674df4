// What a model can do, as Ollama's /api/show reports it in `capabilities` and as its chat and
// generate routes check it: "completion" (or "embedding" for a model with a pooling type),
// "tools" and "thinking" from the chat template, "insert" from fill-in-the-middle tokens,
// "vision" from a vision tower. Ollama decides tools and thinking from the text of a GGUF's
// Jinja chat template (server/images.go: chatTemplateCapabilities); so does resident, on the
// Jinja template it renders the model's chats with.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/gguf_metadata.h"
#include "store/model_catalog.h"

namespace resident::store {

struct ModelCapabilities {
  bool completion = false;
  bool embedding = false;
  bool tools = false;
  bool thinking = false;
  bool insert = false;
  bool vision = false;
  // In Ollama's order: completion (or embedding), tools, thinking, insert, vision.
  std::vector<std::string> Names() const;
};

// Ollama's rules on a Jinja chat template's text: tools when it mentions "tools" or
// "tool_call"; thinking when it has both "<think>" and "</think>", or splits content at
// "</think>" (and is not a reasoning_content template).
bool TemplateMentionsTools(std::string_view chat_template);
bool TemplateMentionsThinking(std::string_view chat_template);

// The Jinja chat template resident renders this model's chats with: its TEMPLATE when that is
// Jinja, else the GGUF's own (empty when it has none: llama.cpp's ChatML fallback, which has no
// tools and no thinking).
std::string ChatTemplateOf(const ModelEntry& entry, const GgufInfo& info);

ModelCapabilities CapabilitiesOf(const ModelEntry& entry, const GgufInfo& info);

// The name Ollama's capability errors use: host, namespace, model and tag in full
// ("registry.ollama.ai/library/m:latest"); the display name when it does not parse.
std::string FullModelName(std::string_view name);

}  // namespace resident::store
