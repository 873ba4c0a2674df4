#include "api/openai_requests.h"

#include <utility>

#include <nlohmann/json.hpp>

namespace resident::api {
namespace {

using nlohmann::json;

Status TypeError(const char* field, const char* want) {
  return Status::InvalidArgument(std::string("invalid value for \"") + field + "\": expected " + want);
}

// An optional string field: *out untouched when absent or null.
Status GetString(const json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return TypeError(field, "a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status GetBool(const json& j, const char* field, bool* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return TypeError(field, "true or false");
  *out = it->get<bool>();
  return Status::Ok();
}

Status GetModel(const json& j, std::string* model) {
  RESIDENT_RETURN_IF_ERROR(GetString(j, "model", model));
  if (model->empty()) return Status::InvalidArgument("model is required");
  return Status::Ok();
}

Status GetKeepAlive(const json& j, std::optional<KeepAlive>* out) {
  auto ka = DecodeKeepAlive(j);
  if (!ka.ok()) return ka.status();
  *out = *ka;
  return Status::Ok();
}

// response_format: {"type":"text"}, {"type":"json_object"} or {"type":"json_schema",
// "json_schema":{"schema":{...}}}, as a grammar.
Status DecodeResponseFormat(const json& j, std::string* grammar) {
  auto rf = j.find("response_format");
  if (rf == j.end() || rf->is_null()) return Status::Ok();
  if (!rf->is_object()) return TypeError("response_format", "an object");
  std::string type;
  RESIDENT_RETURN_IF_ERROR(GetString(*rf, "type", &type));
  json format;  // Ollama's `format`: null (free text), "json", or a schema
  if (type == "json_object") {
    format = "json";
  } else if (type == "json_schema") {
    auto js = rf->find("json_schema");
    if (js == rf->end() || !js->is_object() || !js->contains("schema")) {
      return Status::InvalidArgument("response_format json_schema needs json_schema.schema");
    }
    format = (*js)["schema"];
  } else if (type != "text" && !type.empty()) {
    return Status::InvalidArgument("invalid response_format type \"" + type + "\"");
  }
  auto g = GrammarForFormat(format);
  if (!g.ok()) return g.status();
  *grammar = std::move(g).value();
  return Status::Ok();
}

// Ollama's thinkFromReasoningEffort (openai/openai.go).
Status ThinkFromReasoningEffort(const std::string& effort, ThinkValue* think) {
  if (effort.empty()) return Status::Ok();
  think->given = true;
  think->on = true;
  if (effort == "none") {
    think->on = false;
  } else if (effort == "minimal") {
    think->level = "low";
  } else if (effort == "low" || effort == "medium" || effort == "high" || effort == "max") {
    think->level = effort;
  } else if (effort == "xhigh" || effort == "ultra") {
    think->level = "max";
  } else {
    return Status::InvalidArgument("invalid reasoning value: \"" + effort +
                                   "\" (must be \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", "
                                   "\"ultra\", \"max\", or \"none\")");
  }
  return Status::Ok();
}

// `chat`: /v1/chat/completions (else /v1/completions, whose penalties Ollama always sets).
Status DecodeGeneration(const json& j, const RequestDefaults& defaults, bool chat, OpenAiGenerationCall* c) {
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(j, &c->keep_alive));
  RESIDENT_RETURN_IF_ERROR(GetModel(j, &c->model));
  RESIDENT_RETURN_IF_ERROR(GetBool(j, "stream", &c->stream));
  if (auto so = j.find("stream_options"); so != j.end() && !so->is_null()) {
    if (!so->is_object()) return TypeError("stream_options", "an object");
    RESIDENT_RETURN_IF_ERROR(GetBool(*so, "include_usage", &c->include_usage));
  }
  // `n` is not read: Ollama has no such field and answers one choice whatever it asks.
  // OpenAI fields -> Ollama options, then checked as Ollama's are.
  json opts = json::object();
  auto copy = [&](const char* from, const char* to) {
    if (auto it = j.find(from); it != j.end() && !it->is_null()) opts[to] = *it;
  };
  copy("max_tokens", "num_predict");
  copy("max_completion_tokens", "num_predict");
  copy("temperature", "temperature");
  copy("top_p", "top_p");
  copy("seed", "seed");
  copy("stop", "stop");
  copy("frequency_penalty", "frequency_penalty");
  copy("presence_penalty", "presence_penalty");
  // Ollama's OpenAI layer sends these when the request has none (over the Modelfile's).
  if (!opts.contains("temperature")) opts["temperature"] = 1.0;
  if (!opts.contains("top_p") || (!chat && opts["top_p"] == 0)) opts["top_p"] = 1.0;
  if (!chat) {
    if (!opts.contains("frequency_penalty")) opts["frequency_penalty"] = 0.0;
    if (!opts.contains("presence_penalty")) opts["presence_penalty"] = 0.0;
  }
  if (chat) {
    RESIDENT_RETURN_IF_ERROR(GetBool(j, "logprobs", &c->logprobs));
    if (auto it = j.find("top_logprobs"); it != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeTopLogprobs(*it, &c->top_logprobs));
  } else if (auto it = j.find("logprobs"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return TypeError("logprobs", "an integer");
    if (it->get<int64_t>() > 0) {
      RESIDENT_RETURN_IF_ERROR(DecodeTopLogprobs(*it, &c->top_logprobs));
      c->logprobs = true;
    }
  }
  auto options = DecodeOptionsJson(opts, defaults);
  if (!options.ok()) return options.status();
  c->options = std::move(options).value();
  return DecodeResponseFormat(j, &c->grammar);
}

// Message content: a string, or an array of parts of which only text is supported.
Status DecodeContent(const json& content, std::string* out) {
  if (content.is_null()) return Status::Ok();
  if (content.is_string()) {
    *out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) return TypeError("content", "a string or an array of parts");
  for (const auto& part : content) {
    if (!part.is_object()) return TypeError("content", "parts that are objects");
    std::string type;
    RESIDENT_RETURN_IF_ERROR(GetString(part, "type", &type));
    if (type == "text") {
      auto t = part.find("text");
      if (t == part.end() || !t->is_string()) return TypeError("text", "a string");
      *out += t->get<std::string>();
    } else if (type == "image_url") {
      return Status::InvalidArgument("images are not supported: resident serves text models only (no vision projector)");
    } else {
      return Status::InvalidArgument("unsupported content part type \"" + type + "\"");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<OpenAiChatCall> DecodeOpenAiChat(std::string_view body, const RequestDefaults& defaults) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  OpenAiChatCall c;
  RESIDENT_RETURN_IF_ERROR(DecodeGeneration(j, defaults, /*chat=*/true, &c));
  if (auto t = j.find("tools"); t != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeTools(*t, &c.tools.tools));
  if (auto t = j.find("tool_choice"); t != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeToolChoice(*t, &c.tools));
  RESIDENT_RETURN_IF_ERROR(GetBool(j, "parallel_tool_calls", &c.tools.parallel_calls));
  std::string effort;
  if (auto r = j.find("reasoning"); r != j.end() && !r->is_null()) {
    if (!r->is_object()) return TypeError("reasoning", "an object");
    RESIDENT_RETURN_IF_ERROR(GetString(*r, "effort", &effort));
  } else {
    RESIDENT_RETURN_IF_ERROR(GetString(j, "reasoning_effort", &effort));
  }
  RESIDENT_RETURN_IF_ERROR(ThinkFromReasoningEffort(effort, &c.think));
  auto m = j.find("messages");
  if (m == j.end() || !m->is_array() || m->empty()) {
    return Status::InvalidArgument("messages is required: a non-empty array");
  }
  for (const auto& msg : *m) {
    if (!msg.is_object()) return TypeError("messages", "objects");
    runner::ChatMessage cm;
    RESIDENT_RETURN_IF_ERROR(GetString(msg, "role", &cm.role));
    if (cm.role.empty()) return Status::InvalidArgument("every message needs a role");
    if (auto content = msg.find("content"); content != msg.end()) {
      RESIDENT_RETURN_IF_ERROR(DecodeContent(*content, &cm.content));
    }
    RESIDENT_RETURN_IF_ERROR(GetString(msg, "reasoning", &cm.thinking));
    RESIDENT_RETURN_IF_ERROR(GetString(msg, "tool_call_id", &cm.tool_call_id));
    if (cm.role == "tool") RESIDENT_RETURN_IF_ERROR(GetString(msg, "name", &cm.tool_name));
    if (auto calls = msg.find("tool_calls"); calls != msg.end() && !calls->is_null()) {
      RESIDENT_RETURN_IF_ERROR(DecodeToolCalls(*calls, &cm.tool_calls));
    }
    c.messages.push_back(std::move(cm));
  }
  // A tool result without its function's name takes it from the call it answers (the latest
  // call with that id), as Ollama does.
  for (runner::ChatMessage& cm : c.messages) {
    if (cm.role != "tool" || !cm.tool_name.empty() || cm.tool_call_id.empty()) continue;
    for (auto it = c.messages.rbegin(); it != c.messages.rend() && cm.tool_name.empty(); ++it) {
      for (const runner::ToolCall& call : it->tool_calls) {
        if (call.id == cm.tool_call_id) cm.tool_name = call.name;
      }
    }
  }
  return c;
}

Result<OpenAiCompletionCall> DecodeOpenAiCompletion(std::string_view body, const RequestDefaults& defaults) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  OpenAiCompletionCall c;
  RESIDENT_RETURN_IF_ERROR(DecodeGeneration(j, defaults, /*chat=*/false, &c));
  auto p = j.find("prompt");
  const json* prompt = p == j.end() ? nullptr : &*p;
  if (prompt && prompt->is_array() && prompt->size() == 1) prompt = &(*prompt)[0];
  if (!prompt || !prompt->is_string()) {
    return Status::InvalidArgument("prompt is required: a string (or an array of one string)");
  }
  c.prompt = prompt->get<std::string>();
  RESIDENT_RETURN_IF_ERROR(GetString(j, "suffix", &c.suffix));
  return c;
}

Result<OpenAiEmbeddingCall> DecodeOpenAiEmbedding(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  OpenAiEmbeddingCall c;
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(j, &c.keep_alive));
  RESIDENT_RETURN_IF_ERROR(GetModel(j, &c.model));
  auto in = j.find("input");
  if (in == j.end() || in->is_null()) return Status::InvalidArgument("invalid input");
  if (in->is_string()) {
    c.inputs.push_back(in->get<std::string>());
  } else if (in->is_array()) {
    for (const auto& v : *in) {
      if (!v.is_string()) return TypeError("input", "a string or an array of strings");
      c.inputs.push_back(v.get<std::string>());
    }
  } else {
    return TypeError("input", "a string or an array of strings");
  }
  if (c.inputs.empty()) return Status::InvalidArgument("invalid input");
  std::string encoding = "float";
  RESIDENT_RETURN_IF_ERROR(GetString(j, "encoding_format", &encoding));
  if (encoding != "float" && encoding != "base64") {
    return Status::InvalidArgument("encoding_format must be \"float\" or \"base64\"");
  }
  c.base64 = encoding == "base64";
  if (auto d = j.find("dimensions"); d != j.end() && !d->is_null()) {
    if (!d->is_number_integer() || !std::in_range<int32_t>(d->get<int64_t>())) return TypeError("dimensions", "an integer");
    c.dimensions = d->get<int32_t>();
  }
  return c;
}

}  // namespace resident::api
