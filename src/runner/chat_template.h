// Renders chat messages with a Jinja chat template (a Modelfile's TEMPLATE or the GGUF's
// tokenizer.chat_template), through llama.cpp's `common` chat layer (common/chat.h, the code
// llama-server uses): tools rendered by the template, thinking switched on or off, and what the
// layer derives from the template for the output: the grammar that constrains tool calls (and
// how it is triggered), the tokens to keep as text, extra stop strings, and the parser that
// reads tool calls and thinking back out of the generated text (chat_output.h). Kept apart
// because it is the only rendering code that sees llama.cpp's common headers (and their vendored
// JSON library).
//
// Rendering has no bound of its own: a template can loop for ever, grow a string until memory
// runs out or recurse until the stack overflows. So it runs only inside the template sandbox
// process (template_sandbox.h), never in a runner.
#pragma once

#include <cstdint>
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

// What a render asks for besides the messages (GenerateRequest's fields of the same names).
struct ChatRenderOptions {
  std::vector<ToolDefinition> tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  bool parallel_tool_calls = true;  // more than one call in an answer (when the template allows)
  Think think = Think::kDefault;
  std::string think_level;  // "low" | "medium" | "high" | "": the template's reasoning_effort
};

// How the chat layer reads a generated answer back (chat_output.h).
struct ChatParseSpec {
  int32_t format = 0;             // llama.cpp's common_chat_format
  std::string generation_prompt;  // the text the answer continues (the parser reads it first)
  std::string parser;             // the chat layer's PEG parser, serialized; "": content only
  bool tools = false;             // tool calls are parsed out
  bool thinking = false;          // thinking is split out
};

// A rendered chat: the prompt, and what generating its answer needs.
struct RenderedChat {
  std::string prompt;
  // The chat layer's grammar for tool calls ("" when none: no tools, or tool_choice "none").
  // Lazy: it applies only from the first match of a trigger pattern (a regular expression) on,
  // so the model may answer in text instead. Not lazy (tool_choice "required"): it holds from the
  // start, and the generation prompt must be fed to it first (it begins with that text).
  std::string grammar;
  bool grammar_lazy = false;
  std::vector<std::string> trigger_patterns;
  std::vector<std::string> preserved_tokens;  // special tokens the answer keeps as text
  std::vector<std::string> additional_stops;  // stop strings the template's format adds
  ChatParseSpec parse;
  // Whether the output must be parsed (tools or thinking); otherwise the text is the content.
  bool parsed() const { return parse.tools || parse.thinking; }
};

class ChatTemplate {
 public:
  // Parses the template (and runs llama.cpp's probes of what it supports, which render it).
  // Errors: kInvalidArgument when the template cannot be parsed.
  static Result<std::unique_ptr<ChatTemplate>> Create(const ChatTemplateSource& source);
  ~ChatTemplate();

  // Renders the messages followed by the assistant's turn. Errors: kInvalidArgument when
  // rendering fails (e.g. the template rejects the roles, a tool's parameters are not a JSON
  // object, an earlier tool call's arguments are not JSON).
  Result<RenderedChat> Render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& options) const;
  Result<std::string> Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The chat layer's grammar for tool_choice "required" lets the model write text before its
// calls (the root rule's optional `until-N?` rule before the calls). Required means calls only,
// as OpenAI defines it, and a model that never writes the call marker would otherwise write text
// until its token limit: this removes that text from the root rule. A grammar of another shape
// is returned as it is.
std::string CallsOnlyGrammar(const std::string& gbnf);

// `text` as a regular expression that matches it literally (ECMAScript syntax).
std::string RegexEscape(const std::string& text);

}  // namespace resident::runner
