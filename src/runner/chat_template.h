// Renders chat messages with a model's own Jinja chat template (GGUF tokenizer.chat_template),
// through llama.cpp's `common` chat support. Kept apart because it is the only file that sees
// llama.cpp's common headers (and their vendored JSON library).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "runner/protocol.h"

struct llama_model;

namespace resident::runner {

class ChatTemplate {
 public:
  // Parses the template once: `override_template` when not empty, else the model's own. A model
  // without one gets llama.cpp's fallback (ChatML). Errors: kInvalidArgument when the template
  // cannot be parsed.
  static Result<std::unique_ptr<ChatTemplate>> Create(const llama_model* model, const std::string& override_template);
  ~ChatTemplate();

  // Errors: kInvalidArgument when rendering fails (e.g. the template rejects the roles).
  Result<std::string> Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace resident::runner
