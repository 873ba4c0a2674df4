// The request log: one line per model request (generate, chat, embed and their /v1 forms), in the
// request CSV that `resident bench simulate` reads, so that what each keep_alive would have cost
// can be priced on the user's own traffic (`resident bench simulate --own`, the dashboard).
//
//   timestamp_s,model,prompt_tokens,output_tokens
//   1764253563.409,m1:latest,29,16
//
// What a line holds: when the request arrived (Unix time in seconds, to the millisecond), the
// model's name as the catalog resolved it, the prompt tokens evaluated and the tokens generated
// (an embedding: its input tokens, 0 generated). Nothing else: no prompt or output text, no client
// address, no options. A request is recorded once it got its model (a lease), whatever came next
// (a load-only request with an empty prompt records 0,0); requests refused before that are not.
//
// Bounded by size and by age, in two files: PATH (e.g. request-log.csv) and PATH's rotated copy
// (request-log.1.csv). PATH is rotated (renamed over the copy, which is dropped) before a line
// would take it past max_bytes / 2, or once its first line is older than max_age / 2; a file
// whose newest line is older than max_age is removed (checked when the log opens and before each
// write). So the two never hold more than max_bytes, nor, while requests come, lines older than
// max_age.
//
// Crash safe: PATH is opened with O_APPEND and each line goes out whole in one write(2), so a
// crash can cut at most the line being written, never an earlier one. Opening a file whose last
// byte is not a newline (a torn line) ends that line first, so the next line starts on its own;
// ReadRequestLog skips every line that does not parse, and a last line without its newline.
//
// Never blocks a request on the disk: Append() formats the line and queues it (at most
// kMaxQueued lines; beyond, lines are dropped and counted), and the log's writer thread writes it
// at once. So a crash of the server loses what was queued and not yet written: normally nothing,
// at most the lines of requests that ended in the same few microseconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace resident::api {

inline constexpr std::string_view kRequestLogHeader = "timestamp_s,model,prompt_tokens,output_tokens\n";

struct RequestLogOptions {
  std::string path;                                    // e.g. ~/.resident/request-log.csv
  uint64_t max_bytes = 64ull << 20;                    // both files together
  Duration max_age = std::chrono::hours(24 * 30);      // 30 days
};

// The rotated copy of `path`: "request-log.csv" -> "request-log.1.csv", "log" -> "log.1".
std::string RotatedRequestLogPath(const std::string& path);

// One line of the log, without its newline; "" when the model's name cannot be written in one
// CSV field (a comma, a quote, a control character: never a valid model name).
std::string FormatRequestLogLine(double timestamp_s, std::string_view model, int prompt_tokens, int output_tokens);

// The files themselves, written from one thread (RequestLog's writer; tests drive it directly
// with their own times). Not thread-safe.
class RequestLogFile {
 public:
  explicit RequestLogFile(RequestLogOptions options);
  ~RequestLogFile();
  RequestLogFile(const RequestLogFile&) = delete;
  RequestLogFile& operator=(const RequestLogFile&) = delete;

  // Appends one line (no newline: added here) stamped `timestamp_s`, rotating and pruning first as
  // the bounds require; `now_s` is the time the age bound is checked against. Opens the file on
  // first use (creating its folder). Errors: kInternal naming the path and the system's reason
  // (the line is lost; the next call tries again).
  Status Append(std::string_view line, double timestamp_s, double now_s);

 private:
  Status Open(double now_s);
  Status Rotate();
  void Close();
  void PruneRotated(double now_s);

  const RequestLogOptions options_;
  const std::string rotated_path_;
  int fd_ = -1;
  uint64_t size_ = 0;          // of the open file
  double first_s_ = -1;        // timestamp of its first line (-1: none yet)
  double newest_s_ = -1;       // when the open file was last written (-1: never)
  double rotated_newest_s_ = -1;  // when the rotated copy was last written (-1: no copy)
  bool opened_ = false;        // the files' times were read (first Open)
};

// The log a server writes: Append() from any thread; a writer thread does the writing.
class RequestLog {
 public:
  static constexpr size_t kMaxQueued = 4096;

  explicit RequestLog(RequestLogOptions options, const Clock& clock);
  // Writes what is queued, then stops the writer.
  ~RequestLog();
  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  // Queues the line of a request that arrived at `arrival`. Never blocks on the disk.
  void Append(WallTime arrival, std::string_view model, int prompt_tokens, int output_tokens);
  // Returns once every line queued before the call is written (or failed): for tests.
  void Flush();

  const std::string& path() const { return options_.path; }
  const RequestLogOptions& options() const { return options_; }
  uint64_t dropped() const;  // lines dropped because the queue was full
  uint64_t failed() const;   // lines the disk refused

 private:
  void WriterLoop();

  const RequestLogOptions options_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // a line was queued, or stop
  std::condition_variable idle_cv_;  // the queue was written
  std::deque<std::pair<std::string, double>> queue_;  // (line, timestamp_s); guarded by mu_
  bool writing_ = false;             // the writer holds lines taken from queue_; guarded by mu_
  bool stop_ = false;                // guarded by mu_
  uint64_t dropped_ = 0;             // guarded by mu_
  uint64_t failed_ = 0;              // guarded by mu_
  RequestLogFile file_;              // the writer thread's only
  std::thread writer_;
};

struct RequestLogEntry {
  double timestamp_s = 0;
  std::string model;
  int prompt_tokens = 0;
  int output_tokens = 0;
};

struct RequestLogContents {
  std::vector<RequestLogEntry> entries;  // oldest first
  size_t skipped = 0;                    // lines that did not parse (torn, corrupt), headers aside
  size_t older = 0;                      // entries left out by since_s / max_entries
};

// Reads the rotated copy, then PATH: every complete line that parses, with timestamp_s >= since_s,
// the newest `max_entries` of them (0: all), oldest first. Errors: kNotFound when neither file
// exists; kInternal when one cannot be read.
Result<RequestLogContents> ReadRequestLog(const std::string& path, double since_s = 0, size_t max_entries = 0);

// The request the calling HTTP worker thread is serving, as the log will record it. The server's
// pre-routing handler begins it, the routes note what they learn, and the server's logger (run
// once the answer is written) ends it.
void BeginRequestRecord(WallTime arrival);
void NoteRequestModel(std::string_view model);          // a lease on the model was granted
void NoteRequestTokens(int prompt_tokens, int output_tokens);
// Appends the record to `log` (when not null) if a model was noted; clears it either way.
void EndRequestRecord(RequestLog* log);

}  // namespace resident::api
