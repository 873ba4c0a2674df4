// Decoding of the OpenAI-compatible request bodies (/v1/chat/completions, /v1/completions,
// /v1/embeddings) into native structs, as api/requests.h does for Ollama's. JSON stops here: the
// /v1 handlers see only these types. Every user error is kInvalidArgument (OpenAI's
// invalid_request_error, HTTP 400); no input makes a decoder throw.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/requests.h"
#include "core/keep_alive.h"
#include "core/status.h"
#include "runner/protocol.h"

namespace resident::api {

// The fields the generating routes share. OpenAI's sampling fields become Ollama options
// (max_tokens / max_completion_tokens -> num_predict, temperature, top_p, seed, stop,
// frequency_penalty, presence_penalty), checked as Ollama's `options` are; response_format
// json_object / json_schema becomes a grammar as Ollama's `format` does.
struct OpenAiGenerationCall {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<KeepAlive> keep_alive;  // resident's addition, in Ollama's syntax
  ModelOptions options;
  std::string grammar;  // GBNF; empty: free text
  // Chat: `logprobs` true and `top_logprobs`; completions: `logprobs` N (N > 0: on, N most
  // likely tokens at each position).
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

struct OpenAiChatCall : OpenAiGenerationCall {
  std::vector<runner::ChatMessage> messages;  // at least one; content parts joined (text only)
  ToolUse tools;     // tools, tool_choice, parallel_tool_calls
  ThinkValue think;  // from reasoning_effort (or reasoning.effort), as Ollama maps it
};

struct OpenAiCompletionCall : OpenAiGenerationCall {
  std::string prompt;  // a string, or an array of exactly one string
  std::string suffix;  // fill-in-the-middle: text after the insertion point
};

struct OpenAiEmbeddingCall {
  std::string model;
  std::optional<KeepAlive> keep_alive;
  std::vector<std::string> inputs;  // at least one
  bool base64 = false;              // encoding_format "base64": little-endian float32
  int32_t dimensions = 0;           // as EmbedCall::dimensions
};

// As Ollama's OpenAI layer: a request without temperature samples at 1.0 and without top_p at
// 1.0 (over the Modelfile's values); `n` is ignored (one choice); reasoning_effort "none" is
// think off, "minimal" low, "low"/"medium"/"high"/"max" that level, "xhigh"/"ultra" max.
// Errors (kInvalidArgument): the body's (see ParseObject), "model is required", a field of the
// wrong type, an option out of range, images, tools beyond DecodeTools' bounds, an unknown
// reasoning effort (Ollama's message); for chat, no messages or a message without a role; for
// completions, a prompt that is not a string or an array of one string; for embeddings, no
// input, or an encoding_format other than "float" and "base64".
Result<OpenAiChatCall> DecodeOpenAiChat(std::string_view body, const RequestDefaults& defaults);
Result<OpenAiCompletionCall> DecodeOpenAiCompletion(std::string_view body, const RequestDefaults& defaults);
Result<OpenAiEmbeddingCall> DecodeOpenAiEmbedding(std::string_view body);

}  // namespace resident::api
