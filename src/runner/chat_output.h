// Reads a chat answer back as it is generated, with llama.cpp's chat layer (common/chat.h:
// common_chat_parse, the parser llama-server uses): the thinking, the content and the tool
// calls, for the template families it knows (Qwen 2.5/3, Hermes, Llama 3.x, Mistral, DeepSeek
// R1, GPT-OSS and the formats its auto-parser derives from a template). Parsing is not template
// execution: it runs in the runner, on text the model generated, with the parser the template
// sandbox built (chat_template.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runner/chat_template.h"
#include "runner/protocol.h"

namespace resident::runner {

// What an answer added since the previous call: more thinking, more content, and the tool calls
// that became complete (each is reported once, whole).
struct ChatDelta {
  std::string thinking;
  std::string content;
  std::vector<ToolCall> tool_calls;
  bool empty() const { return thinking.empty() && content.empty() && tool_calls.empty(); }
};

class ChatOutput {
 public:
  // `parallel_tool_calls` false: the answer's first call only (the chat layer's grammar for some
  // formats allows more whatever it is told, e.g. Qwen 2.5's one <tool_call> after another).
  // Errors: kInvalidArgument when the serialized parser does not load.
  static Result<std::unique_ptr<ChatOutput>> Create(const ChatParseSpec& spec, bool parallel_tool_calls = true);
  ~ChatOutput();

  // Adds generated text (whole UTF-8 characters) and returns what it added to the answer. A
  // tool call is complete once a later one begins; the last one at Finish.
  ChatDelta Add(std::string_view text);
  // The answer is over: the rest, with every tool call whose arguments are complete JSON. An
  // answer cut short (`truncated`: its token limit) keeps what was complete; one that does not
  // match the template's format keeps its text as content.
  ChatDelta Finish(bool truncated);
  // Without parallel tool calls: whether the answer's one call is whole (its name and its
  // arguments a complete JSON object), so that nothing more needs generating.
  bool Complete() const;

 private:
  struct Impl;
  explicit ChatOutput(std::unique_ptr<Impl> impl);
  ChatDelta Update(bool partial, bool final);
  std::unique_ptr<Impl> impl_;
};

// Ollama's tool call ids: "call_" and 8 random lowercase letters and digits.
std::string NewToolCallId();

}  // namespace resident::runner
