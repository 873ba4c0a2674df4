// Small pieces shared by every route file: JSON answers, errors, NDJSON lines, a model's
// details, and the seam to the scheduler: a lease on a model the catalog found.
#pragma once

#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/requests.h"
#include "core/clock.h"
#include "core/page_cache.h"
#include "core/status.h"
#include "runner/prompt_cache_stats.h"
#include "sched/scheduler.h"
#include "store/model_catalog.h"

namespace httplib {
struct Request;
struct Response;
}

#include "core/gpu_discovery.h"

namespace resident::api {

class RequestLog;

// The Ollama release whose API resident matches (its routes, fields, defaults and messages, read
// from its code): /api/version answers it, since clients gate features on Ollama's version.
inline constexpr const char* kOllamaApiVersion = "0.32.15";

// What every route needs. Owned by ApiServer; route files get a reference.
struct ApiContext {
  sched::Scheduler& scheduler;
  const store::ModelCatalog& catalog;
  const Clock& clock;
  RequestDefaults defaults;
  RequestLog* request_log = nullptr;  // api/request_log.h; null: requests are not recorded
  const runner::PromptCacheStats* prompt_cache_stats = nullptr;  // for /metrics; nullptr: not shown
  PageCacheTracker* page_cache = nullptr;  // how much of each model file is cached; nullptr: unknown
  const GpuDiscovery* gpus = nullptr;      // the machine's GPUs, for /metrics; nullptr: none shown
};

// HTTP status for a Status code (400, 404, 499, 503, 500).
int HttpStatusFor(const Status& status);

// {"error": message} with the status's HTTP code, Ollama's error shape.
void SendError(httplib::Response& res, const Status& status);
// {"error":{"message","type","param":null,"code":null}} with the status's HTTP code, OpenAI's
// error shape (type invalid_request_error for 400, not_found_error for 404, api_error otherwise),
// for the /v1 routes.
void SendOpenAiError(httplib::Response& res, const Status& status);
// An error with this HTTP status and message, in the shape of the request's route: OpenAI's for
// paths under /v1/, Ollama's otherwise.
void SendErrorStatus(const httplib::Request& req, httplib::Response& res, int http_status, const std::string& message);
void SendJson(httplib::Response& res, const nlohmann::json& body);
// One NDJSON line (invalid UTF-8 replaced, never thrown).
std::string JsonLine(const nlohmann::json& j);
std::string DumpJson(const nlohmann::json& j);

// A model's "details" object, as /api/tags, /api/ps and /api/show write it: parent_model, format,
// family, families, parameter_size, quantization_level.
nlohmann::json ModelDetailsJson(const store::ModelEntry& entry);

// The scheduler's spec of a model looked up in the catalog, with resolved options: its name, the
// load request (weights, load options, a Jinja TEMPLATE) and the weights file's identity.
sched::ModelSpec SpecFor(const store::ModelEntry& entry, const ModelOptions& options);

// Takes a lease on a model already looked up in the catalog (loading it if needed), with options
// already resolved (ResolveOptions). A Jinja TEMPLATE (store::TemplateKind::kJinja) goes with the
// load and replaces the GGUF's chat template. `gone` (BoundedHttpServer::ClientGone()) ends a
// wait in the queue. Errors: the scheduler's (a template the runner cannot parse fails the load;
// kCancelled when the client went away while the request waited).
Result<sched::Lease> AcquireEntry(ApiContext& ctx, const store::ModelEntry& entry, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive, std::stop_token gone);

// Runs a generation to its end without streaming, collecting the text, then releases the lease.
// `gone` cancels it (kCancelled, "the client went away; ..."), also before it starts.
struct WholeGeneration {
  runner::DoneEvent done;
  std::string text;
  // A chat's parsed answer (tools, thinking), and the tokens' log-probabilities when asked for.
  std::string thinking;
  std::vector<runner::ToolCall> tool_calls;
  std::vector<runner::TokenLogprob> logprobs;
};
Result<WholeGeneration> GenerateWhole(sched::Lease& lease, const runner::GenerateRequest& request,
                                      std::stop_token gone);

// Ollama's `dimensions`: when 0 < dimensions < an embedding's width, the embedding is cut to its
// first `dimensions` values and L2-normalized again; otherwise it stays whole.
void ApplyDimensions(int32_t dimensions, std::vector<std::vector<float>>* embeddings);

// Runs an embedding, then releases the lease. `gone` cancels it between inputs: kCancelled.
Result<runner::EmbedResult> EmbedWhole(sched::Lease& lease, const runner::EmbedRequest& request, std::stop_token gone);

// A request whose client went away ends with kCancelled; its answer (499) reaches nobody, so the
// log says what happened, once, in resident's format: "<route> for <model>: <message>". Returns
// true when `status` is such a cancellation.
bool LogIfClientGone(std::string_view route, std::string_view model, const Status& status);

}  // namespace resident::api
