#include "api/requests.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/option_table.h"
#include "runner/json_schema_grammar.h"
#include "store/model_catalog.h"

namespace resident::api {
namespace {

using nlohmann::json;

const char* KindName(const json& v) {
  switch (v.type()) {
    case json::value_t::boolean: return "bool";
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::null: return "null";
    default: return "number";
  }
}

Status WrongType(const char* field, const char* want, const json& got) {
  return Status::InvalidArgument(std::string("invalid value for \"") + field + "\": expected " + want + ", got " +
                                 KindName(got));
}

Status GetString(const json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return WrongType(field, "a string", *it);
  *out = it->get<std::string>();
  return Status::Ok();
}

Status GetBool(const json& j, const char* field, bool* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return WrongType(field, "true or false", *it);
  *out = it->get<bool>();
  return Status::Ok();
}

// A string field that must be there and not be empty: `field`, else (when given) the older `alt`.
Status GetRequired(const json& j, const char* field, const char* alt, std::string* out) {
  RESIDENT_RETURN_IF_ERROR(GetString(j, field, out));
  if (out->empty() && alt) RESIDENT_RETURN_IF_ERROR(GetString(j, alt, out));
  if (out->empty()) return Status::InvalidArgument(std::string(field) + " is required");
  return Status::Ok();
}

// True when the field is there with a value that asks for something (not null, "", [] or {}).
bool Present(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return false;
  if (it->is_string()) return !it->get_ref<const std::string&>().empty();
  if (it->is_array() || it->is_object()) return !it->empty();
  return true;
}

Status GetModel(const json& j, std::string* out) {
  RESIDENT_RETURN_IF_ERROR(GetString(j, "model", out));
  if (out->empty()) {
    // Ollama also accepts the deprecated "name".
    RESIDENT_RETURN_IF_ERROR(GetString(j, "name", out));
  }
  if (out->empty()) return Status::InvalidArgument("model is required");
  return Status::Ok();
}

Status GetKeepAlive(const json& j, std::optional<KeepAlive>* out) {
  auto it = j.find("keep_alive");
  if (it == j.end() || it->is_null()) return Status::Ok();
  KeepAliveInput in;
  if (it->is_number()) {
    in.kind = KeepAliveInput::Kind::kNumber;
    in.number = it->get<double>();
  } else if (it->is_string()) {
    in.kind = KeepAliveInput::Kind::kString;
    in.text = it->get<std::string>();
  } else if (it->is_boolean()) {
    in.kind = KeepAliveInput::Kind::kBool;
  } else if (it->is_object()) {
    in.kind = KeepAliveInput::Kind::kObject;
  } else {
    in.kind = KeepAliveInput::Kind::kArray;
  }
  auto ka = ParseKeepAlive(in);
  if (!ka.ok()) return ka.status();
  *out = *ka;
  return Status::Ok();
}

// Reads option `field` (a number) into *out when present, checked against core/option_table.h,
// the table a Modelfile's PARAMETER lines are checked against too.
template <typename T>
Status GetNumber(const json& opts, const char* field, T* out) {
  auto it = opts.find(field);
  if (it == opts.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return WrongType(field, "a number", *it);
  const OptionSpec* spec = FindOption(field);
  assert(spec && spec->type != OptionType::kBool && spec->type != OptionType::kString);
  double v = it->get<double>();
  if (Status st = CheckOptionNumber(*spec, v); !st.ok()) {
    return Status::InvalidArgument(std::string("invalid value for option \"") + field + "\": " + it->dump() + ": " +
                                   st.message());
  }
  *out = static_cast<T>(v);
  return Status::Ok();
}

// Lays the fields present in `opts` over *o. Options resident accepts without applying them
// (OptionSpec::applied false) are checked all the same, then dropped.
Status DecodeOptionsObject(const json& opts, ModelOptions* o) {
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "num_ctx", &o->load.n_ctx));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "num_batch", &o->load.n_batch));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "num_thread", &o->load.n_threads));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "num_gpu", &o->load.n_gpu_layers));
  RESIDENT_RETURN_IF_ERROR(GetBool(opts, "use_mmap", &o->load.use_mmap));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "temperature", &o->sampling.temperature));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "top_k", &o->sampling.top_k));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "top_p", &o->sampling.top_p));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "min_p", &o->sampling.min_p));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "repeat_penalty", &o->sampling.repeat_penalty));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "repeat_last_n", &o->sampling.repeat_last_n));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "presence_penalty", &o->sampling.presence_penalty));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "frequency_penalty", &o->sampling.frequency_penalty));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "seed", &o->sampling.seed));
  RESIDENT_RETURN_IF_ERROR(GetNumber(opts, "num_predict", &o->num_predict));
  for (const OptionSpec& spec : OptionTable()) {
    if (spec.applied) continue;
    double ignored = 0;
    RESIDENT_RETURN_IF_ERROR(GetNumber(opts, std::string(spec.name).c_str(), &ignored));
  }
  if (auto s = opts.find("stop"); s != opts.end() && !s->is_null()) {
    o->stop.clear();
    if (s->is_string()) {
      RESIDENT_RETURN_IF_ERROR(CheckStopString(s->get_ref<const std::string&>()));
      o->stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      RESIDENT_RETURN_IF_ERROR(CheckStopCount(s->size()));
      for (const auto& v : *s) {
        if (!v.is_string()) return WrongType("stop", "strings", v);
        RESIDENT_RETURN_IF_ERROR(CheckStopString(v.get_ref<const std::string&>()));
        o->stop.push_back(v.get<std::string>());
      }
    } else {
      return WrongType("stop", "a string or an array of strings", *s);
    }
  }
  if (o->num_predict == -2) o->num_predict = -1;  // "fill the context": the context bound applies anyway
  return Status::Ok();
}

void ApplyDefaults(const RequestDefaults& d, ModelOptions* o) {
  o->load.n_ctx = d.num_ctx;
  o->load.n_batch = d.num_batch;
  o->load.n_threads = d.num_thread;
}

Status DecodeOptions(const json& j, const RequestDefaults& d, ModelOptions* o) {
  ApplyDefaults(d, o);
  auto it = j.find("options");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return WrongType("options", "an object", *it);
  RESIDENT_RETURN_IF_ERROR(DecodeOptionsObject(*it, o));
  // As Ollama does, an option that changes nothing is logged, not refused.
  for (const auto& [name, value] : it->items()) {
    const OptionSpec* spec = FindOption(name);
    if (!spec) spdlog::warn("invalid option provided: {} (ignored)", name);
    else if (!spec->applied) spdlog::info("option {} is not supported by resident: ignored", name);
  }
  o->request_json = it->dump();
  return Status::Ok();
}

Status DecodeFormat(const json& j, std::string* grammar) {
  auto it = j.find("format");
  if (it == j.end()) return Status::Ok();
  auto g = GrammarForFormat(*it);
  if (!g.ok()) return g.status();
  *grammar = std::move(g).value();
  return Status::Ok();
}

Status RejectImages(const json& j) {
  if (auto img = j.find("images"); img != j.end() && !img->is_null() && !img->empty()) {
    return Status::InvalidArgument("images are not supported: resident serves text models only (no vision projector)");
  }
  return Status::Ok();
}

Status DecodeStream(const json& j, bool* stream) { return GetBool(j, "stream", stream); }

// `think`, `logprobs` and `top_logprobs` of a generate or chat body.
Status DecodeThinkAndLogprobs(const json& j, ThinkValue* think, bool* logprobs, int32_t* top_logprobs) {
  if (auto it = j.find("think"); it != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeThink(*it, think));
  RESIDENT_RETURN_IF_ERROR(GetBool(j, "logprobs", logprobs));
  if (auto it = j.find("top_logprobs"); it != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeTopLogprobs(*it, top_logprobs));
  return Status::Ok();
}

// The enum values and anyOf/oneOf branches anywhere in a schema. Recursion is bounded by the
// body's depth (kMaxJsonDepth).
size_t CountAlternatives(const json& schema) {
  size_t n = 0;
  if (schema.is_object()) {
    for (const auto& [key, value] : schema.items()) {
      if ((key == "enum" || key == "anyOf" || key == "oneOf") && value.is_array()) n += value.size();
      n += CountAlternatives(value);
    }
  } else if (schema.is_array()) {
    for (const json& v : schema) n += CountAlternatives(v);
  }
  return n;
}

// A message's fields beyond role and content: thinking, tool calls, a tool result's function
// name and call id. `tool_name_field`: Ollama's "tool_name", OpenAI's "name".
Status DecodeMessageExtras(const json& m, const char* tool_name_field, runner::ChatMessage* msg) {
  RESIDENT_RETURN_IF_ERROR(GetString(m, "thinking", &msg->thinking));
  RESIDENT_RETURN_IF_ERROR(GetString(m, tool_name_field, &msg->tool_name));
  RESIDENT_RETURN_IF_ERROR(GetString(m, "tool_call_id", &msg->tool_call_id));
  if (auto it = m.find("tool_calls"); it != m.end() && !it->is_null()) {
    RESIDENT_RETURN_IF_ERROR(DecodeToolCalls(*it, &msg->tool_calls));
  }
  return Status::Ok();
}

}  // namespace

Status DecodeTools(const json& tools, std::vector<runner::ToolDefinition>* out) {
  if (tools.is_null()) return Status::Ok();
  if (!tools.is_array()) return WrongType("tools", "an array", tools);
  if (tools.size() > kMaxTools) {
    return Status::InvalidArgument("too many tools: " + std::to_string(tools.size()) + " (at most " +
                                   std::to_string(kMaxTools) + ")");
  }
  size_t bytes = 0, alternatives = 0;
  for (const json& t : tools) {
    if (!t.is_object()) return WrongType("tools", "objects", t);
    std::string type;
    RESIDENT_RETURN_IF_ERROR(GetString(t, "type", &type));
    if (!type.empty() && type != "function") {
      return Status::InvalidArgument("unsupported tool type \"" + type + "\": only \"function\" tools are supported");
    }
    auto f = t.find("function");
    if (f == t.end() || !f->is_object()) return Status::InvalidArgument("every tool needs a \"function\" object");
    runner::ToolDefinition def;
    RESIDENT_RETURN_IF_ERROR(GetString(*f, "name", &def.name));
    if (def.name.empty()) return Status::InvalidArgument("every tool's function needs a name");
    RESIDENT_RETURN_IF_ERROR(GetString(*f, "description", &def.description));
    if (auto p = f->find("parameters"); p != f->end() && !p->is_null()) {
      if (!p->is_object()) return WrongType("parameters", "a JSON schema object", *p);
      def.parameters = p->dump();
      alternatives += CountAlternatives(*p);
    }
    bytes += def.name.size() + def.description.size() + def.parameters.size();
    if (bytes > kMaxToolsBytes) {
      return Status::InvalidArgument("the tools are more than " + std::to_string(kMaxToolsBytes) +
                                     " bytes of JSON together");
    }
    out->push_back(std::move(def));
  }
  if (alternatives > kMaxFormatAlternatives) {
    return Status::InvalidArgument("the tools' parameter schemas have " + std::to_string(alternatives) +
                                   " enum values and anyOf/oneOf branches (at most " +
                                   std::to_string(kMaxFormatAlternatives) + " in all)");
  }
  return Status::Ok();
}

Status DecodeToolChoice(const json& choice, ToolUse* out) {
  const char* kWant = "\"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}";
  if (choice.is_null()) return Status::Ok();
  if (choice.is_string()) {
    const std::string& c = choice.get_ref<const std::string&>();
    if (c == "auto") out->choice = runner::ToolChoice::kAuto;
    else if (c == "none") out->choice = runner::ToolChoice::kNone;
    else if (c == "required") out->choice = runner::ToolChoice::kRequired;
    else return Status::InvalidArgument("invalid tool_choice \"" + c + "\": use " + kWant);
    return Status::Ok();
  }
  if (!choice.is_object()) return WrongType("tool_choice", kWant, choice);
  std::string type;
  RESIDENT_RETURN_IF_ERROR(GetString(choice, "type", &type));
  auto f = choice.find("function");
  if (type != "function" || f == choice.end() || !f->is_object()) {
    return Status::InvalidArgument(std::string("invalid tool_choice: use ") + kWant);
  }
  RESIDENT_RETURN_IF_ERROR(GetString(*f, "name", &out->function));
  if (out->function.empty()) return Status::InvalidArgument("tool_choice names no function");
  out->choice = runner::ToolChoice::kRequired;
  return Status::Ok();
}

Status DecodeToolCalls(const json& calls, std::vector<runner::ToolCall>* out) {
  if (!calls.is_array()) return WrongType("tool_calls", "an array", calls);
  for (const json& c : calls) {
    if (!c.is_object()) return WrongType("tool_calls", "objects", c);
    runner::ToolCall call;
    RESIDENT_RETURN_IF_ERROR(GetString(c, "id", &call.id));
    auto f = c.find("function");
    if (f == c.end() || !f->is_object()) return Status::InvalidArgument("every tool call needs a \"function\" object");
    RESIDENT_RETURN_IF_ERROR(GetString(*f, "name", &call.name));
    auto a = f->find("arguments");
    if (a == f->end() || a->is_null()) {
      call.arguments = "{}";
    } else if (a->is_object()) {
      call.arguments = a->dump();
    } else if (a->is_string()) {
      json parsed = json::parse(a->get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_object()) return Status::InvalidArgument("invalid tool call arguments");
      call.arguments = parsed.dump();
    } else {
      return Status::InvalidArgument("invalid tool call arguments");
    }
    out->push_back(std::move(call));
  }
  return Status::Ok();
}

Status DecodeThink(const json& think, ThinkValue* out) {
  if (think.is_null()) return Status::Ok();
  if (think.is_boolean()) {
    out->given = true;
    out->on = think.get<bool>();
    return Status::Ok();
  }
  if (think.is_string()) {
    const std::string& s = think.get_ref<const std::string&>();
    if (s != "high" && s != "medium" && s != "low" && s != "max") {
      return Status::InvalidArgument("invalid think value: \"" + s +
                                     "\" (must be \"high\", \"medium\", \"low\", \"max\", true, or false)");
    }
    out->given = true;
    out->on = true;
    out->level = s;
    return Status::Ok();
  }
  return Status::InvalidArgument(
      "think must be a boolean or string (\"high\", \"medium\", \"low\", \"max\", true, or false)");
}

Status DecodeTopLogprobs(const json& value, int32_t* out) {
  if (value.is_null()) return Status::Ok();
  if (!value.is_number_integer()) return WrongType("top_logprobs", "an integer", value);
  const int64_t n = value.get<int64_t>();
  if (n < 0 || n > runner::kMaxTopLogprobs) return Status::InvalidArgument("top_logprobs must be between 0 and 20");
  *out = static_cast<int32_t>(n);
  return Status::Ok();
}

Status CheckJsonShape(std::string_view body) {
  int depth = 0;
  size_t separators = 0;  // commas: one fewer than the elements of each non-empty container
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        return Status::InvalidArgument("invalid JSON in request body: arrays and objects nested deeper than " +
                                       std::to_string(kMaxJsonDepth) + " levels");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && ++separators >= kMaxJsonValues) {
      return Status::InvalidArgument("request body too complex: more than " + std::to_string(kMaxJsonValues) +
                                     " JSON values");
    }
  }
  return Status::Ok();
}

Result<json> ParseObject(std::string_view body) {
  RESIDENT_RETURN_IF_ERROR(CheckJsonShape(body));
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (body.empty()) return Status::InvalidArgument("missing request body");
    return Status::InvalidArgument("invalid JSON in request body");
  }
  if (!j.is_object()) return Status::InvalidArgument("request body must be a JSON object");
  return j;
}

TemplateUse ClassifyTemplate(std::string_view t) {
  return store::ClassifyTemplate(t) == store::TemplateKind::kPassThrough ? TemplateUse::kPassThrough
                                                                         : TemplateUse::kModel;
}

Result<ModelOptions> ResolveOptions(const ModelOptions& request,
                                    const std::vector<std::pair<std::string, std::string>>& parameters,
                                    const RequestDefaults& defaults) {
  ModelOptions o;
  ApplyDefaults(defaults, &o);
  if (!parameters.empty()) {
    json params = json::object();
    for (const auto& [name, value] : parameters) {
      if (name == "stop") {
        params["stop"].push_back(value);
        continue;
      }
      json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
      params[name] = (v.is_number() || v.is_boolean()) ? v : json(value);
    }
    Status st = DecodeOptionsObject(params, &o);
    if (!st.ok()) return Status::InvalidArgument("the model's Modelfile parameters: " + st.message());
  }
  if (!request.request_json.empty()) {
    json opts = json::parse(request.request_json, nullptr, false);
    if (!opts.is_object()) return Status::InvalidArgument("invalid options");
    RESIDENT_RETURN_IF_ERROR(DecodeOptionsObject(opts, &o));
  }
  o.request_json = request.request_json;
  return o;
}

Result<std::string> GrammarForFormat(const json& format) {
  if (format.is_null()) return std::string();
  if (format.is_string()) {
    const std::string& f = format.get_ref<const std::string&>();
    if (f.empty()) return std::string();
    if (f == "json") return runner::JsonObjectGbnf();
    return Status::InvalidArgument("invalid format \"" + f + "\": use \"json\" or a JSON schema object");
  }
  if (format.is_object()) {
    const std::string schema = format.dump();
    if (schema.size() > kMaxFormatBytes) {
      return Status::InvalidArgument("the format's JSON schema is " + std::to_string(schema.size()) +
                                     " bytes (at most " + std::to_string(kMaxFormatBytes) + ")");
    }
    if (size_t n = CountAlternatives(format); n > kMaxFormatAlternatives) {
      return Status::InvalidArgument("the format's JSON schema has " + std::to_string(n) +
                                     " enum values and anyOf/oneOf branches (at most " +
                                     std::to_string(kMaxFormatAlternatives) + " in all)");
    }
    return runner::JsonSchemaToGbnf(schema);
  }
  return WrongType("format", "\"json\" or a JSON schema object", format);
}

Result<ModelOptions> DecodeOptionsJson(const json& options, const RequestDefaults& defaults) {
  ModelOptions o;
  RESIDENT_RETURN_IF_ERROR(DecodeOptions(json{{"options", options}}, defaults, &o));
  return o;
}

Result<std::optional<KeepAlive>> DecodeKeepAlive(const json& body) {
  std::optional<KeepAlive> ka;
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(body, &ka));
  return ka;
}

Result<GenerateCall> DecodeGenerate(std::string_view body, const RequestDefaults& defaults) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  GenerateCall c;
  // keep_alive is checked first, as Ollama does while decoding, before the model is looked up.
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(j, &c.keep_alive));
  RESIDENT_RETURN_IF_ERROR(GetModel(j, &c.model));
  RESIDENT_RETURN_IF_ERROR(GetString(j, "prompt", &c.prompt));
  RESIDENT_RETURN_IF_ERROR(GetString(j, "system", &c.system));
  RESIDENT_RETURN_IF_ERROR(GetBool(j, "raw", &c.raw));
  RESIDENT_RETURN_IF_ERROR(GetString(j, "suffix", &c.suffix));
  RESIDENT_RETURN_IF_ERROR(GetString(j, "template", &c.template_text));
  RESIDENT_RETURN_IF_ERROR(DecodeStream(j, &c.stream));
  RESIDENT_RETURN_IF_ERROR(DecodeOptions(j, defaults, &c.options));
  RESIDENT_RETURN_IF_ERROR(RejectImages(j));
  RESIDENT_RETURN_IF_ERROR(DecodeFormat(j, &c.grammar));
  RESIDENT_RETURN_IF_ERROR(DecodeThinkAndLogprobs(j, &c.think, &c.logprobs, &c.top_logprobs));
  if (auto it = j.find("context"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return WrongType("context", "an array of token ids", *it);
    for (const auto& t : *it) {
      if (!t.is_number_integer()) return WrongType("context", "integer token ids", t);
      c.context.push_back(t.get<int32_t>());
    }
  }
  return c;
}

Result<ChatCall> DecodeChat(std::string_view body, const RequestDefaults& defaults) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  ChatCall c;
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(j, &c.keep_alive));
  RESIDENT_RETURN_IF_ERROR(GetModel(j, &c.model));
  RESIDENT_RETURN_IF_ERROR(DecodeStream(j, &c.stream));
  RESIDENT_RETURN_IF_ERROR(DecodeOptions(j, defaults, &c.options));
  RESIDENT_RETURN_IF_ERROR(DecodeFormat(j, &c.grammar));
  if (auto t = j.find("tools"); t != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeTools(*t, &c.tools.tools));
  if (auto t = j.find("tool_choice"); t != j.end()) RESIDENT_RETURN_IF_ERROR(DecodeToolChoice(*t, &c.tools));
  RESIDENT_RETURN_IF_ERROR(DecodeThinkAndLogprobs(j, &c.think, &c.logprobs, &c.top_logprobs));
  if (auto it = j.find("messages"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return WrongType("messages", "an array", *it);
    for (const auto& m : *it) {
      if (!m.is_object()) return WrongType("messages", "objects", m);
      runner::ChatMessage msg;
      RESIDENT_RETURN_IF_ERROR(GetString(m, "role", &msg.role));
      RESIDENT_RETURN_IF_ERROR(GetString(m, "content", &msg.content));
      if (msg.role.empty()) return Status::InvalidArgument("every message needs a role");
      RESIDENT_RETURN_IF_ERROR(RejectImages(m));
      RESIDENT_RETURN_IF_ERROR(DecodeMessageExtras(m, "tool_name", &msg));
      c.messages.push_back(std::move(msg));
    }
  }
  return c;
}

Result<EmbedCall> DecodeEmbed(std::string_view body, const RequestDefaults& defaults, bool legacy) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  EmbedCall c;
  RESIDENT_RETURN_IF_ERROR(GetKeepAlive(j, &c.keep_alive));
  RESIDENT_RETURN_IF_ERROR(GetModel(j, &c.model));
  RESIDENT_RETURN_IF_ERROR(GetBool(j, "truncate", &c.truncate));
  RESIDENT_RETURN_IF_ERROR(DecodeOptions(j, defaults, &c.options));
  if (auto it = j.find("dimensions"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || !std::in_range<int32_t>(it->get<int64_t>())) {
      return WrongType("dimensions", "an integer", *it);
    }
    c.dimensions = it->get<int32_t>();
  }
  const char* field = legacy ? "prompt" : "input";
  if (auto it = j.find(field); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      c.inputs.push_back(it->get<std::string>());
    } else if (it->is_array() && !legacy) {
      for (const auto& v : *it) {
        if (!v.is_string()) return WrongType(field, "strings", v);
        c.inputs.push_back(v.get<std::string>());
      }
    } else {
      return WrongType(field, legacy ? "a string" : "a string or an array of strings", *it);
    }
  }
  return c;
}

Result<ShowCall> DecodeShow(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  ShowCall c;
  RESIDENT_RETURN_IF_ERROR(GetRequired(*parsed, "model", "name", &c.model));
  RESIDENT_RETURN_IF_ERROR(GetBool(*parsed, "verbose", &c.verbose));
  return c;
}

Result<CopyCall> DecodeCopy(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  CopyCall c;
  RESIDENT_RETURN_IF_ERROR(GetRequired(*parsed, "source", nullptr, &c.source));
  RESIDENT_RETURN_IF_ERROR(GetRequired(*parsed, "destination", nullptr, &c.destination));
  return c;
}

Result<DeleteCall> DecodeDelete(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  DeleteCall c;
  RESIDENT_RETURN_IF_ERROR(GetRequired(*parsed, "model", "name", &c.model));
  return c;
}

Result<TransferCall> DecodeTransfer(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  TransferCall c;
  RESIDENT_RETURN_IF_ERROR(GetRequired(*parsed, "model", "name", &c.model));
  RESIDENT_RETURN_IF_ERROR(GetBool(*parsed, "insecure", &c.insecure));
  RESIDENT_RETURN_IF_ERROR(DecodeStream(*parsed, &c.stream));
  return c;
}

namespace {

// Ollama's structured create fields as a Modelfile.
Result<store::Modelfile> StructuredModelfile(const json& j) {
  store::Modelfile mf;
  RESIDENT_RETURN_IF_ERROR(GetString(j, "from", &mf.from));
  if (mf.from.empty()) return Status::InvalidArgument("neither 'from' nor 'modelfile' was specified");
  auto text = [&](const char* field, bool* has, std::string* out) -> Status {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return Status::Ok();
    RESIDENT_RETURN_IF_ERROR(GetString(j, field, out));
    *has = true;
    return Status::Ok();
  };
  RESIDENT_RETURN_IF_ERROR(text("template", &mf.has_template, &mf.template_text));
  RESIDENT_RETURN_IF_ERROR(text("system", &mf.has_system, &mf.system));
  if (auto it = j.find("parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return WrongType("parameters", "an object", *it);
    for (const auto& [name, value] : it->items()) {
      // A parameter's value, or (for "stop") each of an array of them.
      std::vector<json> values = value.is_array() ? std::vector<json>(value.begin(), value.end()) : std::vector<json>{value};
      for (const json& v : values) {
        if (v.is_object() || v.is_array() || v.is_null()) {
          return Status::InvalidArgument("invalid value for parameter \"" + name + "\": expected a " +
                                         "string, number or boolean, got " + KindName(v));
        }
        std::string text_value = v.is_string() ? v.get<std::string>() : v.dump();
        RESIDENT_RETURN_IF_ERROR(store::ValidateParameter(name, text_value));
        mf.parameters.emplace_back(name, text_value);
      }
    }
  }
  if (auto it = j.find("messages"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return WrongType("messages", "an array", *it);
    if (it->size() > store::kMaxMessages) {
      return Status::InvalidArgument("too many messages: " + std::to_string(it->size()) + " (at most " +
                                     std::to_string(store::kMaxMessages) + ")");
    }
    for (const json& m : *it) {
      if (!m.is_object()) return WrongType("messages", "objects", m);
      std::string role, content;
      RESIDENT_RETURN_IF_ERROR(GetString(m, "role", &role));
      RESIDENT_RETURN_IF_ERROR(GetString(m, "content", &content));
      if (role != "system" && role != "user" && role != "assistant") {
        return Status::InvalidArgument("message role must be system, user or assistant");
      }
      mf.messages.emplace_back(role, content);
    }
  }
  if (auto it = j.find("license"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      mf.licenses.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > store::kMaxLicenses) {
        return Status::InvalidArgument("too many licenses: " + std::to_string(it->size()) + " (at most " +
                                       std::to_string(store::kMaxLicenses) + ")");
      }
      for (const json& l : *it) {
        if (!l.is_string()) return WrongType("license", "strings", l);
        mf.licenses.push_back(l.get<std::string>());
      }
    } else {
      return WrongType("license", "a string or an array of strings", *it);
    }
  }
  RESIDENT_RETURN_IF_ERROR(store::CheckModelfileLimits(mf));
  return mf;
}

}  // namespace

Result<CreateCall> DecodeCreate(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  CreateCall c;
  RESIDENT_RETURN_IF_ERROR(GetRequired(j, "model", "name", &c.model));
  RESIDENT_RETURN_IF_ERROR(DecodeStream(j, &c.stream));
  if (Present(j, "quantize")) {
    return Status::InvalidArgument("quantize is not supported by resident: quantize the GGUF with llama-quantize");
  }
  if (Present(j, "adapters")) return Status::InvalidArgument("adapters are not supported by resident");
  if (Present(j, "files")) {
    return Status::InvalidArgument(
        "uploaded files are not supported: use \"from\" with the absolute path of a .gguf file on the "
        "server's machine, or with an existing model name");
  }
  std::string modelfile;
  RESIDENT_RETURN_IF_ERROR(GetString(j, "modelfile", &modelfile));
  auto mf = modelfile.empty() ? StructuredModelfile(j) : store::ParseModelfile(modelfile);
  if (!mf.ok()) return mf.status();
  c.modelfile = std::move(mf).value();
  return c;
}

}  // namespace resident::api
