// Decoding of Ollama request bodies into native structs. JSON stops here: handlers and the
// scheduler see only these types. Every user error becomes kInvalidArgument with Ollama's
// message where Ollama has one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/keep_alive.h"
#include "core/status.h"
#include "runner/protocol.h"

namespace resident::api {

// Server-wide defaults that requests start from.
struct RequestDefaults {
  int32_t num_ctx = 2048;
  int32_t num_batch = 512;
  int32_t num_thread = 0;  // 0: physical cores
};

// The `options` object: load-time options (a change reloads the model) and sampling options.
struct ModelOptions {
  runner::LoadRequest load;  // model_path left empty
  runner::SamplingOptions sampling;
  int32_t num_predict = -1;
  std::vector<std::string> stop;
};

struct GenerateCall {
  std::string model;
  std::string prompt;
  std::string system;
  bool raw = false;
  bool stream = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
  std::vector<int32_t> context;
};

struct ChatCall {
  std::string model;
  std::vector<runner::ChatMessage> messages;
  bool stream = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
};

struct EmbedCall {
  std::string model;
  std::vector<std::string> inputs;
  bool truncate = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
};

struct ModelCall {  // /api/show, /api/delete...
  std::string model;
};

Result<GenerateCall> DecodeGenerate(std::string_view body, const RequestDefaults& defaults);
Result<ChatCall> DecodeChat(std::string_view body, const RequestDefaults& defaults);
// legacy: /api/embeddings with "prompt" instead of "input".
Result<EmbedCall> DecodeEmbed(std::string_view body, const RequestDefaults& defaults, bool legacy);

}  // namespace resident::api
