#include "runner/runner_main.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/system_info.h"
#include "runner/cpu_share.h"
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

// The worker thread owns the engine: it admits queued work into free slots and steps the engine
// while any slot is busy. The reader thread only queues work, flags cancellations and answers
// health and memory questions, so those are answered even in the middle of a long decode.
class Server {
 public:
  Server(int fd, std::unique_ptr<Engine> engine, CpuShare* share)
      : reader_(fd), writer_(fd), engine_(std::move(engine)), share_(share) {}

  int Run() {
    std::thread worker([this] { WorkLoop(); });
    int code = ReadLoop();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& [id, flag] : running_) flag->store(true);
    }
    cv_.notify_all();
    worker.join();
    return code;
  }

 private:
  using Flag = std::shared_ptr<std::atomic<bool>>;

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
        writer_.Send(HealthResult{h->id, !running_.empty()});
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
    if (auto it = running_.find(id); it != running_.end()) {
      it->second->store(true);
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

  // Takes from the front of the queue, in order, what can run now: generations while a slot is
  // free, tokenizations always, an embedding only alone (it uses the whole context).
  std::vector<std::pair<Work, Flag>> Admit(int free_slots, bool engine_busy) {
    std::vector<std::pair<Work, Flag>> out;
    while (!queue_.empty()) {
      Work& w = queue_.front();
      if (std::holds_alternative<GenerateRequest>(w)) {
        if (free_slots == 0) break;
        --free_slots;
        engine_busy = true;
      } else if (std::holds_alternative<EmbedRequest>(w)) {
        if (engine_busy || !out.empty()) break;
        engine_busy = true;
        free_slots = 0;
      }
      Flag flag = std::make_shared<std::atomic<bool>>(false);
      running_[WorkId(w)] = flag;
      out.emplace_back(std::move(w), std::move(flag));
      queue_.pop_front();
    }
    return out;
  }

  void WorkLoop() {
    while (true) {
      std::vector<std::pair<Work, Flag>> admitted;
      {
        std::unique_lock<std::mutex> lock(mu_);
        const int free_slots = engine_->FreeSlots();
        const bool busy = engine_->Busy();
        if (!busy && queue_.empty()) {
          share_->SetBusy(false);
          engine_->Idle();
        }
        cv_.wait(lock, [&] { return stopping_ || busy || !queue_.empty(); });
        if (stopping_) break;
        admitted = Admit(free_slots, busy);
      }
      share_->SetBusy(true);
      for (auto& item : admitted) {
        const Flag& flag = item.second;
        std::visit([this, &flag](auto& r) { Handle(r, flag); }, item.first);
      }
      engine_->Step();
    }
    // Whatever is still running was cancelled above: one last step lets it leave.
    engine_->Step();
  }

  void Finished(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(id);
  }

  void Handle(const GenerateRequest& r, const Flag& flag) {
    uint64_t id = r.id;
    Status st = engine_->Start(
        r, flag, [this, id](std::string_view text) { writer_.Send(TokenEvent{id, std::string(text)}); },
        [this, id](Result<DoneEvent> done) {
          if (done.ok()) writer_.Send(std::move(done).value());
          else writer_.Send(ErrorEvent{id, done.status().code(), done.status().message()});
          Finished(id);
        });
    if (!st.ok()) {
      writer_.Send(ErrorEvent{id, st.code(), st.message()});
      Finished(id);
    }
  }

  void Handle(const EmbedRequest& r, const Flag& flag) {
    auto result = engine_->Embed(r, *flag);
    if (result.ok()) writer_.Send(std::move(result).value());
    else writer_.Send(ErrorEvent{r.id, result.status().code(), result.status().message()});
    Finished(r.id);
  }

  void Handle(const TokenizeRequest& r, const Flag&) {
    auto tokens = engine_->Tokenize(r.text, r.add_special);
    if (tokens.ok()) writer_.Send(TokenizeResult{r.id, std::move(tokens).value()});
    else writer_.Send(ErrorEvent{r.id, tokens.status().code(), tokens.status().message()});
    Finished(r.id);
  }

  FrameReader reader_;
  Writer writer_;
  std::unique_ptr<Engine> engine_;  // used by the worker thread only
  CpuShare* share_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;                  // guarded by mu_
  std::map<uint64_t, Flag> running_;        // guarded by mu_: admitted work -> its cancel flag
  bool stopping_ = false;                   // guarded by mu_
};

}  // namespace

int RunnerMain(int fd, int cpu_share_fd) {
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
  CpuShare& share = CpuShare::ForRunner(cpu_share_fd);
  (*engine)->ShareCores(&share);
  Server server(fd, std::move(engine).value(), &share);
  int code = server.Run();
  // Freeing a multi-GB model page by page is slow; the kernel takes it all back at exit.
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace resident::runner
