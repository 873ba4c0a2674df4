#include "api/model_routes.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "api/requests.h"
#include "core/bytes.h"
#include "core/time_format.h"
#include "store/gguf_checks.h"
#include "store/gguf_metadata.h"
#include "store/gguf_values.h"
#include "store/model_capabilities.h"
#include "store/model_store.h"
#include "store/model_transfer.h"
#include "store/modelfile.h"

namespace resident::api {
namespace {

using nlohmann::json;

constexpr const char* kGoTemplateNote =
    "TEMPLATE is an Ollama Go template, which resident does not run: the GGUF's own chat template "
    "(tokenizer.chat_template) is used instead";
constexpr const char* kPassThroughTemplateNote =
    "TEMPLATE is Ollama's pass-through template {{ .Prompt }}: /api/generate sends the prompt as it is "
    "(raw); /api/chat uses the GGUF's own chat template (tokenizer.chat_template)";
constexpr const char* kJinjaTemplateNote =
    "TEMPLATE is a Jinja chat template: resident renders chat messages with it instead of the GGUF's own "
    "(tokenizer.chat_template)";

// A GGUF metadata value as Ollama's /api/show writes it: typed numbers, booleans and strings;
// an array whose elements were not read (not verbose) as null.
json InfoValue(const store::GgufValue& v) {
  using Kind = store::GgufValue::Kind;
  switch (v.kind) {
    case Kind::kInt: return v.i;
    case Kind::kUint: return v.u;
    case Kind::kFloat: return v.f;
    case Kind::kBool: return v.b;
    case Kind::kString: return v.s;
    case Kind::kArray: {
      if (v.items.empty() && v.size > 0) return nullptr;
      json a = json::array();
      for (const store::GgufValue& e : v.items) a.push_back(InfoValue(e));
      return a;
    }
  }
  return nullptr;
}

Status NotFoundForShow(const Status& st, const std::string& model) {
  if (st.code() == StatusCode::kNotFound) return Status::NotFound("model '" + model + "' not found");
  return st;
}

void HandleShow(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeShow(req.body);
  if (!call.ok()) return SendError(res, call.status());
  auto entry = ctx.catalog.Find(call->model);
  if (!entry.ok()) return SendError(res, NotFoundForShow(entry.status(), call->model));
  auto info = store::ReadGgufInfo(entry->path);
  if (!info.ok()) {
    return SendError(res, Status::Internal("model \"" + entry->name + "\": " + info.status().message()));
  }
  store::ModelEntry e = *entry;
  if (e.family.empty()) e.family = info->architecture;
  if (e.parameter_size.empty() && info->n_params) e.parameter_size = FormatCount(info->n_params);
  if (e.quantization_level.empty() && info->file_type_name != "unknown") e.quantization_level = info->file_type_name;

  // Ollama's: every key but the name and the chat template (in `template`), arrays in full
  // with verbose and null without, and every tensor's name, type and shape.
  auto values = store::ReadGgufValues(entry->path, call->verbose ? -1 : 0);
  if (!values.ok()) {
    return SendError(res, Status::Internal("model \"" + entry->name + "\": " + values.status().message()));
  }
  json model_info = json::object();
  for (const auto& [k, v] : values->kv) {
    if (k == "tokenizer.chat_template" || k == "general.name") continue;
    model_info[k] = InfoValue(v);
  }
  model_info["general.parameter_count"] = info->n_params;
  json tensors = json::array();
  for (const store::GgufTensorShape& t : values->tensors) {
    tensors.push_back(json{{"name", t.name}, {"type", t.type}, {"shape", t.shape}});
  }

  std::string modelfile = store::FormatModelfile(e);
  json j{{"modelfile", modelfile},
         {"parameters", store::FormatParameters(e.parameters)},
         {"template", e.template_kind == store::TemplateKind::kNone ? info->chat_template : e.template_text},
         {"details", ModelDetailsJson(e)},
         {"model_info", model_info},
         {"tensors", tensors},
         {"capabilities", store::CapabilitiesOf(e, *info).Names()},
         {"modified_at", FormatRfc3339(e.modified)}};
  // A TEMPLATE: what resident does with it (template_note), and the chat template it renders
  // chat messages with (chat_template, resident's addition).
  const char* note = nullptr;
  switch (e.template_kind) {
    case store::TemplateKind::kNone: break;
    case store::TemplateKind::kPassThrough: note = kPassThroughTemplateNote; break;
    case store::TemplateKind::kGo: note = kGoTemplateNote; break;
    case store::TemplateKind::kJinja: note = kJinjaTemplateNote; break;
  }
  if (note) {
    j["modelfile"] = "# " + std::string(note) + ".\n" + modelfile;
    j["template_note"] = note;
    j["chat_template"] = e.template_kind == store::TemplateKind::kJinja ? e.template_text : info->chat_template;
  }
  if (!e.system.empty()) j["system"] = e.system;
  if (!e.license.empty()) j["license"] = e.license;
  if (!e.messages.empty()) {
    json messages = json::array();
    for (const auto& [role, content] : e.messages) messages.push_back(json{{"role", role}, {"content", content}});
    j["messages"] = messages;
  }
  SendJson(res, j);
}

json EventJson(const store::CreateEvent& ev) {
  json j{{"status", ev.status}};
  if (!ev.digest.empty()) j["digest"] = ev.digest;
  if (ev.total) {
    j["total"] = ev.total;
    j["completed"] = ev.completed;
  }
  return j;
}

void HandleCreate(ApiContext& ctx, store::ModelStore* store, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeCreate(req.body);
  if (!call.ok()) return SendError(res, call.status());
  const std::string& name = call->model;
  if (auto n = store::ParseModelName(name); !n.ok()) return SendError(res, n.status());
  if (!store) return SendError(res, Status::InvalidArgument("this server has no writable model store"));
  // A path sent to the server must be absolute: the server's working folder means nothing to
  // the client.
  const std::string& from = call->modelfile.from;
  bool is_path = from[0] == '/' || from[0] == '.' || from[0] == '~' || from.ends_with(".gguf") ||
                 !store::ParseModelName(from).ok();
  if (is_path && from[0] != '/') {
    return SendError(res, Status::InvalidArgument("FROM " + from + ": a path sent to the server must be absolute"));
  }
  // What FROM names is checked before the stream starts, so that these are a 4xx, not a 200
  // with an error line: a missing file or model, something that is not a file (saying what it
  // is), a file that is not GGUF or whose hyperparameters llama.cpp would abort on.
  std::string weights_path = from, source = from;
  if (is_path) {
    if (Status st = store::CheckModelFile(from, "FROM " + from); !st.ok()) {
      return SendError(res, st.code() == StatusCode::kNotFound
                                ? Status::NotFound("FROM " + from + ": no such file on the server")
                                : st);
    }
  } else {
    auto base = ctx.catalog.Find(from);
    if (!base.ok()) return SendError(res, base.status());
    weights_path = base->path;
    source = "model \"" + base->name + "\"";
  }
  auto info = store::ReadGgufInfo(weights_path);
  if (!info.ok()) {
    return SendError(res, Status::InvalidArgument("cannot create \"" + name + "\": " + info.status().message()));
  }
  if (Status st = store::CheckGgufHyperparameters(*info); !st.ok()) {
    return SendError(res, Status::InvalidArgument("cannot create \"" + name + "\": " + source + " cannot be loaded: " +
                                                  st.message()));
  }
  if (!call->stream) {
    auto created = store->Create(name, call->modelfile, "", ctx.catalog, nullptr);
    if (!created.ok()) return SendError(res, created.status());
    return SendJson(res, json{{"status", "success"}});
  }
  auto modelfile = std::make_shared<store::Modelfile>(std::move(call->modelfile));
  res.set_chunked_content_provider("application/x-ndjson", [&ctx, store, name = call->model, modelfile](
                                                               size_t, httplib::DataSink& sink) {
    bool client_gone = false;
    auto write = [&](const json& j) {
      if (client_gone) return;
      std::string line = JsonLine(j);
      if (!sink.write(line.data(), line.size())) client_gone = true;
    };
    write(json{{"status", "parsing modelfile"}});
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    auto created = store->Create(name, *modelfile, "", ctx.catalog, [&](const store::CreateEvent& ev) {
      if (ev.total && ev.completed < ev.total) {  // byte progress: at most 10 lines a second
        auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(100)) return;
        last = now;
      }
      write(EventJson(ev));
    });
    if (created.ok()) {
      write(json{{"status", "success"}});
    } else {
      spdlog::warn("create {} failed: {}", name, created.status().message());
      write(json{{"error", created.status().message()}});
    }
    sink.done();
    return true;
  });
}

void HandleCopy(ApiContext& ctx, store::ModelStore* store, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeCopy(req.body);
  if (!call.ok()) return SendError(res, call.status());
  const std::string& source = call->source;
  const std::string& destination = call->destination;
  if (auto n = store::ParseModelName(source); !n.ok()) return SendError(res, n.status());
  if (auto n = store::ParseModelName(destination); !n.ok()) return SendError(res, n.status());
  if (!store) return SendError(res, Status::InvalidArgument("this server has no writable model store"));
  Status st = store->Copy(source, destination);
  if (st.code() == StatusCode::kNotFound) {
    // Not in resident's store: an Ollama store's or a folder's model is imported under the new name.
    auto entry = ctx.catalog.Find(source);
    if (!entry.ok()) {
      return SendError(res, entry.status().code() == StatusCode::kNotFound
                                ? Status::NotFound("model \"" + source + "\" not found")
                                : entry.status());
    }
    store::Modelfile mf;
    mf.from = source;
    auto created = store->Create(destination, mf, "", ctx.catalog, nullptr);
    st = created.ok() ? Status::Ok() : created.status();
  }
  if (!st.ok()) return SendError(res, st);
  res.status = 200;
}

void HandleDelete(ApiContext& ctx, store::ModelStore* store, const httplib::Request& req, httplib::Response& res) {
  auto call = DecodeDelete(req.body);
  if (!call.ok()) return SendError(res, call.status());
  const std::string& model = call->model;
  auto name = store::ParseModelName(model);
  if (!name.ok()) return SendError(res, name.status());
  if (!store) return SendError(res, Status::InvalidArgument("this server has no writable model store"));
  auto entry = store->Find(model);
  if (entry.status().code() == StatusCode::kNotFound) {
    auto elsewhere = ctx.catalog.Find(model);
    if (elsewhere.ok()) {
      return SendError(res, Status::InvalidArgument("model '" + elsewhere->name + "' is served read-only from " +
                                                    (elsewhere->source == "ollama" ? "an Ollama store" : "a folder") +
                                                    "; resident does not delete it"));
    }
    return SendError(res, Status::NotFound("model '" + model + "' not found"));
  }
  if (entry.ok()) {
    // Unload first (after its requests in flight) unless another name shares the weights.
    bool shared = false;
    for (const store::ModelEntry& other : ctx.catalog.List()) {
      if (other.path == entry->path && other.name != entry->name) shared = true;
    }
    if (!shared) ctx.scheduler.Unload(entry->path);
  }
  auto removed = store->Delete(model);
  if (!removed.ok()) return SendError(res, removed.status());
  spdlog::info("deleted {} ({} blobs removed)", name->Display(), removed->size());
  res.status = 200;
}

// /api/pull and /api/push: the transfer's progress as NDJSON lines ("success" last, or an error
// line), or with "stream": false one object once it is done.
void HandleTransfer(bool pull, const std::shared_ptr<store::ModelTransfers>& transfers, const httplib::Request& req,
                    httplib::Response& res) {
  auto call = DecodeTransfer(req.body);
  if (!call.ok()) return SendError(res, call.status());
  if (auto n = store::ParseModelName(call->model); !n.ok()) return SendError(res, n.status());
  if (!transfers) return SendError(res, Status::InvalidArgument("this server has no writable model store"));
  store::RegistryOptions options;
  options.insecure = call->insecure;
  auto run = [pull, transfers, model = call->model, options](const store::TransferProgress& progress) -> Status {
    if (!pull) return transfers->Push(model, options, progress);
    auto entry = transfers->Pull(model, options, progress);
    if (entry.ok()) spdlog::info("pulled {} ({})", entry->name, FormatBytes(entry->size));
    return entry.status();
  };
  const char* verb = pull ? "pull" : "push";
  if (!call->stream) {
    Status st = run(nullptr);
    if (!st.ok()) {
      spdlog::warn("{} {} failed: {}", verb, call->model, st.message());
      return SendError(res, st);
    }
    return SendJson(res, json{{"status", "success"}});
  }
  res.set_chunked_content_provider("application/x-ndjson", [run, verb, model = call->model](size_t,
                                                                                       httplib::DataSink& sink) {
    bool client_gone = false;
    Status st = run([&](const store::CreateEvent& ev) {
      if (client_gone) return false;
      std::string line = JsonLine(EventJson(ev));
      if (!sink.write(line.data(), line.size())) client_gone = true;
      return !client_gone;
    });
    if (!st.ok()) {
      spdlog::warn("{} {} failed: {}", verb, model, st.message());
      if (!client_gone) {
        std::string line = JsonLine(json{{"error", st.message()}});
        sink.write(line.data(), line.size());
      }
    }
    sink.done();
    return true;
  });
}

}  // namespace

void RegisterModelRoutes(httplib::Server& http, ApiContext& ctx, store::ModelStore* store) {
  // One for the server's life: pulls of the same blob share its download.
  std::shared_ptr<store::ModelTransfers> transfers =
      store != nullptr ? std::make_shared<store::ModelTransfers>(*store) : nullptr;
  http.Post("/api/pull", [transfers](const httplib::Request& req, httplib::Response& res) {
    HandleTransfer(/*pull=*/true, transfers, req, res);
  });
  http.Post("/api/push", [transfers](const httplib::Request& req, httplib::Response& res) {
    HandleTransfer(/*pull=*/false, transfers, req, res);
  });
  http.Post("/api/show", [&ctx](const httplib::Request& req, httplib::Response& res) { HandleShow(ctx, req, res); });
  http.Post("/api/create", [&ctx, store](const httplib::Request& req, httplib::Response& res) {
    HandleCreate(ctx, store, req, res);
  });
  http.Post("/api/copy", [&ctx, store](const httplib::Request& req, httplib::Response& res) {
    HandleCopy(ctx, store, req, res);
  });
  http.Delete("/api/delete", [&ctx, store](const httplib::Request& req, httplib::Response& res) {
    HandleDelete(ctx, store, req, res);
  });
}

}  // namespace resident::api
