#include "cli/http_settings.h"

#include <algorithm>
#include <limits>

#include "api/cors.h"
#include "cli/config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"

namespace resident::cli {
namespace {

Status BytesFromEnv(const char* name, uint64_t min, size_t* out) {
  auto v = EnvFirst({name});
  if (!v) return Status::Ok();
  auto bytes = ParseBytes(*v);
  if (!bytes.ok()) return Status::InvalidArgument(std::string(name) + "=\"" + *v + "\": " + bytes.status().message());
  if (*bytes < min) {
    return Status::InvalidArgument(std::string(name) + "=\"" + *v + "\" is below the least allowed, " + FormatBytes(min));
  }
  *out = static_cast<size_t>(*bytes);
  return Status::Ok();
}

}  // namespace

size_t ConnectionsForScheduler(const sched::Scheduler::Options& so) {
  auto positive = [](int n) { return static_cast<size_t>(std::max(1, n)); };
  return positive(so.max_queue) + positive(so.max_loaded) * positive(so.num_parallel) + kSpareConnections;
}

Status ApplyHttpSettingsFromEnv(size_t default_connections, api::ApiServer::Options* options) {
  options->api_key = EnvFirst({"RESIDENT_API_KEY"}).value_or("");
  if (auto origins = EnvFirst({"RESIDENT_ORIGINS", "OLLAMA_ORIGINS"})) options->origins = api::ParseOriginList(*origins);
  RESIDENT_RETURN_IF_ERROR(BytesFromEnv("RESIDENT_MAX_BODY", 1024, &options->max_body_bytes));
  RESIDENT_RETURN_IF_ERROR(BytesFromEnv("RESIDENT_MAX_HEADER", 1024, &options->limits.max_header_bytes));
  const int fallback = static_cast<int>(std::min<size_t>(default_connections, std::numeric_limits<int>::max()));
  auto connections = IntFromEnv("RESIDENT_MAX_CONNECTIONS", nullptr, fallback, 1);
  if (!connections.ok()) return connections.status();
  options->limits.max_connections = static_cast<size_t>(*connections);
  options->limits.max_queued = static_cast<size_t>(*connections);
  if (auto v = EnvFirst({"RESIDENT_IDLE_TIMEOUT"})) {
    auto d = ParseKeepAliveEnv(*v);
    if (!d || d->forever || d->duration <= Duration::zero()) {
      return Status::InvalidArgument("RESIDENT_IDLE_TIMEOUT=\"" + *v + "\" is not a positive duration (e.g. 10s, 2m)");
    }
    options->limits.idle_timeout =
        std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(d->duration));
  }
  return Status::Ok();
}

}  // namespace resident::cli
