#include "api/http_util.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "api/request_log.h"

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

namespace {

json OpenAiErrorBody(int http_status, const std::string& message) {
  const char* type = http_status == 400 ? "invalid_request_error" : http_status == 404 ? "not_found_error" : "api_error";
  return json{{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

}  // namespace

void SendOpenAiError(httplib::Response& res, const Status& status) {
  res.status = HttpStatusFor(status);
  res.set_content(DumpJson(OpenAiErrorBody(res.status, status.message())), "application/json; charset=utf-8");
}

void SendErrorStatus(const httplib::Request& req, httplib::Response& res, int http_status, const std::string& message) {
  res.status = http_status;
  json body = req.path.rfind("/v1/", 0) == 0 ? OpenAiErrorBody(http_status, message) : json{{"error", message}};
  res.set_content(DumpJson(body), "application/json; charset=utf-8");
}

void SendJson(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(DumpJson(body), "application/json; charset=utf-8");
}

json ModelDetailsJson(const store::ModelEntry& e) {
  json families = e.family.empty() ? json(nullptr) : json::array({e.family});
  return json{{"parent_model", ""},
              {"format", "gguf"},
              {"family", e.family},
              {"families", families},
              {"parameter_size", e.parameter_size},
              {"quantization_level", e.quantization_level}};
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

sched::ModelSpec SpecFor(const store::ModelEntry& entry, const ModelOptions& options) {
  return sched::ModelSpec{entry.name, LoadRequestFor(entry, options), FileIdentity(entry.path)};
}

Result<sched::Lease> AcquireEntry(ApiContext& ctx, const store::ModelEntry& entry, const ModelOptions& options,
                                  const std::optional<KeepAlive>& keep_alive, std::stop_token gone) {
  auto lease = ctx.scheduler.Acquire(SpecFor(entry, options), keep_alive, std::move(gone));
  if (lease.ok()) NoteRequestModel(entry.name);  // the request log's line (api/request_log.h)
  return lease;
}

Result<WholeGeneration> GenerateWhole(sched::Lease& lease, const runner::GenerateRequest& request,
                                      std::stop_token gone) {
  WholeGeneration whole;
  size_t pieces = 0;
  Result<runner::DoneEvent> done = Status::Cancelled("request cancelled");
  if (!gone.stop_requested()) {
    done = lease.runner().GenerateEvents(
        request,
        [&](const runner::TokenEvent& t) {
          whole.text += t.text;
          whole.thinking += t.thinking;
          whole.tool_calls.insert(whole.tool_calls.end(), t.tool_calls.begin(), t.tool_calls.end());
          whole.logprobs.insert(whole.logprobs.end(), t.logprobs.begin(), t.logprobs.end());
          ++pieces;
          return true;
        },
        gone);
  }
  lease.Release();
  if (!done.ok()) {
    if (done.status().code() == StatusCode::kCancelled) {
      return Status::Cancelled("the client went away; generation cancelled after " + std::to_string(pieces) +
                               " pieces of text");
    }
    return done.status();
  }
  whole.done = std::move(done).value();
  NoteRequestTokens(whole.done.prompt_eval_count, whole.done.eval_count);
  return whole;
}

void ApplyDimensions(int32_t dimensions, std::vector<std::vector<float>>* embeddings) {
  if (dimensions <= 0) return;
  for (std::vector<float>& e : *embeddings) {
    if (static_cast<size_t>(dimensions) >= e.size()) continue;
    e.resize(static_cast<size_t>(dimensions));
    double sum = 0;
    for (float v : e) sum += static_cast<double>(v) * v;
    const float scale = static_cast<float>(1.0 / std::max(std::sqrt(sum), 1e-12));
    for (float& v : e) v *= scale;
  }
}

Result<runner::EmbedResult> EmbedWhole(sched::Lease& lease, const runner::EmbedRequest& request, std::stop_token gone) {
  Result<runner::EmbedResult> result = Status::Cancelled("request cancelled");
  if (!gone.stop_requested()) result = lease.runner().Embed(request, gone);
  lease.Release();
  if (!result.ok() && result.status().code() == StatusCode::kCancelled) {
    return Status::Cancelled("the client went away; embedding of " + std::to_string(request.inputs.size()) +
                             " inputs cancelled");
  }
  if (result.ok()) NoteRequestTokens(result->prompt_eval_count, 0);
  return result;
}

bool LogIfClientGone(std::string_view route, std::string_view model, const Status& status) {
  if (status.code() != StatusCode::kCancelled) return false;
  spdlog::info("{} for {}: {}", route, model, status.message());
  return true;
}

}  // namespace resident::api
