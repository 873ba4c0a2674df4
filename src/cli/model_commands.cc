// Model management from the command line, as `ollama` does it: list, show, create, cp, rm, pull
// and push talk to the running server over HTTP. `create --local` writes resident's store
// directly, without a server (used by `make demo`; safe while a server runs, see
// store/model_store.h).
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/config.h"
#include "core/bytes.h"
#include "store/composite_catalog.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace resident::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- HTTP ---------------------------------------------------------------------------------

struct Reply {
  int status = 0;
  std::string body;
};

// One request to the server; errors name the address when it cannot be reached.
Result<Reply> Call(const std::string& method, const std::string& path, const json& body,
                   const std::function<void(const json&)>& on_line = nullptr) {
  auto host = HostFromEnv();
  if (!host.ok()) return host.status();
  std::string connect_host = host->host == "0.0.0.0" ? "127.0.0.1" : host->host;
  httplib::Client client(connect_host, host->port);
  if (auto key = ApiKeyFromEnv()) client.set_bearer_token_auth(*key);
  client.set_read_timeout(std::chrono::hours(2));
  httplib::Request req;
  req.method = method;
  req.path = path;
  if (!body.is_null()) {
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
  }
  Reply reply;
  std::string buffer;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    reply.body.append(data, n);
    size_t nl;
    while (on_line && (nl = buffer.find('\n')) != std::string::npos) {
      auto j = json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (!j.is_discarded()) on_line(j);
    }
    return true;
  };
  auto res = client.send(req);
  if (!res) {
    return Status::Unavailable("could not connect to resident at " + connect_host + ":" + std::to_string(host->port) +
                               " (is `resident serve` running?)");
  }
  reply.status = res->status;
  if (reply.body.empty()) reply.body = res->body;
  if (reply.status != 200) {
    auto j = json::parse(reply.body, nullptr, false);
    std::string msg = !j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>()
                          : "the server answered HTTP " + std::to_string(reply.status);
    return Status(reply.status == 404 ? StatusCode::kNotFound : StatusCode::kInvalidArgument, msg);
  }
  return reply;
}

// ---- formatting ---------------------------------------------------------------------------

std::string Ago(const std::string& rfc3339) {
  std::tm tm{};
  if (rfc3339.size() < 19 || !strptime(rfc3339.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return rfc3339;
  time_t t = timegm(&tm);
  size_t tz = rfc3339.find_first_of("+-", 19);
  if (tz != std::string::npos && rfc3339.size() >= tz + 6) {
    int sign = rfc3339[tz] == '-' ? -1 : 1;
    t -= sign * (std::stoi(rfc3339.substr(tz + 1, 2)) * 3600 + std::stoi(rfc3339.substr(tz + 4, 2)) * 60);
  }
  long secs = static_cast<long>(std::time(nullptr) - t);
  auto unit = [](long n, const char* u) { return fmt::format("{} {}{} ago", n, u, n == 1 ? "" : "s"); };
  if (secs < 60) return "Less than a minute ago";
  if (secs < 3600) return unit(secs / 60, "minute");
  if (secs < 86400) return unit(secs / 3600, "hour");
  if (secs < 86400 * 30) return unit(secs / 86400, "day");
  if (secs < 86400 * 365) return unit(secs / (86400 * 30), "month");
  return unit(secs / (86400 * 365), "year");
}

// A progress line on stderr: "hashing  45% ▕█████     ▏ 180 MB/400 MB  120 MB/s  eta 2s".
class ProgressLine {
 public:
  void Update(const std::string& what, uint64_t done, uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    // Each pass over the file ("hashing model", then "copying model") and each blob of a pull or
    // push has its own line, rate and ETA.
    if (what != what_ || done < done_) {
      if (what != what_) End();
      start_ = now;
      start_done_ = done;
    }
    what_ = what;
    done_ = done;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(done - start_done_) / secs : 0;
    int pct = total ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
    int filled = pct / 5;
    std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(20 - filled), ' ');
    std::string eta = rate > 0 && total > done ? fmt::format("eta {:.0f}s", static_cast<double>(total - done) / rate) : "";
    std::fprintf(stderr, "\r%s %3d%% [%s] %s/%s  %s/s  %s   ", what.c_str(), pct, bar.c_str(), FormatBytes(done).c_str(),
                 FormatBytes(total).c_str(), FormatBytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str());
    std::fflush(stderr);
    open_ = true;
  }
  void Message(const std::string& text) {
    End();
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  void End() {
    if (open_) std::fputc('\n', stderr);
    open_ = false;
  }

 private:
  std::string what_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  uint64_t start_done_ = 0;  // bytes done when this pass's first line was written
  uint64_t done_ = 0;
  bool open_ = false;
};

// ---- commands -----------------------------------------------------------------------------

int List() {
  auto reply = Call("GET", "/api/tags", nullptr);
  if (!reply.ok()) return Fail(reply.status());
  json j = json::parse(reply->body, nullptr, false);
  if (j.is_discarded() || !j.contains("models")) return Fail(Status::Internal("unexpected answer from the server"));
  // CACHED (resident's addition, last so that Ollama's columns stay where they are): how much of
  // the weights file is in the page cache now; "-" when the server does not say.
  std::printf("%-40s %-14s %-10s %-20s %s\n", "NAME", "ID", "SIZE", "MODIFIED", "CACHED");
  for (const json& m : j["models"]) {
    std::string digest = m.value("digest", "");
    std::string cached = "-";
    if (m.contains("details") && m["details"].is_object() && m["details"].contains("page_cache_fraction") &&
        m["details"]["page_cache_fraction"].is_number()) {
      cached = std::to_string(static_cast<int>(m["details"]["page_cache_fraction"].get<double>() * 100 + 0.5)) + "%";
    }
    std::printf("%-40s %-14s %-10s %-20s %s\n", m.value("name", "").c_str(), digest.substr(0, 12).c_str(),
                FormatBytes(m.value("size", uint64_t{0})).c_str(), Ago(m.value("modified_at", "")).c_str(),
                cached.c_str());
  }
  return 0;
}

struct ShowArgs {
  std::string model;
  bool modelfile = false, parameters = false, template_text = false, system = false, license = false;
};

int Show(const ShowArgs& a) {
  auto reply = Call("POST", "/api/show", json{{"model", a.model}});
  if (!reply.ok()) return Fail(reply.status());
  json j = json::parse(reply->body, nullptr, false);
  if (j.is_discarded()) return Fail(Status::Internal("unexpected answer from the server"));
  auto field = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
  if (a.modelfile) return std::printf("%s\n", field("modelfile").c_str()), 0;
  if (a.parameters) return std::printf("%s\n", field("parameters").c_str()), 0;
  if (a.template_text) return std::printf("%s\n", field("template").c_str()), 0;
  if (a.system) return std::printf("%s\n", field("system").c_str()), 0;
  if (a.license) return std::printf("%s\n", field("license").c_str()), 0;

  const json& d = j.value("details", json::object());
  const json& info = j.value("model_info", json::object());
  std::string arch = d.value("family", "");
  auto info_num = [&](const std::string& k) {
    return info.contains(k) && info[k].is_number() ? std::to_string(info[k].get<int64_t>()) : std::string();
  };
  std::printf("  Model\n");
  std::printf("    %-20s %s\n", "architecture", arch.c_str());
  std::printf("    %-20s %s\n", "parameters", d.value("parameter_size", "").c_str());
  std::printf("    %-20s %s\n", "context length", info_num(arch + ".context_length").c_str());
  std::printf("    %-20s %s\n", "embedding length", info_num(arch + ".embedding_length").c_str());
  std::printf("    %-20s %s\n", "quantization", d.value("quantization_level", "").c_str());
  std::printf("\n");
  if (j.contains("template_note")) std::printf("  Template\n    %s\n\n", field("template_note").c_str());
  if (!field("parameters").empty()) {
    std::printf("  Parameters\n");
    std::istringstream in(field("parameters"));
    for (std::string line; std::getline(in, line);) std::printf("    %s\n", line.c_str());
    std::printf("\n");
  }
  if (!field("system").empty()) std::printf("  System\n    %s\n\n", field("system").c_str());
  if (!field("license").empty()) {
    std::string l = field("license");
    std::printf("  License\n    %s\n\n", l.substr(0, l.find('\n')).c_str());
  }
  return 0;
}

struct CreateArgs {
  std::string model;
  std::string file = "Modelfile";
  bool local = false;
};

// The Modelfile, parsed here so that its errors carry the file name and line. FROM is resolved
// as Ollama's CLI does: "~/..." is in the home folder, an absolute path is a file, a relative
// one is a file in the Modelfile's folder when it exists there (never in the working folder);
// anything else is a model name. A FROM that looks like a path (./x, x.gguf, not a valid model
// name) is made absolute even when missing, so that the error says which file is missing.
Result<store::Modelfile> ReadModelfile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path + " (give the Modelfile with -f FILE)");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto mf = store::ParseModelfile(text);
  if (!mf.ok()) return Status::InvalidArgument(path + ": " + mf.status().message());
  const std::string& from = mf->from;
  fs::path file;
  if (from.starts_with("~/")) file = fs::path(HomeDir()) / from.substr(2);
  else if (fs::path(from).is_absolute()) file = from;
  else file = fs::absolute(path).parent_path() / from;
  bool looks_like_path = from[0] == '.' || from[0] == '/' || from[0] == '~' || from.ends_with(".gguf") ||
                         !store::ParseModelName(from).ok();
  std::error_code ec;
  if (looks_like_path || fs::exists(file, ec)) mf->from = fs::weakly_canonical(file, ec).string();
  return mf;
}

int CreateLocal(const CreateArgs& a, const store::Modelfile& mf) {
  store::ModelStore own(store::StoreRootFromEnv(HomeDir()), /*read_only=*/false, "store");
  std::string ollama_root = EnvFirst({"RESIDENT_OLLAMA_MODELS"}).value_or("");
  store::ModelStore ollama(ollama_root, /*read_only=*/true, "ollama");
  std::vector<const store::ModelCatalog*> sources{&own};
  if (!ollama_root.empty()) sources.push_back(&ollama);
  store::CompositeCatalog models(sources);
  ProgressLine progress;
  auto created = own.Create(a.model, mf, "", models, [&](const store::CreateEvent& ev) {
    if (ev.total) progress.Update(ev.status, ev.completed, ev.total);
    else progress.Message(ev.status);
  });
  progress.End();
  if (!created.ok()) return Fail(created.status());
  std::fprintf(stderr, "success: created %s in %s\n", created->name.c_str(), own.root().c_str());
  return 0;
}

// Sends a request whose answer is Ollama's progress lines, and shows them: a line per status, a
// progress bar with rate and ETA for byte progress. 0 once "success" came.
int StreamProgress(const std::string& path, const json& body, const std::string& what) {
  ProgressLine progress;
  std::string error;
  bool success = false;
  auto reply = Call("POST", path, body, [&](const json& j) {
    if (j.contains("error")) {
      error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      return;
    }
    std::string status = j.value("status", "");
    if (j.contains("total")) progress.Update(status, j.value("completed", uint64_t{0}), j.value("total", uint64_t{0}));
    else progress.Message(status);
    if (status == "success") success = true;
  });
  progress.End();
  if (!reply.ok()) return Fail(reply.status());
  if (!error.empty()) return Fail(Status::Internal(error));
  if (!success) return Fail(Status::Internal("the server ended the " + what + " without success"));
  return 0;
}

int Create(const CreateArgs& a) {
  auto mf = ReadModelfile(a.file);
  if (!mf.ok()) return Fail(mf.status());
  if (a.local) return CreateLocal(a, *mf);
  json body{{"model", a.model}, {"from", mf->from}, {"stream", true}};
  if (mf->has_template) body["template"] = mf->template_text;
  if (mf->has_system) body["system"] = mf->system;
  if (!mf->parameters.empty()) {
    json params = json::object();
    for (const auto& [k, v] : mf->parameters) {
      switch (store::ParameterTypeOf(k)) {
        case store::ParameterType::kString:
          if (!params.contains(k)) params[k] = json::array();
          params[k].push_back(v);
          break;
        case store::ParameterType::kInt: params[k] = std::stoll(v); break;
        case store::ParameterType::kFloat: params[k] = std::stod(v); break;
        case store::ParameterType::kBool: params[k] = v == "true"; break;
      }
    }
    body["parameters"] = params;
  }
  if (!mf->messages.empty()) {
    json messages = json::array();
    for (const auto& [role, content] : mf->messages) messages.push_back(json{{"role", role}, {"content", content}});
    body["messages"] = messages;
  }
  if (!mf->licenses.empty()) body["license"] = mf->licenses;
  return StreamProgress("/api/create", body, "create");
}

int Transfer(bool pull, const std::string& model, bool insecure) {
  return StreamProgress(pull ? "/api/pull" : "/api/push", json{{"model", model}, {"insecure", insecure}, {"stream", true}},
                        pull ? "pull" : "push");
}

int Copy(const std::string& from, const std::string& to) {
  auto reply = Call("POST", "/api/copy", json{{"source", from}, {"destination", to}});
  if (!reply.ok()) return Fail(reply.status());
  std::printf("copied '%s' to '%s'\n", from.c_str(), to.c_str());
  return 0;
}

int Remove(const std::vector<std::string>& models) {
  for (const std::string& m : models) {
    auto reply = Call("DELETE", "/api/delete", json{{"model", m}});
    if (!reply.ok()) return Fail(reply.status());
    std::printf("deleted '%s'\n", m.c_str());
  }
  return 0;
}

}  // namespace

void AddModelCommands(CLI::App& app, CommandAction& chosen) {
  auto* list = app.add_subcommand("list", "List the models the server knows (its store, an Ollama store, a folder), with the share of each file in the page cache");
  list->alias("ls");
  list->callback([&chosen] { chosen = [] { return List(); }; });

  auto show = std::make_shared<ShowArgs>();
  auto* s = app.add_subcommand("show", "Show a model's details, parameters, template and license");
  s->add_option("model", show->model, "Model name")->required();
  s->add_flag("--modelfile", show->modelfile, "Print the Modelfile");
  s->add_flag("--parameters", show->parameters, "Print the parameters");
  s->add_flag("--template", show->template_text, "Print the template");
  s->add_flag("--system", show->system, "Print the system prompt");
  s->add_flag("--license", show->license, "Print the license");
  s->callback([&chosen, show] { chosen = [show] { return Show(*show); }; });

  auto create = std::make_shared<CreateArgs>();
  auto* c = app.add_subcommand("create", "Create a model from a Modelfile (FROM a .gguf file or an existing model)");
  c->add_option("model", create->model, "Name of the new model, [host/][namespace/]model[:tag]")->required();
  c->add_option("-f,--file", create->file, "The Modelfile (default ./Modelfile)");
  c->add_flag("--local", create->local,
              "Write resident's store ($RESIDENT_MODELS, default ~/.resident/models) directly, without a server");
  c->callback([&chosen, create] { chosen = [create] { return Create(*create); }; });

  auto cp = std::make_shared<std::pair<std::string, std::string>>();
  auto* k = app.add_subcommand("cp", "Copy a model to a new name");
  k->add_option("source", cp->first, "Existing model")->required();
  k->add_option("destination", cp->second, "New name")->required();
  k->callback([&chosen, cp] { chosen = [cp] { return Copy(cp->first, cp->second); }; });

  for (bool pull : {true, false}) {
    auto args = std::make_shared<std::pair<std::string, bool>>();
    auto* t = app.add_subcommand(pull ? "pull" : "push",
                                 pull ? "Pull a model from a registry (registry.ollama.ai unless the name has a host) into resident's store"
                                      : "Push a model of resident's store to the registry its name names");
    t->add_option("model", args->first, "[host/][namespace/]model[:tag]")->required();
    t->add_flag("--insecure", args->second, "Plain HTTP to the registry (one on this machine or the local network)");
    t->callback([&chosen, args, pull] { chosen = [args, pull] { return Transfer(pull, args->first, args->second); }; });
  }

  auto rm = std::make_shared<std::vector<std::string>>();
  auto* r = app.add_subcommand("rm", "Remove models (unloading them first) and the blobs no other model uses");
  r->add_option("model", *rm, "Model names")->required();
  r->callback([&chosen, rm] { chosen = [rm] { return Remove(*rm); }; });
}

}  // namespace resident::cli
