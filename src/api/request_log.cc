#include "api/request_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace resident::api {
namespace {

double WallSeconds(WallTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

std::string Errno() { return std::strerror(errno); }

// The file's modification time in Unix seconds, -1 when it does not exist.
double ModifiedSeconds(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseCount(std::string_view s, int* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

// One line without its newline: timestamp_s,model,prompt_tokens,output_tokens.
bool ParseLine(std::string_view line, RequestLogEntry* e) {
  std::string_view f[4];
  for (int i = 0; i < 4; ++i) {
    size_t comma = i < 3 ? line.find(',') : line.size();
    if (comma == std::string_view::npos) return false;
    f[i] = line.substr(0, comma);
    line.remove_prefix(std::min(line.size(), comma + 1));
  }
  if (f[3].find(',') != std::string_view::npos) return false;
  if (!ParseDouble(f[0], &e->timestamp_s) || !(e->timestamp_s >= 0)) return false;
  if (f[1].empty()) return false;
  e->model.assign(f[1]);
  return ParseCount(f[2], &e->prompt_tokens) && ParseCount(f[3], &e->output_tokens);
}

// The timestamp of the first line that parses in the first 64 KiB of `path`; -1 if none.
double FirstTimestamp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(64 << 10, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  std::string_view rest(head);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;
    RequestLogEntry e;
    if (ParseLine(rest.substr(0, nl), &e)) return e.timestamp_s;
    rest.remove_prefix(nl + 1);
  }
  return -1;
}

// Whether the file's last byte is a newline (an empty file counts as ending in one).
bool EndsWithNewline(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char last = '\n';
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    if (::pread(fd, &last, 1, st.st_size - 1) != 1) last = '\n';
  }
  ::close(fd);
  return last == '\n';
}

bool WriteWhole(int fd, std::string_view data) {
  ssize_t n = ::write(fd, data.data(), data.size());
  return n == static_cast<ssize_t>(data.size());
}

}  // namespace

std::string RotatedRequestLogPath(const std::string& path) {
  std::filesystem::path p(path);
  if (p.extension() == ".csv") return (p.parent_path() / (p.stem().string() + ".1.csv")).string();
  return path + ".1";
}

std::string FormatRequestLogLine(double timestamp_s, std::string_view model, int prompt_tokens, int output_tokens) {
  if (model.empty()) return "";
  for (char c : model) {
    if (c == ',' || c == '"' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "";
  }
  return fmt::format("{:.3f},{},{},{}", timestamp_s, model, std::max(0, prompt_tokens), std::max(0, output_tokens));
}

RequestLogFile::RequestLogFile(RequestLogOptions options)
    : options_(std::move(options)), rotated_path_(RotatedRequestLogPath(options_.path)) {}

RequestLogFile::~RequestLogFile() { Close(); }

void RequestLogFile::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status RequestLogFile::Open(double now_s) {
  const double max_age_s = ToSeconds(options_.max_age);
  if (!opened_) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(options_.path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    // When each file was last written (its newest line) comes from the file system once; from
    // then on this object keeps it. A file older than the age bound goes.
    newest_s_ = ModifiedSeconds(options_.path);
    if (newest_s_ >= 0 && newest_s_ < now_s - max_age_s) {
      ::unlink(options_.path.c_str());
      newest_s_ = -1;
    }
    rotated_newest_s_ = ModifiedSeconds(rotated_path_);
    PruneRotated(now_s);
    opened_ = true;
  }
  const bool torn = !EndsWithNewline(options_.path);
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return Status::Internal("cannot open the request log " + options_.path + ": " + Errno());
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    Close();
    return Status::Internal("cannot read the request log " + options_.path + ": " + Errno());
  }
  size_ = static_cast<uint64_t>(st.st_size);
  first_s_ = -1;
  if (size_ == 0) {
    if (!WriteWhole(fd_, kRequestLogHeader)) {
      Close();
      return Status::Internal("cannot write the request log " + options_.path + ": " + Errno());
    }
    size_ = kRequestLogHeader.size();
  } else {
    // A torn last line (a crash in the middle of a write) is ended, so that it stays alone.
    if (torn && WriteWhole(fd_, "\n")) ++size_;
    first_s_ = FirstTimestamp(options_.path);
  }
  return Status::Ok();
}

void RequestLogFile::PruneRotated(double now_s) {
  if (rotated_newest_s_ >= 0 && rotated_newest_s_ < now_s - ToSeconds(options_.max_age)) {
    ::unlink(rotated_path_.c_str());
    rotated_newest_s_ = -1;
  }
}

Status RequestLogFile::Rotate() {
  Close();
  if (::rename(options_.path.c_str(), rotated_path_.c_str()) != 0) {
    return Status::Internal("cannot rotate the request log " + options_.path + ": " + Errno());
  }
  rotated_newest_s_ = newest_s_;
  newest_s_ = -1;
  return Status::Ok();
}

Status RequestLogFile::Append(std::string_view line, double timestamp_s, double now_s) {
  const double max_age_s = ToSeconds(options_.max_age);
  if (fd_ < 0) RESIDENT_RETURN_IF_ERROR(Open(now_s));
  const uint64_t bytes = line.size() + 1;
  const bool full = size_ > kRequestLogHeader.size() && size_ + bytes > options_.max_bytes / 2;
  const bool old = first_s_ >= 0 && first_s_ < now_s - max_age_s / 2;
  if (full || old) {
    RESIDENT_RETURN_IF_ERROR(Rotate());
    RESIDENT_RETURN_IF_ERROR(Open(now_s));
  }
  PruneRotated(now_s);
  std::string whole;
  whole.reserve(bytes);
  whole.append(line).push_back('\n');
  ssize_t n = ::write(fd_, whole.data(), whole.size());
  if (n != static_cast<ssize_t>(whole.size())) {
    Status st = Status::Internal("cannot write the request log " + options_.path + ": " +
                                 (n < 0 ? Errno() : "short write (disk full?)"));
    Close();  // reopened by the next line, which ends a torn one first
    return st;
  }
  size_ += bytes;
  if (first_s_ < 0) first_s_ = timestamp_s;
  newest_s_ = now_s;
  return Status::Ok();
}

RequestLog::RequestLog(RequestLogOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), file_(options_) {
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "request-log");
    WriterLoop();
  });
}

RequestLog::~RequestLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void RequestLog::Append(WallTime arrival, std::string_view model, int prompt_tokens, int output_tokens) {
  const double t = WallSeconds(arrival);
  std::string line = FormatRequestLogLine(t, model, prompt_tokens, output_tokens);
  if (line.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      ++dropped_;
      return;
    }
    queue_.emplace_back(std::move(line), t);
  }
  cv_.notify_one();
}

void RequestLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return (queue_.empty() && !writing_) || stop_; });
}

uint64_t RequestLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

uint64_t RequestLog::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

void RequestLog::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  bool warned = false;
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    std::deque<std::pair<std::string, double>> lines;
    lines.swap(queue_);
    writing_ = true;
    lock.unlock();
    uint64_t failed = 0;
    std::string first_error;
    const double now = WallSeconds(clock_.WallNow());
    for (const auto& [line, t] : lines) {
      if (Status st = file_.Append(line, t, now); !st.ok()) {
        if (first_error.empty()) first_error = st.message();
        ++failed;
      }
    }
    if (failed && !warned) {
      spdlog::warn("{} ({} lines lost; further failures are counted, not logged)", first_error, failed);
      warned = true;
    }
    lock.lock();
    failed_ += failed;
    writing_ = false;
    idle_cv_.notify_all();
  }
  writing_ = false;
  idle_cv_.notify_all();
}

Result<RequestLogContents> ReadRequestLog(const std::string& path, double since_s, size_t max_entries) {
  RequestLogContents out;
  bool any = false;
  for (const std::string& p : {RotatedRequestLogPath(path), path}) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      if (errno == ENOENT || !std::filesystem::exists(p)) continue;
      return Status::Internal("cannot read the request log " + p + ": " + Errno());
    }
    any = true;
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    std::string_view rest(text);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) {  // a torn last line: the write it came from never ended
        ++out.skipped;
        break;
      }
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.front() == '#' || line == kRequestLogHeader.substr(0, kRequestLogHeader.size() - 1)) {
        continue;
      }
      RequestLogEntry e;
      if (!ParseLine(line, &e)) {
        ++out.skipped;
        continue;
      }
      if (e.timestamp_s < since_s) {
        ++out.older;
        continue;
      }
      out.entries.push_back(std::move(e));
    }
  }
  if (!any) return Status::NotFound("no request log at " + path + " (nothing recorded yet, or RESIDENT_REQUEST_LOG=off)");
  // Lines are written as requests end, so arrivals can be slightly out of order.
  std::stable_sort(out.entries.begin(), out.entries.end(),
                   [](const RequestLogEntry& a, const RequestLogEntry& b) { return a.timestamp_s < b.timestamp_s; });
  if (max_entries > 0 && out.entries.size() > max_entries) {
    const size_t drop = out.entries.size() - max_entries;
    out.entries.erase(out.entries.begin(), out.entries.begin() + static_cast<std::ptrdiff_t>(drop));
    out.older += drop;
  }
  return out;
}

namespace {

struct RequestRecord {
  bool begun = false;
  bool leased = false;
  WallTime arrival{};
  std::string model;
  int prompt_tokens = 0;
  int output_tokens = 0;
};
thread_local RequestRecord t_record;

}  // namespace

void BeginRequestRecord(WallTime arrival) {
  t_record.begun = true;
  t_record.leased = false;
  t_record.arrival = arrival;
  t_record.model.clear();
  t_record.prompt_tokens = 0;
  t_record.output_tokens = 0;
}

void NoteRequestModel(std::string_view model) {
  if (!t_record.begun) return;
  t_record.leased = true;
  t_record.model.assign(model);
}

void NoteRequestTokens(int prompt_tokens, int output_tokens) {
  if (!t_record.begun) return;
  t_record.prompt_tokens += prompt_tokens;
  t_record.output_tokens += output_tokens;
}

void EndRequestRecord(RequestLog* log) {
  if (t_record.begun && t_record.leased && log != nullptr) {
    log->Append(t_record.arrival, t_record.model, t_record.prompt_tokens, t_record.output_tokens);
  }
  t_record.begun = false;
  t_record.leased = false;
}

}  // namespace resident::api
