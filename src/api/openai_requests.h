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
};

struct OpenAiChatCall : OpenAiGenerationCall {
  std::vector<runner::ChatMessage> messages;  // at least one; content parts joined (text only)
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
};

// Errors (kInvalidArgument): the body's (see ParseObject), "model is required", a field of the
// wrong type, an option out of range, n other than 1, tools, images; for chat, no messages or a
// message without a role; for completions, a prompt that is not a string or an array of one
// string; for embeddings, no input, or an encoding_format other than "float" and "base64".
Result<OpenAiChatCall> DecodeOpenAiChat(std::string_view body, const RequestDefaults& defaults);
Result<OpenAiCompletionCall> DecodeOpenAiCompletion(std::string_view body, const RequestDefaults& defaults);
Result<OpenAiEmbeddingCall> DecodeOpenAiEmbedding(std::string_view body);

}  // namespace resident::api
