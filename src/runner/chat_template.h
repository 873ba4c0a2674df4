// Renders chat messages with a Jinja chat template (a Modelfile's TEMPLATE or the GGUF's
// tokenizer.chat_template), through llama.cpp's `common` chat support. Kept apart because it is
// the only file that sees llama.cpp's common headers (and their vendored JSON library).
//
// Rendering has no bound of its own: a template can loop for ever, grow a string until memory
// runs out or recurse until the stack overflows. So it runs only inside the template sandbox
// process (template_sandbox.h), never in a runner.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "runner/protocol.h"

namespace resident::runner {

// A template and the facts of its model that rendering needs.
struct ChatTemplateSource {
  std::string text;      // the Jinja source; "chatml" for llama.cpp's fallback (a model without one)
  std::string bos, eos;  // the model's BOS and EOS token text (bos_token, eos_token in the template)
  bool add_bos = false;  // the tokenizer adds BOS itself: a rendered leading BOS is dropped
  bool add_eos = false;  // likewise a trailing EOS
  bool overridden = false;  // a Modelfile's TEMPLATE, not the GGUF's
};

class ChatTemplate {
 public:
  // Parses the template (and runs llama.cpp's probes of what it supports, which render it).
  // Errors: kInvalidArgument when the template cannot be parsed.
  static Result<std::unique_ptr<ChatTemplate>> Create(const ChatTemplateSource& source);
  ~ChatTemplate();

  // Errors: kInvalidArgument when rendering fails (e.g. the template rejects the roles).
  Result<std::string> Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace resident::runner
