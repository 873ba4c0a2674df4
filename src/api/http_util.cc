#include "api/http_util.h"

#include <httplib.h>
#include <sys/stat.h>

namespace resident::api {

using nlohmann::json;

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kResourceExhausted: return 503;
    default: return 500;
  }
}

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string JsonLine(const json& j) { return DumpJson(j) + "\n"; }

void SendError(httplib::Response& res, const Status& status) {
  res.status = HttpStatusFor(status);
  res.set_content(DumpJson(json{{"error", status.message()}}), "application/json; charset=utf-8");
}

void SendJson(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(DumpJson(body), "application/json; charset=utf-8");
}

namespace {

// Device, inode, size and modification time of the file (after symlinks), or "" if it cannot be
// read (the runner's load then reports why).
std::string FileIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

// The load request of a model: the request's load options, its weights, and its TEMPLATE when
// that is a Jinja chat template (the runner then renders messages with it, not the GGUF's own).
runner::LoadRequest LoadRequestFor(const store::ModelEntry& entry, const ModelOptions& options) {
  runner::LoadRequest load = options.load;
  load.model_path = entry.path;
  if (entry.template_kind == store::TemplateKind::kJinja) load.chat_template = entry.template_text;
  return load;
}

}  // namespace

Result<sched::Lease> AcquireModel(ApiContext& ctx, const std::string& model, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive) {
  auto entry = ctx.catalog.Find(model);
  if (!entry.ok()) return entry.status();
  return AcquireEntry(ctx, *entry, options, keep_alive);
}

sched::ModelSpec SpecFor(const store::ModelEntry& entry, const ModelOptions& options) {
  return sched::ModelSpec{entry.name, LoadRequestFor(entry, options), FileIdentity(entry.path)};
}

Result<sched::Lease> AcquireEntry(ApiContext& ctx, const store::ModelEntry& entry, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive) {
  return ctx.scheduler.Acquire(SpecFor(entry, options), keep_alive);
}

Result<WholeGeneration> GenerateWhole(sched::Lease& lease, const runner::GenerateRequest& request) {
  WholeGeneration whole;
  auto done = lease.runner().Generate(request, [&](std::string_view t) {
    whole.text += t;
    return true;
  });
  lease.Release();
  if (!done.ok()) return done.status();
  whole.done = std::move(done).value();
  return whole;
}

}  // namespace resident::api
