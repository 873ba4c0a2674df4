// Status and Result<T>: errors as values at every module boundary.
//
// A Status is either ok or carries a code and a message written for the user who caused it
// ("model \"x\" not found, try pulling it first"). Result<T> holds a T or a non-ok Status.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace resident {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong (HTTP 400)
  kNotFound,           // no such model or file (404)
  kCancelled,          // the client went away (499)
  kResourceExhausted,  // queue full, does not fit in memory (503)
  kDeadlineExceeded,   // a load or request took too long
  kUnavailable,        // a runner died or is not ready
  kFailedPrecondition, // can never succeed as the server is set up, e.g. a model larger than
                       // the memory budget: no retry helps (500, as Ollama answers it)
  kInternal,           // anything else (500)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not found: model x" style, for logs.
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace resident

#define RESIDENT_RETURN_IF_ERROR(expr)      \
  do {                                      \
    ::resident::Status _st = (expr);        \
    if (!_st.ok()) return _st;              \
  } while (0)
