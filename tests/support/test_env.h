// Helpers for integration tests: synthetic models made once per test run, and the real
// `resident serve` binary started on a free loopback port.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resident::testing {

// A folder private to this test process (removed at exit).
const std::string& TestDir();

// TestDir()/<name of the running test>, created.
std::string TestCaseDir();

// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
int FreePort();
// A socket bound to 127.0.0.1 on a free port (stored in *port), not yet listening. The caller closes it.
int BindLoopback(int* port);

// A file's bytes ("" when it cannot be read).
std::string ReadAll(const std::string& path);

// A raw TCP connection to 127.0.0.1:port (the test fails if it cannot connect). The caller
// closes it.
int ConnectLoopback(int port);

// Path of a synthetic model written by `resident synth` (cached for the whole run).
std::string SynthModel(const std::string& params, int seed);

// A running `resident serve`. Stops it (SIGTERM, then SIGKILL) on destruction.
class ServerProcess {
 public:
  // models_dir: a folder of .gguf files. env: extra environment variables (RESIDENT_HOST: the
  // address alone, e.g. "0.0.0.0"; default 127.0.0.1; the port is chosen here).
  // binary: the resident executable to start (default: the one built with the tests).
  // args: more arguments for `serve` (after --models-dir).
  explicit ServerProcess(const std::string& models_dir, std::map<std::string, std::string> env = {},
                         const std::string& binary = RESIDENT_BINARY, const std::vector<std::string>& args = {});
  ~ServerProcess();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool alive() const;
  // Runner processes (children of the server).
  std::vector<pid_t> Children() const;
  // Sends SIGTERM and waits; returns the exit status (as from waitpid).
  int Terminate();
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

struct HttpReply {
  int status = 0;  // 0: no connection
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  // Each NDJSON line parsed.
  std::vector<nlohmann::json> lines() const;
};

// The JSON payloads of an SSE body ("data: ..." events), [DONE] as the string "[DONE]".
std::vector<nlohmann::json> SseEvents(const std::string& body);

HttpReply Post(int port, const std::string& path, const std::string& body);
HttpReply Get(int port, const std::string& path);

// One request written as it is (`request`: the request line, headers and body) on a new
// connection, then everything read until the server closes it. A chunked body is de-chunked.
// `reset`: the server reset the connection (ECONNRESET) instead of closing it.
struct RawReply {
  int status = 0;  // 0: no status line arrived
  std::string body;
  bool reset = false;
  std::string raw;     // everything the server sent
  int responses = 0;   // status lines in `raw` ("HTTP/1.1 NNN " at the start of a line)
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};
RawReply RawRequest(int port, const std::string& request);
// Sends `request` on a new connection and returns the connection without reading: the caller
// plays a client that waits, then leaves (close) or reads.
int SendRaw(int port, const std::string& request);

// Waits until the server's log holds `needle` at least `count` times; false if it did not
// within `limit` (a failing test ends instead of hanging), or the server died.
bool WaitForLog(const ServerProcess& server, const std::string& needle, int count = 1,
                std::chrono::seconds limit = std::chrono::seconds(300));
// How many times the server's log holds `needle`.
int CountInLog(const ServerProcess& server, const std::string& needle);
// Waits until `condition()` holds (polled every 10 ms); false after `limit`.
bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds limit = std::chrono::seconds(300));
// A POST of `body` with these extra header lines ("Name: value\r\n" each), Connection: close.
std::string RawPost(const std::string& path, const std::string& body, const std::string& headers = "");

// The value of the sample `series` (name and labels exactly as written) in a /metrics text,
// NaN when absent.
double MetricSample(const std::string& metrics, const std::string& series);

// Runs `resident ARGS` (a shell word list) against the server on `port` with extra environment
// (RESIDENT_API_KEY is removed from the inherited environment first): its exit code and its
// stdout and stderr together.
struct CliRun {
  int code = -1;
  std::string out;
};
CliRun RunCli(int port, const std::string& args, const std::map<std::string, std::string>& env = {});

// Copies `src` to `dst` keeping only the first `bytes` bytes.
void WriteTruncatedCopy(const std::string& src, const std::string& dst, size_t bytes);

}  // namespace resident::testing
