// Small pieces shared by every route file: JSON answers, errors, NDJSON lines, and getting a
// lease on a model by name.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/requests.h"
#include "core/clock.h"
#include "core/status.h"
#include "sched/scheduler.h"
#include "store/model_catalog.h"

namespace httplib {
class Response;
}

namespace resident::api {

// What every route needs. Owned by ApiServer; route files get a reference.
struct ApiContext {
  sched::Scheduler& scheduler;
  const store::ModelCatalog& catalog;
  const Clock& clock;
  RequestDefaults defaults;
};

// HTTP status for a Status code (400, 404, 499, 503, 500).
int HttpStatusFor(const Status& status);

// {"error": message} with the status's HTTP code, Ollama's error shape.
void SendError(httplib::Response& res, const Status& status);
void SendJson(httplib::Response& res, const nlohmann::json& body);
// One NDJSON line (invalid UTF-8 replaced, never thrown).
std::string JsonLine(const nlohmann::json& j);
std::string DumpJson(const nlohmann::json& j);

// Finds the model by name and takes a lease on it (loading it if needed). Errors: the catalog's
// (400 bad name, 404 unknown) or the scheduler's (load failure, busy).
// The same for a model already looked up, with options already resolved (ResolveOptions). A
// Jinja TEMPLATE (store::TemplateKind::kJinja) goes with the load and replaces the GGUF's chat
// template. Errors: the scheduler's (a template the runner cannot parse fails the load).
// The scheduler's spec of a model looked up in the catalog, with resolved options: its name, the
// load request (weights, load options, a Jinja TEMPLATE) and the weights file's identity.
sched::ModelSpec SpecFor(const store::ModelEntry& entry, const ModelOptions& options);

Result<sched::Lease> AcquireEntry(ApiContext& ctx, const store::ModelEntry& entry, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive);

Result<sched::Lease> AcquireModel(ApiContext& ctx, const std::string& model, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive);

// Runs a generation to its end without streaming, collecting the text, then releases the lease.
struct WholeGeneration {
  runner::DoneEvent done;
  std::string text;
};
Result<WholeGeneration> GenerateWhole(sched::Lease& lease, const runner::GenerateRequest& request);

}  // namespace resident::api
