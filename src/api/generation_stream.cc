#include "api/generation_stream.h"

namespace resident::api {

GenerationStream::GenerationStream(Run run) {
  thread_ = std::thread([this, run = std::move(run)] {
    auto done = run([this](const runner::TokenEvent& piece) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return cancelled_ || pieces_.size() < kMaxAhead; });
      if (cancelled_) return false;
      pieces_.push_back(piece);
      cv_.notify_all();
      return true;
    });
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(done);
    ended_ = true;
    cv_.notify_all();
  });
}

GenerationStream::~GenerationStream() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

Status GenerationStream::WaitForFirst() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return ended_ || !pieces_.empty(); });
  if (pieces_.empty() && !result_.ok()) return result_.status();
  return Status::Ok();
}

bool GenerationStream::Next(runner::TokenEvent* piece) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return ended_ || !pieces_.empty(); });
  if (pieces_.empty()) return false;
  *piece = std::move(pieces_.front());
  pieces_.pop_front();
  cv_.notify_all();  // room for the generation
  return true;
}

void GenerationStream::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

}  // namespace resident::api
