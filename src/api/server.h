// ApiServer: the HTTP adapter. Decodes requests into native structs (api/requests.h,
// api/openai_requests.h), asks the catalog for the weights file and the scheduler for a lease,
// drives the runner, and writes Ollama-shaped JSON or NDJSON streams (OpenAI's on /v1). It holds
// no model state of its own.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/bounded_http_server.h"
#include "api/cors.h"
#include "api/host_check.h"
#include "api/http_util.h"
#include "api/request_log.h"
#include "api/requests.h"
#include "api/ui_routes.h"
#include "core/clock.h"
#include "core/page_cache.h"
#include "core/status.h"
#include "sched/scheduler.h"
#include "store/model_catalog.h"
#include "store/model_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace resident::api {

class ApiServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 11434;  // 0: any free port (tests)
    RequestDefaults defaults;
    size_t max_body_bytes = 32u << 20;  // larger bodies: 413
    ConnectionLimits limits;            // connections at once, idle timeout, header size
    // When set, every request but `GET /`, the dashboard's page (`GET /ui`, its script and style)
    // and CORS preflights needs `Authorization: Bearer <key>`.
    std::string api_key;
    // Origins allowed besides the local ones (RESIDENT_ORIGINS / OLLAMA_ORIGINS); see api/cors.h.
    std::vector<std::string> origins;
    store::ModelStore* store = nullptr;  // writable store for /api/create, copy, delete (not owned)
    RequestLog* request_log = nullptr;   // one line per model request (not owned); null: none
    DashboardOptions dashboard;          // GET /ui and the data it shows (api/ui_routes.h)
    // The prompt cache's counters, for /metrics (not owned; nullptr: not shown).
    const runner::PromptCacheStats* prompt_cache_stats = nullptr;
    // How much of each model file is in the page cache, for /api/tags and /metrics (not owned;
    // nullptr: not reported).
    PageCacheTracker* page_cache = nullptr;
    const GpuDiscovery* gpus = nullptr;  // /metrics per device (nullptr: none)
  };

  ApiServer(Options options, sched::Scheduler& scheduler, const store::ModelCatalog& catalog, const Clock& clock);
  ~ApiServer();

  // Binds the listening socket. Errors: kUnavailable when the address cannot be bound.
  Status Bind();
  // Asks the scheduler to load the model in the background now and whenever its runner dies
  // (sched::Scheduler::Preload), with its Modelfile parameters over the server's defaults.
  // Errors: the catalog's (unknown or bad name, a broken model), a parameter that does not decode.
  Status Preload(const std::string& model);
  int port() const { return port_; }
  // True when the bound address takes connections from this machine only. After Bind().
  bool loopback_only() const;
  // Serves until Stop(). Call after Bind().
  void Serve();
  // Stops accepting; returns at once. Safe from any thread.
  void Stop();

 private:
  void Routes();
  // Runs before routing (and before the body is read): CORS (403 for an origin not allowed, the
  // answer to a preflight), on a loopback listener the Host header (403 for a name that is not
  // local: api/host_check.h), and the API key (401). True when the request may go on.
  bool Admit(const httplib::Request& req, httplib::Response& res);
  void HandleGenerate(const httplib::Request& req, httplib::Response& res);
  void HandleChat(const httplib::Request& req, httplib::Response& res);
  void HandleEmbed(const httplib::Request& req, httplib::Response& res, bool legacy);
  void HandlePs(httplib::Response& res);
  void HandleTags(httplib::Response& res);
  // The empty-prompt forms of generate/chat: load, or unload with keep_alive 0.
  void HandleLoadOrUnload(const std::string& model, const std::optional<KeepAlive>& keep_alive,
                          const ModelOptions& options, bool chat, httplib::Response& res);

  Options options_;
  ApiContext ctx_;
  OriginPolicy origins_;
  HostPolicy hosts_;
  bool check_host_ = false;  // set by Bind(): the listener takes loopback connections only
  std::unique_ptr<BoundedHttpServer> http_;
  int port_ = 0;
};

}  // namespace resident::api
