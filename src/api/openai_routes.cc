#include "api/openai_routes.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "api/bounded_http_server.h"
#include "api/generation_json.h"
#include "api/generation_stream.h"
#include "api/model_features.h"
#include "api/openai_requests.h"
#include "api/request_log.h"

namespace resident::api {
namespace {

using nlohmann::json;

int64_t UnixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  uint64_t n = counter.fetch_add(1) + static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return std::string(prefix) + std::to_string(n % 1000000000);
}

// "tool_calls" replaces "stop" when the answer called tools, as Ollama's OpenAI layer does.
std::string FinishReason(const std::string& done_reason, bool tool_calls) {
  if (done_reason == "length") return "length";
  return tool_calls ? "tool_calls" : "stop";
}

json Usage(const runner::DoneEvent& d) {
  json usage{{"prompt_tokens", d.prompt_eval_count},
             {"completion_tokens", d.eval_count},
             {"total_tokens", d.prompt_eval_count + d.eval_count}};
  // OpenAI's count of prompt tokens served from a cache (the slot's or the prompt cache's), only
  // when there were some, so that a cold answer keeps Ollama's shape.
  if (d.prompt_cached_count > 0) usage["prompt_tokens_details"] = json{{"cached_tokens", d.prompt_cached_count}};
  return usage;
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
  std::stop_token gone;  // the client went away (BoundedHttpServer::ClientGone)
  size_t tool_calls_sent = 0;  // the index of the answer's next tool call

  json Base(const char* object) const {
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", model},
                {"system_fingerprint", "fp_resident"}};
  }
  // A choice's logprobs, or none: chat's {"content":[...]} (Ollama's token shape), the legacy
  // {"tokens","token_logprobs","top_logprobs"} on /v1/completions, as OpenAI's clients read them.
  void AddLogprobs(json& choice, const std::vector<runner::TokenLogprob>& logprobs) const {
    if (logprobs.empty()) return;
    choice["logprobs"] = chat ? json{{"content", LogprobsJson(logprobs)}} : CompletionLogprobsJson(logprobs);
  }
  // The chunks of one piece of the answer. As Ollama's: a piece with thinking and content or
  // tool calls goes out as two chunks, the thinking (`reasoning`) first.
  std::vector<json> Chunks(const runner::TokenEvent& piece, bool first) {
    json j = Base(chat ? "chat.completion.chunk" : "text_completion");
    json choice{{"index", 0}, {"finish_reason", nullptr}};
    if (!chat) {
      choice["text"] = piece.text;
      choice["logprobs"] = nullptr;
      AddLogprobs(choice, piece.logprobs);
      j["choices"] = json::array({choice});
      return {j};
    }
    std::vector<json> out;
    const bool mixed = !piece.thinking.empty() && (!piece.text.empty() || !piece.tool_calls.empty());
    if (mixed) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      delta["reasoning"] = piece.thinking;
      json c = choice;
      c["delta"] = std::move(delta);
      AddLogprobs(c, piece.logprobs);
      json chunk = j;
      chunk["choices"] = json::array({c});
      out.push_back(std::move(chunk));
    }
    json delta = json::object();
    if (first && !mixed) delta["role"] = "assistant";
    delta["content"] = piece.text;
    if (!mixed && !piece.thinking.empty()) delta["reasoning"] = piece.thinking;
    if (!piece.tool_calls.empty()) {
      delta["tool_calls"] = OpenAiToolCalls(piece.tool_calls, tool_calls_sent);
      tool_calls_sent += piece.tool_calls.size();
    }
    choice["delta"] = std::move(delta);
    if (!mixed) AddLogprobs(choice, piece.logprobs);
    j["choices"] = json::array({choice});
    out.push_back(std::move(j));
    return out;
  }
  // The chunk that ends the stream: an empty delta and the finish reason.
  json FinishChunk(const char* finish, bool first) const {
    json j = Base(chat ? "chat.completion.chunk" : "text_completion");
    json choice{{"index", 0}, {"finish_reason", finish}};
    if (chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      choice["delta"] = delta;
    } else {
      choice["text"] = "";
      choice["logprobs"] = nullptr;
    }
    j["choices"] = json::array({choice});
    return j;
  }
  json Whole(const runner::DoneEvent& d, const WholeGeneration& w) const {
    json j = Base(chat ? "chat.completion" : "text_completion");
    json choice{{"index", 0}, {"finish_reason", FinishReason(d.done_reason, !w.tool_calls.empty())}};
    if (chat) {
      json message{{"role", "assistant"}, {"content", w.text}};
      if (!w.thinking.empty()) message["reasoning"] = w.thinking;
      if (!w.tool_calls.empty()) message["tool_calls"] = OpenAiToolCalls(w.tool_calls, 0);
      choice["message"] = std::move(message);
    } else {
      choice["text"] = w.text;
      choice["logprobs"] = nullptr;
    }
    AddLogprobs(choice, w.logprobs);
    j["choices"] = json::array({choice});
    j["usage"] = Usage(d);
    return j;
  }
};

std::string SseEvent(const json& j) { return "data: " + DumpJson(j) + "\n\n"; }

void Run(std::shared_ptr<OpenAiGeneration> gen, bool stream, httplib::Response& res) {
  const char* route = gen->chat ? "/v1/chat/completions" : "/v1/completions";
  if (!stream) {
    auto whole = GenerateWhole(gen->lease, gen->request, gen->gone);
    if (!whole.ok()) {
      LogIfClientGone(route, gen->model, whole.status());
      return SendOpenAiError(res, whole.status());
    }
    return SendJson(res, gen->Whole(whole->done, *whole));
  }
  res.set_header("Cache-Control", "no-cache");
  // The status waits for the first piece of text: a failure before it (a prompt longer than the
  // context) is an HTTP error with OpenAI's error shape, not "200" and an error event.
  auto text = std::make_shared<GenerationStream>([gen](const std::function<bool(const runner::TokenEvent&)>& on_piece) {
    auto done = gen->lease.runner().GenerateEvents(gen->request, on_piece, gen->gone);
    gen->lease.Release();
    return done;
  });
  if (Status first_status = text->WaitForFirst(); !first_status.ok()) {
    if (first_status.code() == StatusCode::kCancelled) {
      first_status = Status::Cancelled("the client went away; generation cancelled before any text");
      LogIfClientGone(route, gen->model, first_status);
    }
    return SendOpenAiError(res, first_status);
  }
  res.set_chunked_content_provider("text/event-stream", [gen, text, route](size_t, httplib::DataSink& sink) {
    bool first = true;
    bool gone = false;
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    runner::TokenEvent piece;
    size_t pieces = 0;
    while (text->Next(&piece)) {
      ++pieces;
      for (const json& chunk : gen->Chunks(piece, first)) {
        if (!gone && !write(SseEvent(chunk))) {  // the client went away
          gone = true;
          text->Cancel();
        }
      }
      first = false;
    }
    const auto& done = text->result();
    if (done.ok()) NoteRequestTokens(done->prompt_eval_count, done->eval_count);  // the request log
    // Gone: a write failed, or the client watcher cancelled the generation first.
    if (gone || (!done.ok() && done.status().code() == StatusCode::kCancelled)) {
      // Normal: logged once here (the runner keeps llama.cpp's abort errors quiet).
      spdlog::info("{} for {}: the client went away; {}", route, gen->model,
                   done.ok() ? "the generation had ended"
                             : "generation cancelled after " + std::to_string(pieces) + " pieces of text");
    }
    if (done.ok()) {
      std::string finish = FinishReason(done->done_reason, gen->tool_calls_sent > 0);
      write(SseEvent(gen->FinishChunk(finish.c_str(), first)));
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

// Looks the model up, resolves options over its Modelfile parameters, checks what a chat asks
// of the model (tools, thinking: Ollama's checks) and takes a lease.
// `chat_call`: the chat's own fields (null for /v1/completions).
Result<std::shared_ptr<OpenAiGeneration>> Start(ApiContext& ctx, const OpenAiGenerationCall& call,
                                                 const OpenAiChatCall* chat_call, store::ModelEntry* entry_out) {
  const bool chat = chat_call != nullptr;
  auto entry = ctx.catalog.Find(call.model);
  if (!entry.ok()) return entry.status();
  auto options = ResolveOptions(call.options, entry->parameters, ctx.defaults);
  if (!options.ok()) return options.status();
  runner::GenerateRequest features;
  if (chat) {
    auto think = CheckModelFeatures(*entry, call.model, !chat_call->tools.tools.empty(), chat_call->think);
    if (!think.ok()) return think.status();
    RESIDENT_RETURN_IF_ERROR(ApplyToolUse(chat_call->tools, &features));
    features.think = *think;
    features.think_level = chat_call->think.level;
  }
  std::stop_token gone = BoundedHttpServer::ClientGone();
  auto lease = AcquireEntry(ctx, *entry, *options, call.keep_alive, gone);
  if (!lease.ok()) {
    LogIfClientGone(chat ? "/v1/chat/completions" : "/v1/completions", call.model, lease.status());
    return lease.status();
  }
  auto gen = std::make_shared<OpenAiGeneration>();
  gen->lease = std::move(lease).value();
  gen->id = NewId(chat ? "chatcmpl-" : "cmpl-");
  gen->model = call.model;
  gen->created = UnixSeconds(ctx.clock.WallNow());
  gen->chat = chat;
  gen->gone = gone;
  gen->include_usage = call.include_usage;
  gen->request = std::move(features);
  gen->request.num_predict = options->num_predict;
  gen->request.stop = options->stop;
  gen->request.sampling = options->sampling;
  gen->request.grammar = call.grammar;
  gen->request.logprobs = call.logprobs;
  gen->request.top_logprobs = call.top_logprobs;
  *entry_out = std::move(entry).value();
  return gen;
}

void HandleChatCompletions(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeOpenAiChat(req.body, ctx.defaults);
  if (!call.ok()) return SendOpenAiError(res, call.status());
  store::ModelEntry entry;
  auto gen = Start(ctx, *call, &*call, &entry);
  if (!gen.ok()) return SendOpenAiError(res, gen.status());
  auto& msgs = (*gen)->request.messages;
  if (!entry.system.empty() && call->messages.front().role != "system") msgs.push_back({"system", entry.system});
  for (const auto& [role, content] : entry.messages) msgs.push_back({role, content});
  msgs.insert(msgs.end(), call->messages.begin(), call->messages.end());
  Run(*gen, call->stream, res);
}

void HandleCompletions(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeOpenAiCompletion(req.body, ctx.defaults);
  if (!call.ok()) return SendOpenAiError(res, call.status());
  store::ModelEntry entry;
  auto gen = Start(ctx, *call, nullptr, &entry);
  if (!gen.ok()) return SendOpenAiError(res, gen.status());
  if (!call->suffix.empty() && !(*gen)->lease.runner().facts().fim) {
    return SendOpenAiError(res, Status::InvalidArgument("\"" + call->model + "\" does not support insert"));
  }
  // As Ollama's /v1/completions does: the prompt is the user's turn in the model's template
  // (after the Modelfile's SYSTEM), or prompt and suffix around the FIM tokens.
  runner::GenerateRequest& r = (*gen)->request;
  if (!call->suffix.empty()) {
    r.prompt = call->prompt;
    r.suffix = call->suffix;
  } else {
    if (!entry.system.empty()) r.messages.push_back({"system", entry.system});
    r.messages.push_back({"user", call->prompt});
  }
  Run(*gen, call->stream, res);
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
  auto call = DecodeOpenAiEmbedding(req.body);
  if (!call.ok()) return SendOpenAiError(res, call.status());
  const std::string& model = call->model;
  auto entry = ctx.catalog.Find(model);
  if (!entry.ok()) return SendOpenAiError(res, entry.status());
  auto options = ResolveOptions(ModelOptions{}, entry->parameters, ctx.defaults);
  if (!options.ok()) return SendOpenAiError(res, options.status());
  std::stop_token gone = BoundedHttpServer::ClientGone();
  auto lease = AcquireEntry(ctx, *entry, *options, call->keep_alive, gone);
  if (!lease.ok()) {
    LogIfClientGone("/v1/embeddings", model, lease.status());
    return SendOpenAiError(res, lease.status());
  }
  runner::EmbedRequest er;
  er.inputs = std::move(call->inputs);
  auto result = EmbedWhole(*lease, er, gone);
  if (!result.ok()) {
    LogIfClientGone("/v1/embeddings", model, result.status());
    return SendOpenAiError(res, result.status());
  }
  ApplyDimensions(call->dimensions, &result->embeddings);
  json data = json::array();
  for (size_t i = 0; i < result->embeddings.size(); ++i) {
    const auto& e = result->embeddings[i];
    json v = call->base64 ? json(Base64(e.data(), e.size() * sizeof(float))) : json(e);
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
