// The client half of the command line: run, ps, stop. Each talks to the running server over
// HTTP (RESIDENT_HOST, then OLLAMA_HOST) exactly as `ollama` does, so it works against Ollama too.
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "cli/config.h"
#include "cli/ps_table.h"

namespace resident::cli {
namespace {

using nlohmann::json;

// A connection to the server named by the environment.
struct Server {
  std::string host;
  int port = 0;
  std::optional<std::string> api_key;  // RESIDENT_API_KEY, sent as "Authorization: Bearer"
  // A client for this server, carrying the API key when there is one.
  std::unique_ptr<httplib::Client> Connect() const {
    auto client = std::make_unique<httplib::Client>(host, port);
    if (api_key) client->set_bearer_token_auth(*api_key);
    return client;
  }
  std::string Where() const { return host + ":" + std::to_string(port); }
  Status Unreachable() const {
    return Status::Unavailable("could not connect to resident at " + Where() + " (is `resident serve` running?)");
  }
};

Result<Server> ServerFromEnv() {
  auto hp = HostFromEnv();
  if (!hp.ok()) return hp.status();
  return Server{hp->host == "0.0.0.0" ? "127.0.0.1" : hp->host, hp->port, ApiKeyFromEnv()};
}

// The server's error message from a JSON body, or "HTTP <status>".
std::string ErrorOf(int status, const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"];
  return "the server answered HTTP " + std::to_string(status);
}

// A spinner on stderr while nothing has arrived yet (model loading). Only on a terminal.
class Spinner {
 public:
  Spinner() {
    if (!isatty(STDERR_FILENO)) return;
    thread_ = std::thread([this] {
      static const char* kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
      for (int i = 0; !stop_.load(); ++i) {
        std::fprintf(stderr, "\r%s ", kFrames[i % 10]);
        std::fflush(stderr);
        for (int k = 0; k < 10 && !stop_.load(); ++k) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      std::fputs("\r  \r", stderr);
      std::fflush(stderr);
    });
  }
  ~Spinner() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// POSTs `body` and hands each NDJSON object to on_line as it arrives. The spinner turns until the
// first line. Errors: kUnavailable when the server cannot be reached, the server's message for
// an HTTP error or an error line in the stream.
Status StreamNdjson(const Server& server, const std::string& path, const json& body,
                    const std::function<void(const json&)>& on_line) {
  auto client = server.Connect();
  client->set_read_timeout(std::chrono::hours(1));
  std::string buffer, error;
  Spinner spinner;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  int status = 0;
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    if (status != 200) return true;
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      auto j = json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (j.is_discarded()) continue;
      spinner.Stop();
      if (j.contains("error")) {
        error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      } else {
        on_line(j);
      }
    }
    return true;
  };
  auto res = client->send(req);
  spinner.Stop();
  if (!res) return server.Unreachable();
  if (res->status != 200) return Status::Internal(ErrorOf(res->status, buffer));
  if (!error.empty()) return Status::Internal(error);
  return Status::Ok();
}

void PrintStats(const json& final_chunk) {
  if (!final_chunk.is_object()) return;
  auto secs = [&](const char* k) { return static_cast<double>(final_chunk.value(k, int64_t{0})) / 1e9; };
  double eval = secs("eval_duration");
  std::fprintf(stderr, "total duration:       %.3fs\nload duration:        %.3fs\n", secs("total_duration"),
               secs("load_duration"));
  std::fprintf(stderr, "prompt eval count:    %d token(s)\neval count:           %d token(s)\n",
               final_chunk.value("prompt_eval_count", 0), final_chunk.value("eval_count", 0));
  if (eval > 0) std::fprintf(stderr, "eval rate:            %.2f tokens/s\n", final_chunk.value("eval_count", 0) / eval);
}

struct RunArgs {
  std::string model;
  std::string prompt;
  bool raw = false;
  bool verbose = false;
  std::string keep_alive;
};

void AddKeepAlive(const RunArgs& args, json& body) {
  if (!args.keep_alive.empty()) body["keep_alive"] = args.keep_alive;
}

int RunOnce(const Server& server, const RunArgs& args) {
  json body{{"model", args.model}, {"prompt", args.prompt}, {"stream", true}, {"raw", args.raw}};
  AddKeepAlive(args, body);
  json final_chunk;
  Status st = StreamNdjson(server, "/api/generate", body, [&](const json& j) {
    if (j.contains("response") && j["response"].is_string()) {
      std::fputs(j["response"].get<std::string>().c_str(), stdout);
      std::fflush(stdout);
    }
    if (j.value("done", false)) final_chunk = j;
  });
  if (!st.ok()) return Fail(st);
  std::fputc('\n', stdout);
  if (args.verbose) PrintStats(final_chunk);
  return 0;
}

// Interactive chat: each line is a user turn; the conversation so far goes with it.
int RunInteractive(const Server& server, const RunArgs& args) {
  // Load first (with the spinner), so that a bad model name fails before the first prompt.
  json load{{"model", args.model}};
  AddKeepAlive(args, load);
  Status st = StreamNdjson(server, "/api/generate", load, [](const json&) {});
  if (!st.ok()) return Fail(st);
  json history = json::array();
  std::string line;
  while (true) {
    std::fputs(">>> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      std::fputc('\n', stdout);
      return 0;
    }
    if (line.empty()) continue;
    if (line == "/bye" || line == "/exit") return 0;
    if (line == "/clear") {
      history = json::array();
      std::puts("Cleared session context");
      continue;
    }
    if (line == "/?" || line == "/help") {
      std::puts("Available commands:\n  /clear   forget the conversation so far\n  /bye     exit\n"
                "Anything else is sent to the model. Ctrl-D exits too.");
      continue;
    }
    history.push_back(json{{"role", "user"}, {"content", line}});
    json body{{"model", args.model}, {"messages", history}, {"stream", true}};
    AddKeepAlive(args, body);
    std::string reply;
    json final_chunk;
    st = StreamNdjson(server, "/api/chat", body, [&](const json& j) {
      if (j.contains("message") && j["message"].contains("content")) {
        std::string piece = j["message"]["content"];
        reply += piece;
        std::fputs(piece.c_str(), stdout);
        std::fflush(stdout);
      }
      if (j.value("done", false)) final_chunk = j;
    });
    std::fputs("\n\n", stdout);
    if (!st.ok()) {
      history.erase(history.end() - 1);
      std::fprintf(stderr, "Error: %s\n", st.message().c_str());
      continue;
    }
    history.push_back(json{{"role", "assistant"}, {"content", reply}});
    if (args.verbose) PrintStats(final_chunk);
  }
}

int Run(RunArgs args) {
  auto server = ServerFromEnv();
  if (!server.ok()) return Fail(server.status());
  if (args.prompt.empty() && !isatty(STDIN_FILENO)) {
    args.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (args.prompt.empty()) {
      return Fail(Status::InvalidArgument("no prompt: stdin was empty (give one: resident run MODEL \"prompt\")"));
    }
  }
  if (args.prompt.empty()) return RunInteractive(*server, args);
  return RunOnce(*server, args);
}

// `nodes` empty: the server named by the environment. Otherwise each node's /api/ps, merged, with a
// NODE column (a cluster behind HAProxy, docs/cluster.md); a node that does not answer is a line
// on stderr and the exit code 1, the others still listed.
int Ps(const std::vector<std::string>& nodes) {
  std::vector<Server> servers;
  if (nodes.empty()) {
    auto env_server = ServerFromEnv();
    if (!env_server.ok()) return Fail(env_server.status());
    servers.push_back(*env_server);
  }
  for (const std::string& n : nodes) {
    auto hp = ParseHostPort(n);
    if (!hp.ok()) return Fail(Status::InvalidArgument("--node " + n + ": " + hp.status().message()));
    servers.push_back(Server{hp->host, hp->port, ApiKeyFromEnv()});
  }
  json merged{{"models", json::array()}};
  int code = 0;
  for (const Server& server : servers) {
    auto client = server.Connect();
    auto res = client->Get("/api/ps");
    if (!res) {
      if (nodes.empty()) return Fail(server.Unreachable());
      code = Fail(server.Unreachable());
      continue;
    }
    json ps = json::parse(res->body, nullptr, false);
    Status bad = res->status != 200 ? Status::Internal(server.Where() + ": " + ErrorOf(res->status, res->body))
                 : !ps.is_object() || !ps.contains("models") || !ps["models"].is_array()
                     ? Status::Internal(server.Where() + ": unexpected answer from /api/ps")
                     : Status::Ok();
    if (!bad.ok()) {
      if (nodes.empty()) return Fail(bad);
      code = Fail(bad);
      continue;
    }
    for (json m : ps["models"]) {
      if (!nodes.empty()) m["node"] = server.Where();
      merged["models"].push_back(std::move(m));
    }
  }
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto table = FormatPsTable(merged, std::chrono::duration<double>(now).count());
  if (!table.ok()) return Fail(Status::Internal(table.status().message()));
  std::fputs(table->c_str(), stdout);
  return code;
}

int Stop(const std::string& model) {
  auto server = ServerFromEnv();
  if (!server.ok()) return Fail(server.status());
  auto client = server->Connect();
  client->set_read_timeout(std::chrono::minutes(5));
  json body{{"model", model}, {"keep_alive", 0}};
  auto res = client->Post("/api/generate", body.dump(), "application/json");
  if (!res) return Fail(server->Unreachable());
  if (res->status == 404) return Fail(Status::NotFound("couldn't find model \"" + model + "\" to stop"));
  if (res->status != 200) return Fail(Status::Internal(ErrorOf(res->status, res->body)));
  return 0;
}

}  // namespace

void AddClientCommands(CLI::App& app, CommandAction& chosen) {
  auto args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Run a model: one prompt, a prompt piped on stdin, or an interactive chat");
  run->add_option("model", args->model, "Model name")->required();
  run->add_option("prompt", args->prompt,
                  "Prompt. Without one: read from stdin when piped, else an interactive chat (/bye to leave)");
  run->add_flag("--raw", args->raw, "Send the prompt without the model's chat template");
  run->add_flag("--verbose", args->verbose, "Print timings after each response");
  run->add_option("--keepalive", args->keep_alive, "How long the model stays loaded afterwards (e.g. 5m, 0, -1)");
  run->callback([&chosen, args] { chosen = [args] { return Run(*args); }; });

  auto* ps = app.add_subcommand(
      "ps", "List the models loaded now: NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL (as `ollama ps` prints them), and STATE when one is asleep");
  auto ps_nodes = std::make_shared<std::vector<std::string>>();
  ps->add_option("--node", *ps_nodes,
                 "HOST:PORT of a node of a cluster (repeat for each): every node's models, with a NODE column");
  ps->callback([&chosen, ps_nodes] { chosen = [ps_nodes] { return Ps(*ps_nodes); }; });

  auto stop_model = std::make_shared<std::string>();
  auto* stop = app.add_subcommand("stop", "Unload a model now (after the requests it is serving)");
  stop->add_option("model", *stop_model, "Model name")->required();
  stop->callback([&chosen, stop_model] { chosen = [stop_model] { return Stop(*stop_model); }; });
}

}  // namespace resident::cli
