#include "runner/runner_main.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "core/system_info.h"
#include "runner/engine.h"
#include "runner/protocol.h"

namespace resident::runner {
namespace {

// Serializes writers of the socket (the worker's tokens, the reader's health answers).
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) {}
  void Send(const Message& m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!WriteFrame(fd_, m).ok()) {
      // The server is gone: nothing left to serve.
      std::_Exit(0);
    }
  }

 private:
  std::mutex mu_;
  int fd_;
};

using Work = std::variant<GenerateRequest, EmbedRequest, TokenizeRequest>;

uint64_t WorkId(const Work& w) {
  return std::visit([](const auto& r) { return r.id; }, w);
}

class Server {
 public:
  Server(int fd, std::unique_ptr<Engine> engine) : reader_(fd), writer_(fd), engine_(std::move(engine)) {}

  int Run() {
    std::thread worker([this] { WorkLoop(); });
    int code = ReadLoop();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cancel_current_ = true;
    }
    cv_.notify_all();
    worker.join();
    return code;
  }

 private:
  int ReadLoop() {
    while (true) {
      auto msg = reader_.Next();
      if (!msg.ok()) {
        if (msg.status().code() == StatusCode::kUnavailable) return 0;  // server closed the socket
        std::fprintf(stderr, "runner: %s\n", msg.status().ToString().c_str());
        return 2;
      }
      Message& m = *msg;
      if (auto* g = std::get_if<GenerateRequest>(&m)) Enqueue(std::move(*g));
      else if (auto* e = std::get_if<EmbedRequest>(&m)) Enqueue(std::move(*e));
      else if (auto* t = std::get_if<TokenizeRequest>(&m)) Enqueue(std::move(*t));
      else if (auto* c = std::get_if<CancelRequest>(&m)) Cancel(c->id);
      else if (auto* h = std::get_if<HealthRequest>(&m)) {
        std::lock_guard<std::mutex> lock(mu_);
        writer_.Send(HealthResult{h->id, current_id_ != 0});
      } else if (auto* mr = std::get_if<MemoryRequest>(&m)) {
        writer_.Send(MemoryResult{mr->id, ProcessRssBytes(getpid()), 0});
      } else if (std::holds_alternative<ShutdownRequest>(m)) {
        return 0;
      } else {
        std::fprintf(stderr, "runner: unexpected message type %zu\n", m.index());
      }
    }
  }

  void Enqueue(Work w) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(w));
    }
    cv_.notify_one();
  }

  void Cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id == current_id_) {
      cancel_current_ = true;
      return;
    }
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (WorkId(*it) == id) {
        queue_.erase(it);
        writer_.Send(ErrorEvent{id, StatusCode::kCancelled, "request cancelled"});
        return;
      }
    }
  }

  void WorkLoop() {
    while (true) {
      Work w;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        w = std::move(queue_.front());
        queue_.pop_front();
        current_id_ = WorkId(w);
        cancel_current_ = false;
      }
      std::visit([this](auto& r) { Handle(r); }, w);
      std::lock_guard<std::mutex> lock(mu_);
      current_id_ = 0;
    }
  }

  void Handle(const GenerateRequest& r) {
    auto done = engine_->Generate(
        r, [&](std::string_view text) { writer_.Send(TokenEvent{r.id, std::string(text)}); }, cancel_current_);
    if (done.ok()) writer_.Send(std::move(done).value());
    else writer_.Send(ErrorEvent{r.id, done.status().code(), done.status().message()});
  }

  void Handle(const EmbedRequest& r) {
    auto result = engine_->Embed(r, cancel_current_);
    if (result.ok()) writer_.Send(std::move(result).value());
    else writer_.Send(ErrorEvent{r.id, result.status().code(), result.status().message()});
  }

  void Handle(const TokenizeRequest& r) {
    auto tokens = engine_->Tokenize(r.text, r.add_special);
    if (tokens.ok()) writer_.Send(TokenizeResult{r.id, std::move(tokens).value()});
    else writer_.Send(ErrorEvent{r.id, tokens.status().code(), tokens.status().message()});
  }

  FrameReader reader_;
  Writer writer_;
  std::unique_ptr<Engine> engine_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;          // guarded by mu_
  uint64_t current_id_ = 0;         // guarded by mu_; 0 when idle
  bool stopping_ = false;           // guarded by mu_
  std::atomic<bool> cancel_current_{false};
};

}  // namespace

int RunnerMain(int fd) {
  Engine::PrepareBackends();  // before the load request: a spare runner does this while idle
  FrameReader reader(fd);
  auto first = reader.Next();
  if (!first.ok()) return 0;
  auto* load = std::get_if<LoadRequest>(&*first);
  if (load == nullptr) {
    std::fprintf(stderr, "runner: the first message must be a load request\n");
    return 2;
  }
  Writer writer(fd);
  int last_step = -1;
  auto engine = Engine::Load(*load, [&](float p) {
    int step = static_cast<int>(p * 20);  // every 5%
    if (step != last_step) {
      last_step = step;
      writer.Send(LoadProgressEvent{p});
    }
    return true;
  });
  if (!engine.ok()) {
    writer.Send(LoadFailedEvent{engine.status().code(), engine.status().message()});
    return 1;
  }
  writer.Send(LoadedEvent{(*engine)->facts()});
  Server server(fd, std::move(engine).value());
  int code = server.Run();
  // Freeing a multi-GB model page by page is slow; the kernel takes it all back at exit.
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace resident::runner
