#include "runner/runner_main.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/bytes.h"
#include "core/system_info.h"
#include "runner/chat_output.h"
#include "runner/cpu_share.h"
#include "runner/engine.h"
#include "runner/protocol.h"
#include "runner/runner_limits.h"
#include "runner/runner_process.h"
#include "runner/template_sandbox.h"

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

// A generation, with what its chat template's render adds (null: a prompt used as it is).
struct GenerateWork {
  GenerateRequest request;
  std::shared_ptr<const RenderedChat> chat;
};

using Work = std::variant<GenerateWork, EmbedRequest, TokenizeRequest, SavePromptRequest, SleepRequest, WakeRequest>;

uint64_t WorkId(const Work& w) {
  return std::visit(
      [](const auto& r) -> uint64_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(r)>, GenerateWork>) return r.request.id;
        else return r.id;
      },
      w);
}

// The render options a chat request asks for.
ChatRenderOptions RenderOptions(const GenerateRequest& r) {
  ChatRenderOptions o;
  o.tools = r.tools;
  o.tool_choice = r.tool_choice;
  o.parallel_tool_calls = r.parallel_tool_calls;
  o.think = r.think;
  o.think_level = r.think_level;
  return o;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The worker thread owns the engine: it admits queued work into free slots and steps the engine
// while any slot is busy. The render thread renders the messages of chat requests in the template
// sandbox (template_sandbox.h) and queues them for the worker with their prompt rendered, so that
// a template that takes long never holds up the worker. The reader thread only queues work, flags
// cancellations and answers health and memory questions, so those are answered even in the
// middle of a long decode or render.
//
// Progress (runner_limits.h): the worker stores the time of its latest progress in beat_ (the
// engine too, between graph nodes), 0 while it waits for work; a health answer says how long ago
// that was.
class Server {
 public:
  Server(int fd, std::unique_ptr<Engine> engine, CpuShare* share, std::unique_ptr<TemplateSandbox> sandbox)
      : reader_(fd), writer_(fd), engine_(std::move(engine)), share_(share), sandbox_(std::move(sandbox)) {
    engine_->SetHeartbeat(&beat_);
  }

  int Run() {
    std::thread worker([this] { WorkLoop(); });
    std::thread renderer([this] { RenderLoop(); });
    int code = ReadLoop();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& [id, flag] : running_) flag->store(true);
      if (rendering_flag_) rendering_flag_->store(true);
    }
    cv_.notify_all();
    render_cv_.notify_all();
    renderer.join();
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
      if (auto* g = std::get_if<GenerateRequest>(&m)) {
        if (g->messages.empty()) Enqueue(GenerateWork{std::move(*g), nullptr});
        else if (Status st = CheckMessagesFit(*g); !st.ok()) writer_.Send(ErrorEvent{g->id, st.code(), st.message()});
        else EnqueueRender(std::move(*g));
      } else if (auto* e = std::get_if<EmbedRequest>(&m)) Enqueue(std::move(*e));
      else if (auto* t = std::get_if<TokenizeRequest>(&m)) Enqueue(std::move(*t));
      else if (auto* sp = std::get_if<SavePromptRequest>(&m)) Enqueue(*sp);
      else if (auto* sl = std::get_if<SleepRequest>(&m)) Enqueue(*sl);
      else if (auto* wk = std::get_if<WakeRequest>(&m)) Enqueue(*wk);
      else if (auto* c = std::get_if<CancelRequest>(&m)) Cancel(c->id);
      else if (auto* h = std::get_if<HealthRequest>(&m)) {
        HealthResult answer{h->id, false, 0, ""};
        const int64_t beat = beat_.load(std::memory_order_relaxed);
        if (beat != 0) {
          answer.stalled_ms = std::max<int64_t>(0, (NowNs() - beat) / 1000000);
          answer.doing = doing_.load(std::memory_order_relaxed);
        }
        std::lock_guard<std::mutex> lock(mu_);
        answer.busy = !running_.empty() || rendering_flag_ != nullptr;
        writer_.Send(answer);
      } else if (auto* mr = std::get_if<MemoryRequest>(&m)) {
        writer_.Send(MemoryResult{mr->id, ProcessRssBytes(getpid()), 0});
      } else if (std::holds_alternative<ShutdownRequest>(m)) {
        return 0;
      } else {
        std::fprintf(stderr, "runner: unexpected message type %zu\n", m.index());
      }
    }
  }

  // Chat messages that cannot fit the context are refused before they are rendered (100,000
  // messages once held a model for 40 s before the prompt was found too long): a message renders
  // to one token at least, and a rendering holds each message's content. Reads only what the
  // engine fixed at load.
  Status CheckMessagesFit(const GenerateRequest& r) const {
    const int32_t n_ctx = engine_->facts().n_ctx;
    if (r.messages.size() >= static_cast<size_t>(n_ctx)) {
      return Status::InvalidArgument(std::to_string(r.messages.size()) + " chat messages cannot fit in the context of " +
                                     std::to_string(n_ctx) + " tokens (raise num_ctx or send fewer messages)");
    }
    uint64_t bytes = r.prompt.size();
    for (const ChatMessage& msg : r.messages) {
      bytes += msg.content.size() + msg.thinking.size();
      for (const ToolCall& c : msg.tool_calls) bytes += c.name.size() + c.arguments.size();
    }
    for (const ToolDefinition& t : r.tools) bytes += t.name.size() + t.description.size() + t.parameters.size();
    return engine_->CheckFits(bytes, "the prompt");
  }

  void Enqueue(Work w) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(w));
    }
    cv_.notify_one();
  }

  void EnqueueRender(GenerateRequest r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      render_queue_.push_back(std::move(r));
    }
    render_cv_.notify_one();
  }

  void Cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = running_.find(id); it != running_.end()) {
      it->second->store(true);
      return;
    }
    if (rendering_flag_ && rendering_id_ == id) {
      rendering_flag_->store(true);  // the render stops within kCancelPoll and answers
      return;
    }
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (WorkId(*it) == id) {
        queue_.erase(it);
        writer_.Send(ErrorEvent{id, StatusCode::kCancelled, "request cancelled"});
        return;
      }
    }
    for (auto it = render_queue_.begin(); it != render_queue_.end(); ++it) {
      if (it->id == id) {
        render_queue_.erase(it);
        writer_.Send(ErrorEvent{id, StatusCode::kCancelled, "request cancelled"});
        return;
      }
    }
  }

  // Renders chat requests one at a time, in order, and hands each to the worker's queue.
  void RenderLoop() {
    while (true) {
      GenerateRequest r;
      Flag flag = std::make_shared<std::atomic<bool>>(false);
      {
        std::unique_lock<std::mutex> lock(mu_);
        render_cv_.wait(lock, [&] { return stopping_ || !render_queue_.empty(); });
        if (stopping_) return;
        r = std::move(render_queue_.front());
        render_queue_.pop_front();
        rendering_id_ = r.id;
        rendering_flag_ = flag;
      }
      auto chat = sandbox_->Render(r.messages, RenderOptions(r), flag.get());
      std::unique_lock<std::mutex> lock(mu_);
      rendering_flag_.reset();
      rendering_id_ = 0;
      if (stopping_) return;
      if (flag->load()) {
        writer_.Send(ErrorEvent{r.id, StatusCode::kCancelled, "request cancelled"});
      } else if (!chat.ok()) {
        writer_.Send(ErrorEvent{r.id, chat.status().code(), chat.status().message()});
      } else {
        r.prompt = std::move(chat->prompt) + r.prompt;
        chat->prompt.clear();
        r.messages.clear();
        // The stop strings of the template's format (llama 3's <|eom_id|>...), a few at most.
        for (std::string& stop : chat->additional_stops) {
          if (std::find(r.stop.begin(), r.stop.end(), stop) == r.stop.end()) r.stop.push_back(std::move(stop));
        }
        queue_.push_back(GenerateWork{std::move(r), std::make_shared<const RenderedChat>(std::move(chat).value())});
        lock.unlock();
        cv_.notify_one();
      }
    }
  }

  // Takes from the front of the queue, in order, what can run now: generations while a slot is
  // free, tokenizations always, an embedding, a prompt cache save, a sleep or a wake only alone
  // (each uses, saves or replaces the whole context).
  std::vector<std::pair<Work, Flag>> Admit(int free_slots, bool engine_busy) {
    std::vector<std::pair<Work, Flag>> out;
    while (!queue_.empty()) {
      Work& w = queue_.front();
      if (std::holds_alternative<GenerateWork>(w)) {
        if (free_slots == 0) break;
        --free_slots;
        engine_busy = true;
      } else if (!std::holds_alternative<TokenizeRequest>(w)) {
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

  void Beat(const char* doing) {
    doing_.store(doing, std::memory_order_relaxed);
    beat_.store(NowNs(), std::memory_order_relaxed);
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
          beat_.store(0, std::memory_order_relaxed);  // waiting for work is not being stuck
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
      Beat("decoding");
      engine_->Step();
    }
    // Whatever is still running was cancelled above: one last step lets it leave.
    engine_->Step();
  }

  void Finished(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(id);
  }

  // A token event with what a chat's parsed answer added (or the text as it is), when it holds
  // anything.
  void SendPiece(uint64_t id, ChatDelta d, std::vector<TokenLogprob> logprobs) {
    if (d.empty() && logprobs.empty()) return;
    TokenEvent ev;
    ev.id = id;
    ev.text = std::move(d.content);
    ev.thinking = std::move(d.thinking);
    ev.tool_calls = std::move(d.tool_calls);
    ev.logprobs = std::move(logprobs);
    writer_.Send(ev);
  }

  void Handle(const GenerateWork& w, const Flag& flag) {
    const GenerateRequest& r = w.request;
    uint64_t id = r.id;
    // Tokenizing the prompt and building the sampler (a grammar) happen here.
    Beat("starting a generation (tokenizing its prompt, building its sampler)");
    // A chat with tools or thinking: the chat layer reads the answer as it comes (worker thread
    // only, as the engine's callbacks).
    std::shared_ptr<ChatOutput> parser;
    if (w.chat && w.chat->parsed()) {
      auto created = ChatOutput::Create(w.chat->parse, r.parallel_tool_calls);
      if (!created.ok()) {
        writer_.Send(ErrorEvent{id, created.status().code(), created.status().message()});
        Finished(id);
        return;
      }
      parser = std::move(created).value();
    }
    Status st = engine_->Start(
        r, w.chat.get(), flag,
        [this, id, parser](std::string_view text, std::vector<TokenLogprob> logprobs) {
          ChatDelta d;
          if (parser) d = parser->Add(text);
          else d.content = text;
          SendPiece(id, std::move(d), std::move(logprobs));
          return !(parser && parser->Complete());  // its one call is whole: the answer ends
        },
        [this, id, parser](Result<DoneEvent> done) {
          if (done.ok() && parser) SendPiece(id, parser->Finish(done->done_reason == "length"), {});
          if (done.ok()) writer_.Send(std::move(done).value());
          else writer_.Send(ErrorEvent{id, done.status().code(), done.status().message()});
          Finished(id);
        });
    // A prefix restored from the prompt cache (or an entry found broken) is told before the answer.
    if (PromptCacheReport report = engine_->TakePromptCacheReport(); !report.empty()) writer_.Send(report);
    if (!st.ok()) {
      writer_.Send(ErrorEvent{id, st.code(), st.message()});
      Finished(id);
    }
  }

  void Handle(const EmbedRequest& r, const Flag& flag) {
    Beat("embedding");
    auto result = engine_->Embed(r, *flag);
    if (result.ok()) writer_.Send(std::move(result).value());
    else writer_.Send(ErrorEvent{r.id, result.status().code(), result.status().message()});
    Finished(r.id);
  }

  void Handle(const SavePromptRequest& r, const Flag&) {
    Beat("saving the prompt cache");
    PromptCacheReport report = engine_->SavePromptCache();
    report.id = r.id;
    writer_.Send(report);
    Finished(r.id);
  }

  void Handle(const TokenizeRequest& r, const Flag&) {
    Beat("tokenizing");
    auto tokens = engine_->Tokenize(r.text, r.add_special);
    if (tokens.ok()) writer_.Send(TokenizeResult{r.id, std::move(tokens).value()});
    else writer_.Send(ErrorEvent{r.id, tokens.status().code(), tokens.status().message()});
    Finished(r.id);
  }

  void Handle(const SleepRequest& r, const Flag&) {
    // The idle slots' prompt prefixes go to the prompt cache first (issue 13: the prompt survives
    // a sleep as it survives an unload), so the first request after the wake restores its prefix.
    Beat("saving the prompt cache (sleep)");
    PromptCacheReport saved = engine_->SavePromptCache();
    if (!saved.empty()) writer_.Send(saved);  // id 0: unasked, counted and logged by the server
    Beat("giving the context's memory back (sleep)");
    engine_->Sleep();
    // What llama.cpp freed goes back to the system now, not at the allocator's leisure.
    if (!engine_->slept_in_place()) ::malloc_trim(0);
    const pid_t self = getpid();
    writer_.Send(SleepResult{r.id, ProcessRssBytes(self), ProcessRssAnonBytes(self), 0, engine_->slept_in_place()});
    Finished(r.id);
  }

  void Handle(const WakeRequest& r, const Flag&) {
    // Creating a context allocates and clears its buffers, with no progress point inside (no
    // abort callback) and nothing that can loop: on a machine short of memory it may take longer
    // than the health timeout, as a load may (loads have their own stall timer), so it does not
    // count as a stall.
    doing_.store("creating the context again (wake)", std::memory_order_relaxed);
    beat_.store(0, std::memory_order_relaxed);
    const int64_t start = NowNs();
    Status st = engine_->Wake();
    if (st.ok()) writer_.Send(WakeResult{r.id, NowNs() - start, ProcessRssBytes(getpid())});
    else writer_.Send(ErrorEvent{r.id, st.code(), st.message()});
    Finished(r.id);
  }

  FrameReader reader_;
  Writer writer_;
  std::unique_ptr<Engine> engine_;  // used by the worker thread only
  CpuShare* share_;
  std::unique_ptr<TemplateSandbox> sandbox_;  // used by the render thread only

  std::atomic<int64_t> beat_{0};              // the worker's latest progress (steady ns); 0: idle
  std::atomic<const char*> doing_{""};        // what the worker does since then (a literal)

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable render_cv_;
  std::deque<Work> queue_;                  // guarded by mu_
  std::deque<GenerateRequest> render_queue_;  // guarded by mu_: chat requests not yet rendered
  uint64_t rendering_id_ = 0;               // guarded by mu_: the request being rendered
  Flag rendering_flag_;                     // guarded by mu_: its cancel flag (null: none)
  std::map<uint64_t, Flag> running_;        // guarded by mu_: admitted work -> its cancel flag
  bool stopping_ = false;                   // guarded by mu_
};

// An allocation failed under the address-space limit of the memory cap (see ConfineMemory).
void OnOutOfCap() {
  static const char kMessage[] = "runner: an allocation failed: the runner reached its memory cap\n";
  (void)!::write(2, kMessage, sizeof kMessage - 1);
  std::_Exit(kExitMemoryCap);
}

// On a machine without a GPU backend, the loaded runner limits its own address space to what its
// memory cap allows (runner_limits.h), so that one huge allocation fails at once, and exits with
// kExitMemoryCap when one does. Only the soft limit: the template sandbox sets its own.
void ConfineMemory(const LoadRequest& load, const ModelFacts& facts) {
  if (!kAddressSpaceLimits || load.predicted_bytes == 0 || Engine::HasGpuBackend()) return;
  const MemoryCap cap =
      CapOnceLoaded(load.predicted_bytes, facts.rss_bytes, facts.n_batch, facts.n_vocab, load.memory_margin_bytes);
  const uint64_t limit = AddressSpaceLimit(ProcessVmBytes(getpid()), ProcessRssBytes(getpid()), cap);
  rlimit r{};
  if (limit == 0 || ::getrlimit(RLIMIT_AS, &r) != 0) return;
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur <= limit) return;  // a lower limit is set already
  r.rlim_cur = limit;
  if (r.rlim_max != RLIM_INFINITY && r.rlim_cur > r.rlim_max) r.rlim_cur = r.rlim_max;
  if (::setrlimit(RLIMIT_AS, &r) == 0) std::set_new_handler(OnOutOfCap);
}

}  // namespace

int RunnerMain(int fd, int cpu_share_fd) {
  // Two malloc arenas at most: each one reserves 64 MiB of address space, and a runner's threads
  // (reader, worker, renderer, the CPU backend's pool) allocate little, so more only make its
  // address space, and the limit ConfineMemory sets, harder to predict.
  ::mallopt(M_ARENA_MAX, 2);
  // Before the load request (a spare runner does this while idle), unless a GPU is in use: CUDA
  // must start after the load request chose the one device the runner sees.
  if (std::getenv("RESIDENT_RUNNER_DEFER_BACKENDS") == nullptr) Engine::PrepareBackends();
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
  const ModelFacts facts = (*engine)->facts();
  RenderLimits render;
  render.timeout = std::chrono::milliseconds(load->template_timeout_ms);
  render.max_output_bytes = MaxRenderedBytes(facts.n_ctx);
  auto sandbox = std::make_unique<TemplateSandbox>(SelfExecutable(), (*engine)->chat_template(), load->model_name, render);
  ConfineMemory(*load, facts);
  if (PromptCacheReport report = (*engine)->TakePromptCacheReport(); !report.empty()) writer.Send(report);
  writer.Send(LoadedEvent{facts});
  CpuShare& share = CpuShare::ForRunner(cpu_share_fd);
  (*engine)->ShareCores(&share);
  Server server(fd, std::move(engine).value(), &share, std::move(sandbox));
  int code = server.Run();
  // Freeing a multi-GB model page by page is slow; the kernel takes it all back at exit.
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace resident::runner
