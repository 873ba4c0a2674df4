#include "api/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "api/auth.h"
#include "api/generation_json.h"
#include "api/generation_stream.h"
#include "api/http_util.h"
#include "api/metrics_routes.h"
#include "api/model_features.h"
#include "api/model_routes.h"
#include "api/openai_routes.h"
#include "api/request_log.h"
#include "api/ui_routes.h"
#include "core/bytes.h"
#include "core/time_format.h"
#include "store/model_name.h"

namespace resident::api {
namespace {

using nlohmann::json;
using Ns = std::chrono::nanoseconds;

// Ollama reads every body as JSON whatever its Content-Type, and `curl -d` (every example in its
// docs) sends application/x-www-form-urlencoded. httplib caps such a body at 8 KB
// (CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH, a 413 that RESIDENT_MAX_BODY cannot lift) and
// reads a multipart/form-data body into parts, leaving req.body empty. Without the header every
// body is read as it is, up to RESIDENT_MAX_BODY. Called from the pre-routing handler, which
// httplib runs on its own (non-const) Request before it reads the body.
void ReadBodyWhateverItsType(const httplib::Request& req) {
  const_cast<httplib::Request&>(req).headers.erase("Content-Type");
}

// The catalog's details (from the store or the Modelfile), completed by the loaded model's facts
// (`f`, when loaded). Without a catalog entry (its file was removed while loaded), the facts alone.
json EntryDetails(const store::ModelEntry& entry, const runner::ModelFacts* f) {
  store::ModelEntry e = entry;
  if (f && e.family.empty()) e.family = f->architecture;
  if (f && e.parameter_size.empty() && f->n_params) e.parameter_size = FormatCount(f->n_params);
  return ModelDetailsJson(e);
}

// Final statistics shared by generate and chat; zero values are omitted, as Ollama does.
void AddTimings(json& j, const runner::DoneEvent& d, Ns total, Ns load) {
  auto put = [&](const char* k, int64_t v) {
    if (v != 0) j[k] = v;
  };
  put("total_duration", total.count());
  put("load_duration", load.count());
  put("prompt_eval_count", d.prompt_eval_count);
  put("prompt_eval_duration", d.prompt_eval_ns);
  put("eval_count", d.eval_count);
  put("eval_duration", d.eval_ns);
}

// One generation shared by /api/generate and /api/chat, streamed or not.
struct Generation {
  sched::Lease lease;
  runner::GenerateRequest request;
  std::string model;
  bool chat = false;
  bool raw = false;      // generate: a raw prompt's answer has no `context`, as Ollama's
  std::stop_token gone;  // the client went away (BoundedHttpServer::ClientGone)
  TimePoint started;
  const Clock* clock = nullptr;
  size_t tool_calls_sent = 0;  // the index of the answer's next tool call

  // A piece of the answer (streamed), or the whole answer: text, thinking, tool calls and the
  // tokens' log-probabilities, in Ollama's shape.
  json Chunk(const runner::TokenEvent& piece, bool done) {
    json j{{"model", model}, {"created_at", FormatRfc3339(clock->WallNow())}};
    if (chat) {
      json message{{"role", "assistant"}, {"content", piece.text}};
      if (!piece.thinking.empty()) message["thinking"] = piece.thinking;
      if (!piece.tool_calls.empty()) {
        message["tool_calls"] = OllamaToolCalls(piece.tool_calls, tool_calls_sent);
        tool_calls_sent += piece.tool_calls.size();
      }
      j["message"] = std::move(message);
    } else {
      j["response"] = piece.text;
      if (!piece.thinking.empty()) j["thinking"] = piece.thinking;
    }
    j["done"] = done;
    if (!piece.logprobs.empty()) j["logprobs"] = LogprobsJson(piece.logprobs);
    return j;
  }
  json Final(const runner::DoneEvent& d, const runner::TokenEvent& last) {
    json j = Chunk(last, true);
    j["done_reason"] = d.done_reason;
    if (!chat && !raw) j["context"] = d.context;
    AddTimings(j, d, clock->Now() - started, lease.load_duration());
    return j;
  }
};

std::string BodyTooLarge(size_t max_body_bytes) {
  return "request body too large (the limit is " + FormatBytes(max_body_bytes) + ", RESIDENT_MAX_BODY)";
}

// The connection limits, with the body limit that chunked bodies are held to as they are read.
ConnectionLimits LimitsWithBody(ConnectionLimits limits, size_t max_body_bytes) {
  limits.max_body_bytes = max_body_bytes;
  limits.max_body_message = BodyTooLarge(max_body_bytes);
  return limits;
}

}  // namespace

ApiServer::ApiServer(Options options, sched::Scheduler& scheduler, const store::ModelCatalog& catalog,
                     const Clock& clock)
    : options_(std::move(options)), ctx_{scheduler, catalog, clock, options_.defaults, options_.request_log,
          options_.prompt_cache_stats, options_.page_cache, options_.gpus},
      origins_(options_.origins), hosts_(options_.origins, options_.host),
      http_(std::make_unique<BoundedHttpServer>(LimitsWithBody(options_.limits, options_.max_body_bytes))) {
  http_->set_payload_max_length(options_.max_body_bytes);
  // Small writes (NDJSON lines, a short JSON answer after its headers) go out at once: with
  // Nagle on, each meets the client's delayed ACK and a warm request pays 40 ms.
  http_->set_tcp_nodelay(true);
  Routes();
}

ApiServer::~ApiServer() { Stop(); }

Status ApiServer::Bind() {
  if (options_.port == 0) {
    port_ = http_->BindAnyPort(options_.host);
    if (port_ <= 0) return Status::Unavailable("cannot listen on " + options_.host);
  } else {
    if (!http_->BindPort(options_.host, options_.port)) {
      return Status::Unavailable(fmt::format("cannot listen on {}:{}: the address is in use or not available",
                                             options_.host, options_.port));
    }
    port_ = options_.port;
  }
  check_host_ = http_->BoundToLoopbackOnly();
  return Status::Ok();
}

bool ApiServer::loopback_only() const { return http_->BoundToLoopbackOnly(); }

void ApiServer::Serve() { http_->listen_after_bind(); }

void ApiServer::Stop() { http_->stop(); }

void ApiServer::Routes() {
  auto running = [](const httplib::Request&, httplib::Response& res) {
    res.set_content("resident is running", "text/plain; charset=utf-8");
  };
  http_->Get("/", running);
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    NoteRequestStart(ctx_);  // request latency for /metrics
    BeginRequestRecord(ctx_.clock.WallNow());  // its line in the request log, if it gets a model
    if (req.path.size() > kMaxRoutedPath) {  // no route is that long (see kMaxRoutedPath)
      res.status = 404;
      return httplib::Server::HandlerResponse::Handled;
    }
    ReadBodyWhateverItsType(req);
    return Admit(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  // The Ollama API version resident answers as (clients gate features on it), and its own.
  http_->Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, json{{"version", kOllamaApiVersion}, {"resident_version", RESIDENT_VERSION}});
  });
  http_->Post("/api/generate", [this](const httplib::Request& req, httplib::Response& res) { HandleGenerate(req, res); });
  http_->Post("/api/chat", [this](const httplib::Request& req, httplib::Response& res) { HandleChat(req, res); });
  http_->Post("/api/embed", [this](const httplib::Request& req, httplib::Response& res) { HandleEmbed(req, res, false); });
  http_->Post("/api/embeddings",
              [this](const httplib::Request& req, httplib::Response& res) { HandleEmbed(req, res, true); });
  http_->Get("/api/ps", [this](const httplib::Request&, httplib::Response& res) { HandlePs(res); });
  http_->Get("/api/tags", [this](const httplib::Request&, httplib::Response& res) { HandleTags(res); });
  RegisterOpenAiRoutes(*http_, ctx_);
  RegisterModelRoutes(*http_, ctx_, options_.store);
  RegisterMetricsRoutes(*http_, ctx_);
  RegisterUiRoutes(*http_, ctx_, options_.dashboard);
  // Answers httplib made itself (no route, a body over the limit, a bad request line) get a
  // message; on /v1 routes every error has OpenAI's shape.
  http_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
    std::string msg;
    switch (res.status) {
      case 404: msg = "404 page not found"; break;
      case 413: msg = BodyTooLarge(options_.max_body_bytes); break;
      case 414: msg = "request line too long (the limit is 8 KB)"; break;
      case 400: msg = "bad request: a malformed request line (METHOD /path HTTP/1.1) or an unknown method"; break;
      default: msg = "HTTP " + std::to_string(res.status); break;
    }
    SendErrorStatus(req, res, res.status, msg);
  });
  // A handler that throws is a bug: the log gets the exception, the client a 500 that says where
  // to look, never the library's internal message.
  http_->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{} {} failed: {}", req.method, req.path, what);
    SendErrorStatus(req, res, 500, "internal error while handling " + req.path + " (the server log has the details)");
  });
}

bool ApiServer::Admit(const httplib::Request& req, httplib::Response& res) {
  // CORS first, as in Ollama: a page from an origin not on the list gets nothing, preflight or
  // not. A request without Origin is not a browser's cross-origin request.
  const std::string origin = req.get_header_value("Origin");
  if (!origin.empty()) {
    if (!origins_.Allows(origin)) {
      res.status = 403;
      res.set_content(DumpJson(json{{"error", "origin \"" + origin +
                                                  "\" is not allowed (add it to RESIDENT_ORIGINS or OLLAMA_ORIGINS)"}}),
                      "application/json; charset=utf-8");
      return false;
    }
    res.set_header("Access-Control-Allow-Origin", origins_.allows_all() ? "*" : origin);
    if (!origins_.allows_all()) res.set_header("Vary", "Origin");
    if (req.method == "OPTIONS") {  // a preflight, answered before the Host check, as in Ollama
      res.set_header("Access-Control-Allow-Methods", std::string(kCorsAllowMethods));
      res.set_header("Access-Control-Allow-Headers", std::string(kCorsAllowHeaders));
      res.set_header("Access-Control-Max-Age", std::string(kCorsMaxAgeSeconds));
      res.status = 204;
      return false;
    }
  }
  // On loopback, only local names and addresses (DNS rebinding; api/host_check.h).
  if (check_host_) {
    const std::string host = req.get_header_value("Host");
    if (!hosts_.Allows(host)) {
      res.status = 403;
      res.set_content(DumpJson(json{{"error", "host \"" + host +
                                                  "\" is not allowed: a server listening on loopback answers only "
                                                  "local names and addresses (add an origin with this host to "
                                                  "RESIDENT_ORIGINS to allow it)"}}),
                      "application/json; charset=utf-8");
      return false;
    }
  }
  // Any OPTIONS never needs the key: browsers send preflights without credentials.
  if (req.method == "OPTIONS") {
    res.status = 204;
    return false;
  }
  if (options_.api_key.empty()) return true;
  if (req.path == "/" && (req.method == "GET" || req.method == "HEAD")) return true;  // "resident is running"
  // The dashboard's page itself (no data: every call it makes needs the key, which it asks for).
  if (IsUiAssetPath(req.path) && (req.method == "GET" || req.method == "HEAD")) return true;
  KeyCheck check = CheckBearer(req.get_header_value("Authorization"), options_.api_key);
  if (check == KeyCheck::kAccepted) return true;
  res.status = 401;
  res.set_header("WWW-Authenticate", check == KeyCheck::kMissing ? "Bearer" : "Bearer error=\"invalid_token\"");
  std::string msg = check == KeyCheck::kMissing
                        ? "unauthorized: this server needs an API key (send the header \"Authorization: Bearer <key>\")"
                        : "unauthorized: the API key is not valid";
  res.set_content(DumpJson(json{{"error", msg}}), "application/json; charset=utf-8");
  return false;
}

void ApiServer::HandleLoadOrUnload(const std::string& model, const std::optional<KeepAlive>& keep_alive,
                                   const ModelOptions& options, bool chat, httplib::Response& res) {
  bool unload = keep_alive && !keep_alive->forever && keep_alive->duration == Duration::zero();
  auto entry = ctx_.catalog.Find(model);
  std::string done_reason;
  if (unload) {
    std::string path;
    if (entry.ok()) {
      path = entry->path;
    } else if (entry.status().code() == StatusCode::kNotFound) {
      // Its file may have been deleted while it was loaded: it is still unloaded by name.
      auto parsed = store::ParseModelName(model);
      for (const auto& m : ctx_.scheduler.Snapshot()) {
        if (m.name == model || (parsed.ok() && m.name == parsed->Display())) path = m.path;
      }
      if (path.empty()) return SendError(res, Status::NotFound("model '" + model + "' not found"));
    } else {
      return SendError(res, entry.status());
    }
    ctx_.scheduler.Unload(path);
    done_reason = "unload";
  } else {
    if (!entry.ok()) return SendError(res, entry.status());
    auto resolved = ResolveOptions(options, entry->parameters, ctx_.defaults);
    if (!resolved.ok()) return SendError(res, resolved.status());
    auto lease = AcquireEntry(ctx_, *entry, *resolved, keep_alive, BoundedHttpServer::ClientGone());
    if (!lease.ok()) {
      LogIfClientGone(chat ? "/api/chat" : "/api/generate", model, lease.status());
      return SendError(res, lease.status());
    }
    done_reason = "load";
  }
  json j{{"model", model}, {"created_at", FormatRfc3339(ctx_.clock.WallNow())}};
  if (chat) j["message"] = json{{"role", "assistant"}, {"content", ""}};
  else j["response"] = "";
  j["done"] = true;
  j["done_reason"] = done_reason;
  SendJson(res, j);
}

namespace {

// Runs a generation to the end, streaming NDJSON chunks or answering one object.
void RunGeneration(std::shared_ptr<Generation> gen, bool stream, httplib::Response& res) {
  const char* route = gen->chat ? "/api/chat" : "/api/generate";
  if (!stream) {
    auto whole = GenerateWhole(gen->lease, gen->request, gen->gone);
    if (!whole.ok()) {
      LogIfClientGone(route, gen->model, whole.status());
      return SendError(res, whole.status());
    }
    runner::TokenEvent all;
    all.text = std::move(whole->text);
    all.thinking = std::move(whole->thinking);
    all.tool_calls = std::move(whole->tool_calls);
    all.logprobs = std::move(whole->logprobs);
    return SendJson(res, gen->Final(whole->done, all));
  }
  // The status waits for the first piece of text: a failure before it (a prompt longer than the
  // context) is an HTTP error, as Ollama answers it, not "200" and an error line.
  auto text = std::make_shared<GenerationStream>([gen](const std::function<bool(const runner::TokenEvent&)>& on_piece) {
    auto done = gen->lease.runner().GenerateEvents(gen->request, on_piece, gen->gone);
    gen->lease.Release();
    return done;
  });
  if (Status first = text->WaitForFirst(); !first.ok()) {
    if (first.code() == StatusCode::kCancelled) {
      first = Status::Cancelled("the client went away; generation cancelled before any text");
      LogIfClientGone(route, gen->model, first);
    }
    return SendError(res, first);
  }
  res.set_chunked_content_provider("application/x-ndjson", [gen, text, route](size_t, httplib::DataSink& sink) {
    runner::TokenEvent piece;
    bool gone = false;
    size_t pieces = 0;
    while (text->Next(&piece)) {
      ++pieces;
      std::string line = JsonLine(gen->Chunk(piece, false));
      if (!gone && !sink.write(line.data(), line.size())) {  // the client went away
        gone = true;
        text->Cancel();
      }
    }
    const auto& done = text->result();
    if (done.ok()) NoteRequestTokens(done->prompt_eval_count, done->eval_count);  // the request log
    // Gone: a write failed, or the client watcher cancelled the generation first.
    if (gone || (!done.ok() && done.status().code() == StatusCode::kCancelled)) {
      // Normal: logged once here (the runner keeps llama.cpp's abort errors quiet).
      spdlog::info("{} for {}: the client went away; {}", route, gen->model,
                   done.ok() ? "the generation had ended" : "generation cancelled after " + std::to_string(pieces) +
                                                               " pieces of text");
    }
    std::string last;
    if (done.ok()) {
      last = JsonLine(gen->Final(*done, runner::TokenEvent{}));
    } else if (done.status().code() != StatusCode::kCancelled) {
      spdlog::warn("generation for {} failed: {}", gen->model, done.status().message());
      last = JsonLine(json{{"error", done.status().message()}});
    }
    if (!last.empty()) sink.write(last.data(), last.size());
    sink.done();
    return true;
  });
}

}  // namespace

namespace {

// Looks the model up and resolves its options (server defaults < Modelfile < request).
// Errors: the catalog's (400 bad name, 404 unknown), a Modelfile parameter that does not decode.
struct ResolvedModel {
  store::ModelEntry entry;
  ModelOptions options;
};
Result<ResolvedModel> Resolve(ApiContext& ctx, const std::string& model, const ModelOptions& request_options) {
  auto entry = ctx.catalog.Find(model);
  if (!entry.ok()) return entry.status();
  auto options = ResolveOptions(request_options, entry->parameters, ctx.defaults);
  if (!options.ok()) return options.status();
  return ResolvedModel{std::move(entry).value(), std::move(options).value()};
}

void FillSampling(const ModelOptions& o, runner::GenerateRequest* r) {
  r->num_predict = o.num_predict;
  r->stop = o.stop;
  r->sampling = o.sampling;
}

}  // namespace

// Generate's prompt, as Ollama builds it: `raw` (or a pass-through template) sends the prompt as
// it is; otherwise the system prompt (the request's, else the Modelfile's), the Modelfile's
// MESSAGEs (only when no `context` continues an earlier exchange) and the prompt as the user's
// turn are rendered with the model's chat template. `suffix` lays prompt and suffix out with the
// model's fill-in-the-middle tokens instead. A request `template` other than "{{ .Prompt }}"
// is ignored: see TemplateUse in api/requests.h.
void ApiServer::HandleGenerate(const httplib::Request& req, httplib::Response& res) {
  TimePoint started = ctx_.clock.Now();
  auto call = DecodeGenerate(req.body, ctx_.defaults);
  if (!call.ok()) return SendError(res, call.status());
  if (call->prompt.empty() && call->system.empty() && call->context.empty() && call->suffix.empty()) {
    return HandleLoadOrUnload(call->model, call->keep_alive, call->options, false, res);
  }
  auto model = Resolve(ctx_, call->model, call->options);
  if (!model.ok()) return SendError(res, model.status());
  const store::ModelEntry& entry = model->entry;
  auto think = CheckModelFeatures(entry, call->model, /*tools=*/false, call->think);
  if (!think.ok()) return SendError(res, think.status());
  std::stop_token gone = BoundedHttpServer::ClientGone();
  auto lease = AcquireEntry(ctx_, entry, model->options, call->keep_alive, gone);
  if (!lease.ok()) {
    LogIfClientGone("/api/generate", call->model, lease.status());
    return SendError(res, lease.status());
  }
  if (!call->suffix.empty() && !lease->runner().facts().fim) {
    return SendError(res, Status::InvalidArgument("\"" + call->model + "\" does not support insert"));
  }

  auto gen = std::make_shared<Generation>();
  gen->lease = std::move(lease).value();
  gen->model = call->model;
  gen->gone = gone;
  gen->started = started;
  gen->clock = &ctx_.clock;
  runner::GenerateRequest& r = gen->request;
  const std::string& tmpl = call->template_text.empty() ? entry.template_text : call->template_text;
  bool pass_through = !tmpl.empty() && ClassifyTemplate(tmpl) == TemplateUse::kPassThrough;
  if (!call->template_text.empty() && !pass_through) {
    spdlog::info("generate for {}: the request's Go template is ignored; the model's chat template is used",
                 call->model);
  }
  if (!call->suffix.empty()) {
    r.prompt = call->prompt;
    r.suffix = call->suffix;
  } else if (call->raw || pass_through) {
    r.prompt = call->prompt;
  } else {
    const std::string& system = call->system.empty() ? entry.system : call->system;
    if (!system.empty()) r.messages.push_back({"system", system});
    if (call->context.empty()) {
      for (const auto& [role, content] : entry.messages) r.messages.push_back({role, content});
    }
    r.messages.push_back({"user", call->prompt});
  }
  r.context = call->context;
  r.grammar = call->grammar;
  FillSampling(model->options, &r);
  gen->raw = call->raw;
  r.return_context = !call->raw;
  if (!r.messages.empty()) {  // rendered by the chat template: thinking applies
    r.think = *think;
    r.think_level = call->think.level;
  }
  r.logprobs = call->logprobs;
  r.top_logprobs = call->top_logprobs;
  RunGeneration(gen, call->stream, res);
}

// Chat: the Modelfile's MESSAGEs come first; its SYSTEM is put in front unless the conversation
// starts with a system message of its own.
void ApiServer::HandleChat(const httplib::Request& req, httplib::Response& res) {
  TimePoint started = ctx_.clock.Now();
  auto call = DecodeChat(req.body, ctx_.defaults);
  if (!call.ok()) return SendError(res, call.status());
  if (call->messages.empty()) {
    return HandleLoadOrUnload(call->model, call->keep_alive, call->options, true, res);
  }
  auto model = Resolve(ctx_, call->model, call->options);
  if (!model.ok()) return SendError(res, model.status());
  const store::ModelEntry& entry = model->entry;
  auto think = CheckModelFeatures(entry, call->model, !call->tools.tools.empty(), call->think);
  if (!think.ok()) return SendError(res, think.status());
  runner::GenerateRequest features;  // tools, thinking and logprobs, before any load
  if (Status st = ApplyToolUse(call->tools, &features); !st.ok()) return SendError(res, st);
  std::stop_token gone = BoundedHttpServer::ClientGone();
  auto lease = AcquireEntry(ctx_, entry, model->options, call->keep_alive, gone);
  if (!lease.ok()) {
    LogIfClientGone("/api/chat", call->model, lease.status());
    return SendError(res, lease.status());
  }

  auto gen = std::make_shared<Generation>();
  gen->lease = std::move(lease).value();
  gen->model = call->model;
  gen->chat = true;
  gen->gone = gone;
  gen->started = started;
  gen->clock = &ctx_.clock;
  std::vector<runner::ChatMessage>& msgs = gen->request.messages;
  if (!entry.system.empty() && call->messages.front().role != "system") msgs.push_back({"system", entry.system});
  for (const auto& [role, content] : entry.messages) msgs.push_back({role, content});
  msgs.insert(msgs.end(), call->messages.begin(), call->messages.end());
  gen->request.grammar = call->grammar;
  FillSampling(model->options, &gen->request);
  gen->request.tools = std::move(features.tools);
  gen->request.tool_choice = features.tool_choice;
  gen->request.parallel_tool_calls = features.parallel_tool_calls;
  gen->request.think = *think;
  gen->request.think_level = call->think.level;
  gen->request.logprobs = call->logprobs;
  gen->request.top_logprobs = call->top_logprobs;
  RunGeneration(gen, call->stream, res);
}

void ApiServer::HandleEmbed(const httplib::Request& req, httplib::Response& res, bool legacy) {
  TimePoint started = ctx_.clock.Now();
  auto call = DecodeEmbed(req.body, ctx_.defaults, legacy);
  if (!call.ok()) return SendError(res, call.status());
  auto model = Resolve(ctx_, call->model, call->options);
  if (!model.ok()) return SendError(res, model.status());
  const char* route = legacy ? "/api/embeddings" : "/api/embed";
  std::stop_token gone = BoundedHttpServer::ClientGone();
  auto lease = AcquireEntry(ctx_, model->entry, model->options, call->keep_alive, gone);
  if (!lease.ok()) {
    LogIfClientGone(route, call->model, lease.status());
    return SendError(res, lease.status());
  }
  if (call->inputs.empty()) {
    if (legacy) return SendJson(res, json{{"embedding", json::array()}});
    return SendJson(res, json{{"model", call->model}, {"embeddings", json::array()}});
  }
  runner::EmbedRequest er;
  er.inputs = call->inputs;
  er.truncate = call->truncate;
  er.normalize = !legacy;  // the legacy endpoint returns raw vectors, as Ollama's does
  Ns load_ns = lease->load_duration();
  auto result = EmbedWhole(*lease, er, gone);
  if (!result.ok()) {
    LogIfClientGone(route, call->model, result.status());
    return SendError(res, result.status());
  }
  if (legacy) return SendJson(res, json{{"embedding", result->embeddings.front()}});
  ApplyDimensions(call->dimensions, &result->embeddings);
  json j{{"model", call->model}, {"embeddings", result->embeddings}};
  AddTimings(j, runner::DoneEvent{.prompt_eval_count = result->prompt_eval_count}, ctx_.clock.Now() - started, load_ns);
  SendJson(res, j);
}

Status ApiServer::Preload(const std::string& model) {
  auto entry = ctx_.catalog.Find(model);
  if (!entry.ok()) return entry.status();
  auto options = ResolveOptions(ModelOptions{}, entry->parameters, ctx_.defaults);
  if (!options.ok()) return options.status();
  ctx_.scheduler.Preload(SpecFor(*entry, *options));
  return Status::Ok();
}

void ApiServer::HandlePs(httplib::Response& res) {
  json models = json::array();
  // "Forever" reads as a date far in the future, as Ollama reports it.
  const WallTime far_future = ctx_.clock.WallNow() + std::chrono::hours(24 * 365 * 200);
  for (const sched::LoadedModel& m : ctx_.scheduler.Snapshot()) {
    auto entry = ctx_.catalog.Find(m.name);
    // In use: when it would expire if the request ended now.
    Duration keep = m.keep_alive.automatic ? m.planned_keep.value_or(Duration::zero()) : m.keep_alive.duration;
    WallTime expires = m.keep_alive.forever ? far_future
                                            : m.expires_at.value_or(SaturatingAdd(ctx_.clock.WallNow(), keep));
    // Asleep, what it holds asleep (measured once asleep).
    const uint64_t size = m.sleeping && m.sleeping_bytes ? m.sleeping_bytes
                          : m.measured_bytes             ? m.measured_bytes
                                                         : m.facts.rss_bytes;
    // As Ollama's: size is the whole model, size_vram the part of it on a GPU.
    json model{{"name", m.name},
               {"model", m.name},
               {"size", size + m.vram_bytes},
               {"digest", entry.ok() ? entry->digest : ""},
               {"details", EntryDetails(entry.ok() ? *entry : store::ModelEntry{}, &m.facts)},
               {"expires_at", FormatRfc3339(expires)},
               {"size_vram", m.vram_bytes},
               {"context_length", m.facts.n_ctx},
               // resident's additions: what it predicted, what it measured, and why the model stays.
               {"size_predicted", m.predicted_bytes},
               {"size_measured", m.sleeping ? m.sleeping_bytes : m.measured_bytes},
               {"load_seconds", ToSeconds(m.load_duration)},
               {"keep_alive", m.keep_alive.ToString()},
               {"pinned", m.pinned},
               {"active_requests", m.active_requests}};
    if (!m.keep_alive_reason.empty()) model["keep_alive_reason"] = m.keep_alive_reason;
    if (m.prewarmed) model["prewarmed"] = true;
    // resident's addition: its tier. Asleep, its context is freed (the next request wakes it);
    // size_awake is what it held awake.
    model["state"] = m.sleeping ? "sleeping" : "loaded";
    if (m.sleeping) model["size_awake"] = m.measured_bytes;
    if (m.sleep_after) model["sleep_after"] = m.sleep_after->ToString();
    if (m.sleeps_at) model["sleeps_at"] = FormatRfc3339(*m.sleeps_at);
    // resident's addition: where its layers are.
    if (m.gpu >= 0) {
      model["gpu"] = json{{"index", m.gpu},
                          {"layers", m.gpu_layers},
                          {"total_layers", m.total_layers},
                          {"vram_predicted", m.vram_predicted}};
    }
    models.push_back(std::move(model));
  }
  json out{{"models", models}};
  // resident's addition: models "auto" unloaded and will load again ahead of a predicted request.
  std::vector<sched::PendingPrewarm> prewarms = ctx_.scheduler.Prewarms();
  if (!prewarms.empty()) {
    json list = json::array();
    for (const auto& p : prewarms) {
      list.push_back(json{{"model", p.name},
                          {"load_at", FormatRfc3339(p.load_at)},
                          {"expected_at", FormatRfc3339(p.ready_at)},
                          {"reason", p.reason}});
    }
    out["prewarms"] = std::move(list);
  }
  SendJson(res, out);
}

void ApiServer::HandleTags(httplib::Response& res) {
  json models = json::array();
  for (const store::ModelEntry& e : ctx_.catalog.List()) {
    json details = EntryDetails(e, nullptr);
    // resident's addition: how much of the weights file is in the page cache now (a model whose
    // file is cached loads without reading the disk).
    if (ctx_.page_cache != nullptr) {
      if (auto cached = ctx_.page_cache->Get(e.path)) {
        details["page_cache_bytes"] = cached->cached_bytes;
        details["page_cache_fraction"] = cached->fraction();
      }
    }
    models.push_back(json{{"name", e.name},
                          {"model", e.name},
                          {"modified_at", FormatRfc3339(e.modified)},
                          {"size", e.size},
                          {"digest", e.digest},
                          {"details", std::move(details)}});
  }
  SendJson(res, json{{"models", models}});
}

}  // namespace resident::api
