// Decoding of Ollama request bodies into native structs. JSON stops here: handlers and the
// scheduler see only these types. Every user error becomes kInvalidArgument with Ollama's
// message where Ollama has one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/keep_alive.h"
#include "core/status.h"
#include "runner/protocol.h"
#include "store/modelfile.h"

namespace resident::api {

// Server-wide defaults that requests start from.
struct RequestDefaults {
  int32_t num_ctx = 4096;  // Ollama's default on a machine without a large GPU
  int32_t num_batch = 512;
  int32_t num_thread = 0;  // 0: physical cores
};

// The `options` object: load-time options (a change reloads the model) and sampling options.
// Decoding validates the request's own options at once (a 400 before any model lookup); the
// values a handler uses come from ResolveOptions, which lays them over the model's Modelfile
// PARAMETER lines.
struct ModelOptions {
  runner::LoadRequest load;  // model_path left empty
  runner::SamplingOptions sampling;
  int32_t num_predict = -1;
  std::vector<std::string> stop;
  // The request's `options` object as JSON text, "" when absent. Kept for ResolveOptions.
  std::string request_json;
};

// How a request's `template` is treated. Ollama's templates are Go text/template programs, which
// resident cannot execute; the model's own Jinja chat template (GGUF tokenizer.chat_template) is
// used instead. The one template that is recognised is the pass-through "{{ .Prompt }}" (spaces
// and trim markers allowed), which clients use to send a prompt untemplated: it means `raw`.
// Any other template text is accepted and ignored (logged), so that clients sending one work.
enum class TemplateUse { kModel, kPassThrough };
TemplateUse ClassifyTemplate(std::string_view go_template);

// Ollama's `think`: absent or null (the model's default: on for a model that thinks), true or
// false, or an effort level ("low", "medium", "high", "max": on, with that reasoning effort).
struct ThinkValue {
  bool given = false;
  bool on = false;
  std::string level;
};

// A chat's tools: what the model may call, and whether it must (OpenAI's tool_choice; a named
// function leaves that tool alone, required).
struct ToolUse {
  std::vector<runner::ToolDefinition> tools;
  runner::ToolChoice choice = runner::ToolChoice::kAuto;
  std::string function;          // tool_choice {"type":"function","function":{"name":...}}
  bool parallel_calls = true;    // parallel_tool_calls
};

// Bounds on tools, checked before any work: the chat layer builds a grammar of every tool's
// schema, which the sampler follows at every token, and renders each into the prompt.
inline constexpr size_t kMaxTools = 128;               // OpenAI's bound
inline constexpr size_t kMaxToolsBytes = 256u << 10;   // every tool's JSON together

struct GenerateCall {
  std::string model;
  std::string prompt;
  std::string system;
  bool raw = false;
  bool stream = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
  std::vector<int32_t> context;
  std::string suffix;         // fill-in-the-middle: text after the insertion point
  std::string template_text;  // see TemplateUse
  std::string grammar;        // GBNF from `format` ("json" or a JSON schema); empty: free text
  ThinkValue think;
  bool logprobs = false;      // each generated token's log-probability
  int32_t top_logprobs = 0;   // and the most likely tokens at each position (0..20)
};

struct ChatCall {
  std::string model;
  std::vector<runner::ChatMessage> messages;
  std::string grammar;  // from `format`, as for generate
  bool stream = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
  // Messages may carry tool calls (assistant), tool results (role "tool", tool_name), and
  // thinking. `tool_choice` is resident's addition (OpenAI's values); Ollama has none.
  ToolUse tools;
  ThinkValue think;
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

struct EmbedCall {
  std::string model;
  std::vector<std::string> inputs;
  bool truncate = true;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
  // Above 0 and below the model's width: each embedding is cut to its first `dimensions` values
  // and normalized again (Ollama's rule); otherwise whole.
  int32_t dimensions = 0;
};

// The model-management routes (api/model_routes.h).
struct ShowCall {
  std::string model;
  bool verbose = false;  // model_info with every array in full (the tokenizer's tokens...)
};

struct CreateCall {
  std::string model;
  // The request's "modelfile" text parsed, or Ollama's structured fields ("from", "template",
  // "system", "parameters", "messages", "license") laid out as one.
  store::Modelfile modelfile;
  bool stream = true;
};

struct CopyCall {
  std::string source;
  std::string destination;
};

struct DeleteCall {
  std::string model;
};

// /api/pull and /api/push: {"model" (or "name"), "insecure", "stream"}.
struct TransferCall {
  std::string model;
  bool insecure = false;  // plain HTTP to the registry
  bool stream = true;
};

// Arrays and objects nest at most this deep in a request body. Serializing or walking a JSON value
// recurses once per level (nlohmann's dump, the JSON-schema converter), so a deeper body (a few
// hundred KB of "[") would overflow a handler thread's stack and crash the whole server. Real
// requests, JSON schemas included, stay far below.
inline constexpr int kMaxJsonDepth = 256;

// A body holds at most this many JSON values (array elements and object members). A parsed
// value takes 16 bytes and more, several times what its text takes: 32 MB of "[0,0,0,..." would
// become half a gigabyte before any field could be checked. The largest real bodies (a context
// of a million tokens, ten thousand embedding inputs) stay below.
inline constexpr size_t kMaxJsonValues = 1u << 20;

// ParseObject checks every body with this before parsing it, in one pass over its text.
// Errors: kInvalidArgument when `body` nests arrays and objects deeper than kMaxJsonDepth or
// holds more than kMaxJsonValues values; Ok otherwise, JSON or not (that is the parser's
// business).
Status CheckJsonShape(std::string_view body);

// A request body as a JSON object, every route's first step. Errors (kInvalidArgument): an
// empty body, invalid JSON, a shape CheckJsonShape refuses, anything but an object.
Result<nlohmann::json> ParseObject(std::string_view body);

// The options a request runs with: server defaults, then the model's Modelfile parameters
// (validated ("name", "value") text pairs: numbers, booleans, "stop" once per stop string), then
// the request's own options (request_json), each overriding the one before; a request's `stop`
// replaces the model's. Errors: kInvalidArgument naming the parameter that does not decode.
Result<ModelOptions> ResolveOptions(const ModelOptions& request,
                                    const std::vector<std::pair<std::string, std::string>>& parameters,
                                    const RequestDefaults& defaults);

// A `format` schema's bounds. Its grammar constrains every sampled token: the sampler follows
// each alternative (an enum value, an anyOf/oneOf branch) at once, so their number scales the
// time of every token (an enum of 100,000 values once took a minute). The bounds are OpenAI's
// for structured outputs.
inline constexpr size_t kMaxFormatBytes = 64u << 10;
inline constexpr size_t kMaxFormatAlternatives = 1000;

// The GBNF for a `format` value: "json" (any object) or a JSON schema object; "" for null/"".
// Errors: kInvalidArgument for another string or type, a schema over kMaxFormatBytes or with
// more than kMaxFormatAlternatives enum values and anyOf/oneOf branches in all, or a schema that
// cannot be converted.
Result<std::string> GrammarForFormat(const nlohmann::json& format);

// For routes with other shapes (OpenAI): an Ollama-style options object, validated, and the
// keep_alive field of a body (nullopt when absent). Errors: kInvalidArgument as for the above.
Result<ModelOptions> DecodeOptionsJson(const nlohmann::json& options, const RequestDefaults& defaults);
Result<std::optional<KeepAlive>> DecodeKeepAlive(const nlohmann::json& body);

// Shared by Ollama's and OpenAI's chat decoders. Errors: kInvalidArgument.
// `tools`: an array of {"type":"function","function":{"name","description","parameters"}},
// within kMaxTools and kMaxToolsBytes, every schema within GrammarForFormat's bounds (their
// enum values and anyOf/oneOf branches counted together).
Status DecodeTools(const nlohmann::json& tools, std::vector<runner::ToolDefinition>* out);
// `tool_choice`: "auto", "none", "required" or {"type":"function","function":{"name":...}}.
Status DecodeToolChoice(const nlohmann::json& choice, ToolUse* out);
// A message's `tool_calls`: [{"id"?, "type"?, "function":{"name","arguments"}}], arguments a JSON
// object (Ollama) or a string holding one (OpenAI).
Status DecodeToolCalls(const nlohmann::json& calls, std::vector<runner::ToolCall>* out);
// `think` as Ollama reads it.
Status DecodeThink(const nlohmann::json& think, ThinkValue* out);
// `top_logprobs`: an integer from 0 to 20 (Ollama's message otherwise).
Status DecodeTopLogprobs(const nlohmann::json& value, int32_t* out);

Result<GenerateCall> DecodeGenerate(std::string_view body, const RequestDefaults& defaults);
Result<ChatCall> DecodeChat(std::string_view body, const RequestDefaults& defaults);
// legacy: /api/embeddings with "prompt" instead of "input".
Result<EmbedCall> DecodeEmbed(std::string_view body, const RequestDefaults& defaults, bool legacy);

// Errors (kInvalidArgument): the body's (see ParseObject), "model is required" ("model", or
// Ollama's older "name"; "source" and "destination" for copy), a field of the wrong type. The
// names are not parsed here: the handler checks them against the store.
Result<ShowCall> DecodeShow(std::string_view body);
Result<CopyCall> DecodeCopy(std::string_view body);
Result<DeleteCall> DecodeDelete(std::string_view body);
Result<TransferCall> DecodeTransfer(std::string_view body);
// Also: the Modelfile's own errors ("line N: ..."), "neither 'from' nor 'modelfile' was
// specified", a parameter outside the option table, a message role other than system, user and
// assistant, and what resident does not support (quantize, adapters, uploaded files).
Result<CreateCall> DecodeCreate(std::string_view body);

}  // namespace resident::api
