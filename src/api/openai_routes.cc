#include "api/openai_routes.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "api/generation_stream.h"
#include "api/requests.h"

namespace resident::api {
namespace {

using nlohmann::json;

void SendOpenAiError(httplib::Response& res, const Status& status) {
  res.status = HttpStatusFor(status);
  const char* type = res.status == 400 ? "invalid_request_error" : res.status == 404 ? "not_found_error" : "api_error";
  json body{{"error", {{"message", status.message()}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
  res.set_content(DumpJson(body), "application/json; charset=utf-8");
}

int64_t UnixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  uint64_t n = counter.fetch_add(1) + static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return std::string(prefix) + std::to_string(n % 1000000000);
}

Status TypeError(const char* field, const char* want) {
  return Status::InvalidArgument(std::string("invalid value for \"") + field + "\": expected " + want);
}

// The fields every generating route shares, decoded.
struct OpenAiCall {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::optional<KeepAlive> keep_alive;
  ModelOptions options;
  std::string grammar;
};

Status DecodeCommon(const json& j, const RequestDefaults& defaults, OpenAiCall* c) {
  auto ka = DecodeKeepAlive(j);
  if (!ka.ok()) return ka.status();
  c->keep_alive = *ka;
  auto m = j.find("model");
  if (m == j.end() || !m->is_string() || m->get<std::string>().empty()) return Status::InvalidArgument("model is required");
  c->model = m->get<std::string>();
  if (auto s = j.find("stream"); s != j.end() && !s->is_null()) {
    if (!s->is_boolean()) return TypeError("stream", "true or false");
    c->stream = s->get<bool>();
  }
  if (auto so = j.find("stream_options"); so != j.end() && so->is_object()) {
    c->include_usage = so->value("include_usage", false);
  }
  if (auto n = j.find("n"); n != j.end() && !n->is_null() && *n != 1) {
    return Status::InvalidArgument("only n = 1 is supported");
  }
  // OpenAI fields -> Ollama options, then validated by the Ollama decoder.
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
  auto options = DecodeOptionsJson(opts, defaults);
  if (!options.ok()) return options.status();
  c->options = std::move(options).value();
  if (auto rf = j.find("response_format"); rf != j.end() && !rf->is_null()) {
    if (!rf->is_object()) return TypeError("response_format", "an object");
    std::string type = rf->value("type", "");
    json format;
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
    c->grammar = std::move(g).value();
  }
  return Status::Ok();
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
    std::string type = part.value("type", "");
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

std::string FinishReason(const std::string& done_reason) { return done_reason == "length" ? "length" : "stop"; }

json Usage(const runner::DoneEvent& d) {
  return json{{"prompt_tokens", d.prompt_eval_count},
              {"completion_tokens", d.eval_count},
              {"total_tokens", d.prompt_eval_count + d.eval_count}};
}

// One generation for /v1/chat/completions (chat = true) or /v1/completions.
struct OpenAiGeneration {
  sched::Lease lease;
  runner::GenerateRequest request;
  std::string id;
  std::string model;
  int64_t created = 0;
  bool chat = false;
  bool include_usage = false;

  json Base(const char* object) const {
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", model},
                {"system_fingerprint", "fp_resident"}};
  }
  json Chunk(std::string_view text, const char* finish, bool first) const {
    json j = Base(chat ? "chat.completion.chunk" : "text_completion");
    json choice{{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    if (chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || !finish) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    j["choices"] = json::array({choice});
    return j;
  }
  json Whole(const runner::DoneEvent& d, const std::string& text) const {
    json j = Base(chat ? "chat.completion" : "text_completion");
    json choice{{"index", 0}, {"finish_reason", FinishReason(d.done_reason)}};
    if (chat) choice["message"] = json{{"role", "assistant"}, {"content", text}};
    else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    j["choices"] = json::array({choice});
    j["usage"] = Usage(d);
    return j;
  }
};

std::string SseEvent(const json& j) { return "data: " + DumpJson(j) + "\n\n"; }

void Run(std::shared_ptr<OpenAiGeneration> gen, bool stream, httplib::Response& res) {
  if (!stream) {
    auto whole = GenerateWhole(gen->lease, gen->request);
    if (!whole.ok()) return SendOpenAiError(res, whole.status());
    return SendJson(res, gen->Whole(whole->done, whole->text));
  }
  res.set_header("Cache-Control", "no-cache");
  // The status waits for the first piece of text: a failure before it (a prompt longer than the
  // context) is an HTTP error with OpenAI's error shape, not "200" and an error event.
  auto text = std::make_shared<GenerationStream>([gen](const std::function<bool(std::string_view)>& on_text) {
    auto done = gen->lease.runner().Generate(gen->request, on_text);
    gen->lease.Release();
    return done;
  });
  if (Status first_status = text->WaitForFirst(); !first_status.ok()) return SendOpenAiError(res, first_status);
  res.set_chunked_content_provider("text/event-stream", [gen, text](size_t, httplib::DataSink& sink) {
    bool first = true;
    bool gone = false;
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    std::string piece;
    while (text->Next(&piece)) {
      if (!gone && !write(SseEvent(gen->Chunk(piece, nullptr, first)))) {  // the client went away
        gone = true;
        text->Cancel();
      }
      first = false;
    }
    const auto& done = text->result();
    if (done.ok()) {
      std::string finish = FinishReason(done->done_reason);
      write(SseEvent(gen->Chunk("", finish.c_str(), first)));
      if (gen->include_usage) {
        json u = gen->Base(gen->chat ? "chat.completion.chunk" : "text_completion");
        u["choices"] = json::array();
        u["usage"] = Usage(*done);
        write(SseEvent(u));
      }
      write("data: [DONE]\n\n");
    } else if (done.status().code() != StatusCode::kCancelled) {
      spdlog::warn("generation for {} failed: {}", gen->model, done.status().message());
      write(SseEvent(json{{"error", {{"message", done.status().message()}, {"type", "api_error"},
                                     {"param", nullptr}, {"code", nullptr}}}}));
    }
    sink.done();
    return true;
  });
}

// Looks the model up, resolves options over its Modelfile parameters and takes a lease.
Result<std::shared_ptr<OpenAiGeneration>> Start(ApiContext& ctx, const OpenAiCall& call, bool chat,
                                                 store::ModelEntry* entry_out) {
  auto entry = ctx.catalog.Find(call.model);
  if (!entry.ok()) return entry.status();
  auto options = ResolveOptions(call.options, entry->parameters, ctx.defaults);
  if (!options.ok()) return options.status();
  auto lease = AcquireEntry(ctx, *entry, *options, call.keep_alive);
  if (!lease.ok()) return lease.status();
  auto gen = std::make_shared<OpenAiGeneration>();
  gen->lease = std::move(lease).value();
  gen->id = NewId(chat ? "chatcmpl-" : "cmpl-");
  gen->model = call.model;
  gen->created = UnixSeconds(ctx.clock.WallNow());
  gen->chat = chat;
  gen->include_usage = call.include_usage;
  gen->request.num_predict = options->num_predict;
  gen->request.stop = options->stop;
  gen->request.sampling = options->sampling;
  gen->request.grammar = call.grammar;
  *entry_out = std::move(entry).value();
  return gen;
}

void HandleChatCompletions(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseObject(req.body);
  if (!body.ok()) return SendOpenAiError(res, body.status());
  const json& j = *body;
  OpenAiCall call;
  if (Status st = DecodeCommon(j, ctx.defaults, &call); !st.ok()) return SendOpenAiError(res, st);
  auto m = j.find("messages");
  if (m == j.end() || !m->is_array() || m->empty()) {
    return SendOpenAiError(res, Status::InvalidArgument("messages is required: a non-empty array"));
  }
  std::vector<runner::ChatMessage> messages;
  for (const auto& msg : *m) {
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string()) {
      return SendOpenAiError(res, Status::InvalidArgument("every message needs a role"));
    }
    runner::ChatMessage cm{msg["role"].get<std::string>(), ""};
    if (Status st = DecodeContent(msg.value("content", json()), &cm.content); !st.ok()) return SendOpenAiError(res, st);
    messages.push_back(std::move(cm));
  }
  if (auto t = j.find("tools"); t != j.end() && !t->is_null() && !t->empty()) {
    return SendOpenAiError(res, Status::InvalidArgument("tools are not supported by resident yet"));
  }
  store::ModelEntry entry;
  auto gen = Start(ctx, call, /*chat=*/true, &entry);
  if (!gen.ok()) return SendOpenAiError(res, gen.status());
  auto& msgs = (*gen)->request.messages;
  if (!entry.system.empty() && messages.front().role != "system") msgs.push_back({"system", entry.system});
  for (const auto& [role, content] : entry.messages) msgs.push_back({role, content});
  msgs.insert(msgs.end(), messages.begin(), messages.end());
  Run(*gen, call.stream, res);
}

void HandleCompletions(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseObject(req.body);
  if (!body.ok()) return SendOpenAiError(res, body.status());
  const json& j = *body;
  OpenAiCall call;
  if (Status st = DecodeCommon(j, ctx.defaults, &call); !st.ok()) return SendOpenAiError(res, st);
  std::string prompt, suffix;
  auto p = j.find("prompt");
  if (p != j.end() && p->is_array() && p->size() == 1) p = p->begin();
  if (p == j.end() || !p->is_string()) {
    return SendOpenAiError(res, Status::InvalidArgument("prompt is required: a string (or an array of one string)"));
  }
  prompt = p->get<std::string>();
  if (auto s = j.find("suffix"); s != j.end() && !s->is_null()) {
    if (!s->is_string()) return SendOpenAiError(res, TypeError("suffix", "a string"));
    suffix = s->get<std::string>();
  }
  store::ModelEntry entry;
  auto gen = Start(ctx, call, /*chat=*/false, &entry);
  if (!gen.ok()) return SendOpenAiError(res, gen.status());
  if (!suffix.empty() && !(*gen)->lease.runner().facts().fim) {
    return SendOpenAiError(res, Status::InvalidArgument("\"" + call.model + "\" does not support insert"));
  }
  // As Ollama's /v1/completions does: the prompt is the user's turn in the model's template
  // (after the Modelfile's SYSTEM), or prompt and suffix around the FIM tokens.
  runner::GenerateRequest& r = (*gen)->request;
  if (!suffix.empty()) {
    r.prompt = prompt;
    r.suffix = suffix;
  } else {
    if (!entry.system.empty()) r.messages.push_back({"system", entry.system});
    r.messages.push_back({"user", prompt});
  }
  Run(*gen, call.stream, res);
}

std::string Base64(const void* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(b[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(b[i + 1]) << 8;
    if (i + 2 < n) v |= b[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

void HandleEmbeddings(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseObject(req.body);
  if (!body.ok()) return SendOpenAiError(res, body.status());
  const json& j = *body;
  auto ka = DecodeKeepAlive(j);
  if (!ka.ok()) return SendOpenAiError(res, ka.status());
  auto m = j.find("model");
  if (m == j.end() || !m->is_string() || m->get<std::string>().empty()) {
    return SendOpenAiError(res, Status::InvalidArgument("model is required"));
  }
  std::string model = m->get<std::string>();
  std::vector<std::string> inputs;
  auto in = j.find("input");
  if (in == j.end() || in->is_null()) return SendOpenAiError(res, Status::InvalidArgument("invalid input"));
  if (in->is_string()) {
    inputs.push_back(in->get<std::string>());
  } else if (in->is_array()) {
    for (const auto& v : *in) {
      if (!v.is_string()) return SendOpenAiError(res, TypeError("input", "a string or an array of strings"));
      inputs.push_back(v.get<std::string>());
    }
  } else {
    return SendOpenAiError(res, TypeError("input", "a string or an array of strings"));
  }
  if (inputs.empty()) return SendOpenAiError(res, Status::InvalidArgument("invalid input"));
  std::string encoding = j.value("encoding_format", "float");
  if (encoding != "float" && encoding != "base64") {
    return SendOpenAiError(res, Status::InvalidArgument("encoding_format must be \"float\" or \"base64\""));
  }
  auto entry = ctx.catalog.Find(model);
  if (!entry.ok()) return SendOpenAiError(res, entry.status());
  auto options = ResolveOptions(ModelOptions{}, entry->parameters, ctx.defaults);
  if (!options.ok()) return SendOpenAiError(res, options.status());
  auto lease = AcquireEntry(ctx, *entry, *options, *ka);
  if (!lease.ok()) return SendOpenAiError(res, lease.status());
  runner::EmbedRequest er;
  er.inputs = std::move(inputs);
  auto result = lease->runner().Embed(er);
  lease->Release();
  if (!result.ok()) return SendOpenAiError(res, result.status());
  json data = json::array();
  for (size_t i = 0; i < result->embeddings.size(); ++i) {
    const auto& e = result->embeddings[i];
    json v = encoding == "base64" ? json(Base64(e.data(), e.size() * sizeof(float))) : json(e);
    data.push_back(json{{"object", "embedding"}, {"embedding", std::move(v)}, {"index", i}});
  }
  SendJson(res, json{{"object", "list"},
                     {"data", data},
                     {"model", model},
                     {"usage", {{"prompt_tokens", result->prompt_eval_count}, {"total_tokens", result->prompt_eval_count}}}});
}

json ModelObject(const store::ModelEntry& e) {
  return json{{"id", e.name}, {"object", "model"}, {"created", UnixSeconds(e.modified)}, {"owned_by", "library"}};
}

}  // namespace

void RegisterOpenAiRoutes(httplib::Server& http, ApiContext& ctx) {
  http.Post("/v1/chat/completions",
            [&ctx](const httplib::Request& req, httplib::Response& res) { HandleChatCompletions(ctx, req, res); });
  http.Post("/v1/completions",
            [&ctx](const httplib::Request& req, httplib::Response& res) { HandleCompletions(ctx, req, res); });
  http.Post("/v1/embeddings",
            [&ctx](const httplib::Request& req, httplib::Response& res) { HandleEmbeddings(ctx, req, res); });
  http.Get("/v1/models", [&ctx](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const store::ModelEntry& e : ctx.catalog.List()) data.push_back(ModelObject(e));
    SendJson(res, json{{"object", "list"}, {"data", data}});
  });
  http.Get(R"(/v1/models/(.+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto entry = ctx.catalog.Find(id);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kNotFound) {
        return SendOpenAiError(res, Status::NotFound("model \"" + id + "\" not found"));
      }
      return SendOpenAiError(res, entry.status());
    }
    SendJson(res, ModelObject(*entry));
  });
}

}  // namespace resident::api
