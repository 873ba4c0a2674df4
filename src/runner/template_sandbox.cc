#include "runner/template_sandbox.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <optional>

#include "core/bytes.h"
#include "core/system_info.h"
#include "runner/runner_limits.h"

namespace resident::runner {

uint64_t RenderMemoryBudget(uint64_t input_bytes) { return (256ull << 20) + 16 * input_bytes; }

uint64_t MaxRenderedBytes(int32_t n_ctx) {
  return std::max<uint64_t>(1u << 20, kMaxRenderedBytesPerToken * static_cast<uint64_t>(std::max(0, n_ctx)));
}

namespace {

using Clock = std::chrono::steady_clock;

// ---- the wire between the runner and its sandbox -------------------------------------------
// A frame is a 4-byte little-endian length and a payload whose first byte says what it is.
// runner -> sandbox: kRender, then the template (text, bos, eos, add_bos, add_eos, overridden),
//   the memory budget, the output limit, the messages (role, content, thinking, tool_name,
//   tool_call_id, the tool calls: id, name, arguments), the tools (name, description,
//   parameters), tool_choice, parallel_tool_calls, think and think_level.
// sandbox -> runner: kReady once started; per render one of kText (the rendered chat: prompt,
//   grammar, grammar_lazy, trigger patterns, preserved tokens, additional stops, and the parse
//   spec: format, generation prompt, parser, tools, thinking), kError (the template's own
//   error), kTooLong (the output's size), kNoMemory, kStackOverflow. The last two are written
//   from a failed allocation or a signal handler, after which the sandbox exits.
enum : char { kRender = 'R', kReady = 'r', kText = 'T', kError = 'E', kTooLong = 'L', kNoMemory = 'M', kStackOverflow = 'S' };

constexpr size_t kMaxRequestBytes = 256u << 20;
constexpr size_t kMaxRenderExtraBytes = 64u << 20;  // grammar, parser and the rest beside the prompt
constexpr std::chrono::seconds kStartTimeout{30};  // exec and dynamic linking, on a busy machine
constexpr std::chrono::milliseconds kCancelPoll{50};

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutString(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}
void PutStrings(std::string& out, const std::vector<std::string>& v) {
  PutU32(out, static_cast<uint32_t>(v.size()));
  for (const std::string& s : v) PutString(out, s);
}
std::string Frame(std::string payload) {
  std::string out;
  PutU32(out, static_cast<uint32_t>(payload.size()));
  return out + payload;
}

// Reads a payload's fields in order; any short read leaves ok false.
struct Cursor {
  std::string_view in;
  bool ok = true;
  uint64_t Bytes(int n) {
    if (in.size() < static_cast<size_t>(n)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[static_cast<size_t>(i)])) << (8 * i);
    in.remove_prefix(static_cast<size_t>(n));
    return v;
  }
  uint32_t U32() { return static_cast<uint32_t>(Bytes(4)); }
  uint64_t U64() { return Bytes(8); }
  bool Bool() { return Bytes(1) != 0; }
  std::string String() {
    uint32_t n = U32();
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  // A count of items that take at least `min_bytes` each: more than the rest could hold is malformed.
  uint32_t Count(size_t min_bytes) {
    uint32_t n = U32();
    if (ok && static_cast<uint64_t>(n) * min_bytes > in.size()) ok = false;
    return ok ? n : 0;
  }
  std::vector<std::string> Strings() {
    std::vector<std::string> v(Count(4));
    for (std::string& s : v) s = String();
    return v;
  }
};

// The request's fields after the budget and the output limit.
void PutRenderInput(std::string& out, const std::vector<ChatMessage>& messages, const ChatRenderOptions& o) {
  PutU32(out, static_cast<uint32_t>(messages.size()));
  for (const ChatMessage& m : messages) {
    PutString(out, m.role);
    PutString(out, m.content);
    PutString(out, m.thinking);
    PutString(out, m.tool_name);
    PutString(out, m.tool_call_id);
    PutU32(out, static_cast<uint32_t>(m.tool_calls.size()));
    for (const ToolCall& c : m.tool_calls) {
      PutString(out, c.id);
      PutString(out, c.name);
      PutString(out, c.arguments);
    }
  }
  PutU32(out, static_cast<uint32_t>(o.tools.size()));
  for (const ToolDefinition& t : o.tools) {
    PutString(out, t.name);
    PutString(out, t.description);
    PutString(out, t.parameters);
  }
  PutU32(out, static_cast<uint32_t>(o.tool_choice));
  out.push_back(o.parallel_tool_calls ? 1 : 0);
  PutU32(out, static_cast<uint32_t>(static_cast<int32_t>(o.think) + 1));
  PutString(out, o.think_level);
}

bool ReadRenderInput(Cursor& in, std::vector<ChatMessage>* messages, ChatRenderOptions* o) {
  const uint32_t n = in.Count(24);
  for (uint32_t i = 0; i < n && in.ok; ++i) {
    ChatMessage m;
    m.role = in.String();
    m.content = in.String();
    m.thinking = in.String();
    m.tool_name = in.String();
    m.tool_call_id = in.String();
    const uint32_t calls = in.Count(12);
    for (uint32_t k = 0; k < calls && in.ok; ++k) {
      ToolCall c;
      c.id = in.String();
      c.name = in.String();
      c.arguments = in.String();
      m.tool_calls.push_back(std::move(c));
    }
    messages->push_back(std::move(m));
  }
  const uint32_t tools = in.Count(12);
  for (uint32_t i = 0; i < tools && in.ok; ++i) {
    ToolDefinition t;
    t.name = in.String();
    t.description = in.String();
    t.parameters = in.String();
    o->tools.push_back(std::move(t));
  }
  const uint32_t choice = in.U32();
  if (choice > static_cast<uint32_t>(ToolChoice::kRequired)) in.ok = false;
  o->tool_choice = static_cast<ToolChoice>(choice);
  o->parallel_tool_calls = in.Bool();
  const uint32_t think = in.U32();
  if (think > 2) in.ok = false;
  o->think = static_cast<Think>(static_cast<int32_t>(think) - 1);
  o->think_level = in.String();
  return in.ok;
}

void PutRendered(std::string& out, const RenderedChat& r) {
  PutString(out, r.prompt);
  PutString(out, r.grammar);
  out.push_back(r.grammar_lazy ? 1 : 0);
  PutStrings(out, r.trigger_patterns);
  PutStrings(out, r.preserved_tokens);
  PutStrings(out, r.additional_stops);
  PutU32(out, static_cast<uint32_t>(r.parse.format));
  PutString(out, r.parse.generation_prompt);
  PutString(out, r.parse.parser);
  out.push_back(r.parse.tools ? 1 : 0);
  out.push_back(r.parse.thinking ? 1 : 0);
}

bool ReadRendered(Cursor& in, RenderedChat* r) {
  r->prompt = in.String();
  r->grammar = in.String();
  r->grammar_lazy = in.Bool();
  r->trigger_patterns = in.Strings();
  r->preserved_tokens = in.Strings();
  r->additional_stops = in.Strings();
  r->parse.format = static_cast<int32_t>(in.U32());
  r->parse.generation_prompt = in.String();
  r->parse.parser = in.String();
  r->parse.tools = in.Bool();
  r->parse.thinking = in.Bool();
  return in.ok;
}

// Everything a render reads, in bytes: what its memory budget scales with.
uint64_t RenderInputBytes(const std::string& source, const std::vector<ChatMessage>& messages,
                          const ChatRenderOptions& o) {
  uint64_t n = source.size() + o.think_level.size();
  for (const ChatMessage& m : messages) {
    n += m.role.size() + m.content.size() + m.thinking.size() + m.tool_name.size() + m.tool_call_id.size();
    for (const ToolCall& c : m.tool_calls) n += c.id.size() + c.name.size() + c.arguments.size();
  }
  for (const ToolDefinition& t : o.tools) n += t.name.size() + t.description.size() + t.parameters.size();
  return n;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// One frame's payload; nullopt at end of stream, on a read error or a frame over `max_bytes`.
std::optional<std::string> ReadPayload(int fd, size_t max_bytes) {
  unsigned char len[4];
  if (!ReadAll(fd, reinterpret_cast<char*>(len), 4)) return std::nullopt;
  const size_t n = static_cast<size_t>(len[0]) | static_cast<size_t>(len[1]) << 8 | static_cast<size_t>(len[2]) << 16 |
                   static_cast<size_t>(len[3]) << 24;
  if (n == 0 || n > max_bytes) return std::nullopt;
  std::string payload(n, '\0');
  if (!ReadAll(fd, payload.data(), n)) return std::nullopt;
  return payload;
}

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// ---- the sandbox process --------------------------------------------------------------------

int g_fd = -1;
// The render thread's stack while it renders (0: none), for the fault handler.
std::atomic<uintptr_t> g_stack_lo{0}, g_stack_hi{0};
constexpr uintptr_t kBelowStack = 1u << 20;  // a frame that overflows may land this far below it

// Written as they are from a failed allocation or a signal handler (write(2) is async-signal-safe).
constexpr char kNoMemoryFrame[] = {1, 0, 0, 0, kNoMemory};
constexpr char kStackFrame[] = {1, 0, 0, 0, kStackOverflow};

void WriteRaw(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(g_fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// operator new found no memory under the render's address-space limit: unwinding through the
// template engine would allocate again, so the sandbox says so and leaves at once.
void OnNoMemory() {
  WriteRaw(kNoMemoryFrame, sizeof kNoMemoryFrame);
  ::_exit(0);
}

void OnFault(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t lo = g_stack_lo.load(), hi = g_stack_hi.load();
  if (lo != 0 && addr < hi && addr + kBelowStack >= lo) {
    WriteRaw(kStackFrame, sizeof kStackFrame);
    ::_exit(0);
  }
  ::signal(sig, SIG_DFL);  // another fault: returning re-executes it and the default action kills
}

uint64_t VmBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long pages = 0;
  int n = std::fscanf(f, "%llu", &pages);
  std::fclose(f);
  return n == 1 ? pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

struct RenderJob {
  ChatTemplateSource source;
  uint64_t max_output = 0;
  std::vector<ChatMessage> messages;
  ChatRenderOptions options;
  // The template parsed for `source` (kept across renders), or the parse error.
  std::unique_ptr<ChatTemplate>* cached = nullptr;
  ChatTemplateSource* cached_source = nullptr;
  Status* cached_error = nullptr;
  std::string answer;  // a whole frame
};

alignas(16) char g_alt_stack[64 << 10];

void* RenderThread(void* arg) {
  auto* job = static_cast<RenderJob*>(arg);
  stack_t ss{};
  ss.ss_sp = g_alt_stack;
  ss.ss_size = sizeof g_alt_stack;
  ::sigaltstack(&ss, nullptr);
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      g_stack_lo = reinterpret_cast<uintptr_t>(addr);
      g_stack_hi = reinterpret_cast<uintptr_t>(addr) + size;
    }
    pthread_attr_destroy(&attr);
  }
  const ChatTemplateSource& s = job->source;
  const ChatTemplateSource& c = *job->cached_source;
  const bool parsed = *job->cached != nullptr || !job->cached_error->ok();
  if (!parsed || c.text != s.text || c.bos != s.bos || c.eos != s.eos || c.add_bos != s.add_bos ||
      c.add_eos != s.add_eos || c.overridden != s.overridden) {
    job->cached->reset();
    *job->cached_error = Status::Ok();
    *job->cached_source = s;
    auto created = ChatTemplate::Create(s);  // llama.cpp renders it here already, probing what it supports
    if (created.ok()) *job->cached = std::move(created).value();
    else *job->cached_error = created.status();
  }
  std::string payload;
  if (!job->cached_error->ok()) {
    payload.push_back(kError);
    PutString(payload, job->cached_error->message());
  } else if (auto chat = (*job->cached)->Render(job->messages, job->options); !chat.ok()) {
    payload.push_back(kError);
    PutString(payload, chat.status().message());
  } else if (job->max_output > 0 && chat->prompt.size() > job->max_output) {
    payload.push_back(kTooLong);
    PutU64(payload, chat->prompt.size());
  } else {
    payload.push_back(kText);
    PutRendered(payload, *chat);
  }
  job->answer = Frame(std::move(payload));
  g_stack_lo = 0;
  g_stack_hi = 0;
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  return nullptr;
}

}  // namespace

int TemplateSandboxMain(int fd) {
  g_fd = fd;
  ::mallopt(M_ARENA_MAX, 1);  // the render thread allocates from the main arena: no 64 MiB reservation of its own
  std::set_new_handler(OnNoMemory);
  struct sigaction sa {};
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGSEGV, &sa, nullptr);
  ::sigaction(SIGBUS, &sa, nullptr);
  rlimit base{};
  ::getrlimit(RLIMIT_AS, &base);

  const std::string ready = Frame(std::string(1, kReady));
  if (!WriteAll(fd, ready.data(), ready.size())) return 0;
  std::unique_ptr<ChatTemplate> cached;
  ChatTemplateSource cached_source;
  Status cached_error;
  while (true) {
    auto payload = ReadPayload(fd, kMaxRequestBytes);
    if (!payload) return 0;  // the runner closed the socket (or is gone)
    Cursor in{*payload};
    if (in.Bytes(1) != static_cast<uint64_t>(kRender)) return 2;
    RenderJob job;
    job.source.text = in.String();
    job.source.bos = in.String();
    job.source.eos = in.String();
    job.source.add_bos = in.Bool();
    job.source.add_eos = in.Bool();
    job.source.overridden = in.Bool();
    const uint64_t budget = in.U64();
    job.max_output = in.U64();
    if (!ReadRenderInput(in, &job.messages, &job.options)) return 2;
    job.cached = &cached;
    job.cached_source = &cached_source;
    job.cached_error = &cached_error;

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kRenderStackBytes);
    pthread_attr_setguardsize(&attr, 64u << 10);
    pthread_t thread;
    // The limit covers parsing the template too (llama.cpp renders it while probing it), and the
    // thread's stack, mapped by pthread_create under it.
    rlimit limit = base;
    const uint64_t want = VmBytes() + kRenderStackBytes + budget;
    if (base.rlim_cur == RLIM_INFINITY || want < base.rlim_cur) limit.rlim_cur = want;
    if (kAddressSpaceLimits) ::setrlimit(RLIMIT_AS, &limit);
    const int rc = pthread_create(&thread, &attr, RenderThread, &job);
    pthread_attr_destroy(&attr);
    if (rc == 0) pthread_join(thread, nullptr);
    if (kAddressSpaceLimits) ::setrlimit(RLIMIT_AS, &base);
    if (rc != 0) OnNoMemory();  // no room even for the thread's stack
    ::malloc_trim(0);
    if (!WriteAll(fd, job.answer.data(), job.answer.size())) return 0;
  }
}

// ---- the runner's side ----------------------------------------------------------------------

TemplateSandbox::TemplateSandbox(std::string executable, ChatTemplateSource source, std::string model_name,
                                 RenderLimits limits)
    : executable_(std::move(executable)),
      source_(std::move(source)),
      model_name_(std::move(model_name)),
      limits_(limits) {}

TemplateSandbox::~TemplateSandbox() { Stop(); }

Status TemplateSandbox::Start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::Internal(std::string("cannot start the chat template renderer: socketpair: ") + std::strerror(errno));
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  const char* argv[] = {executable_.c_str(), "runner", "--template-sandbox", "--fd", "3", nullptr};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    return Status::Internal(std::string("cannot start the chat template renderer: fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    int sock = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);  // out of the way, then onto 3 (without CLOEXEC)
    ::dup2(sock, 3);
    ::syscall(SYS_close_range, 4u, ~0u, 0u);  // none of the runner's descriptors (its server socket)
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(sv[1]);
  fd_ = sv[0];
  pid_ = pid;
  rss_at_start_ = 0;
  pollfd pfd{fd_, POLLIN, 0};
  int pr = 0;
  do {
    pr = ::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kStartTimeout).count()));
  } while (pr < 0 && errno == EINTR);
  auto ready = pr > 0 ? ReadPayload(fd_, 16) : std::nullopt;
  if (!ready || *ready != std::string(1, kReady)) {
    int status = Stop();
    return Status::Internal("cannot start the chat template renderer (" +
                            std::string(pr == 0 ? "it did not start in time"
                                        : WIFEXITED(status) ? "it exited with code " + std::to_string(WEXITSTATUS(status))
                                                            : "it died") +
                            ")");
  }
  rss_at_start_ = ProcessRssBytes(pid);
  return Status::Ok();
}

int TemplateSandbox::Stop() {
  const pid_t pid = pid_.exchange(-1);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (pid <= 0) return 0;
  ::kill(pid, SIGKILL);  // not reaped yet: still our child, whatever it did
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

Status TemplateSandbox::Fail(const std::string& what) const {
  std::string subject = model_name_.empty() ? "the model's chat template" : "the chat template of " + model_name_;
  if (!source_.overridden) subject += " (from its GGUF)";
  const char* fix = source_.overridden ? "fix its TEMPLATE" : "set a TEMPLATE in a Modelfile to replace it";
  return Status::InvalidArgument(subject + " " + what + "; " + fix);
}

Result<std::string> TemplateSandbox::Render(const std::vector<ChatMessage>& messages, const std::atomic<bool>* cancel) {
  auto chat = Render(messages, ChatRenderOptions{}, cancel);
  if (!chat.ok()) return chat.status();
  return std::move(chat->prompt);
}

Result<RenderedChat> TemplateSandbox::Render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& options,
                                             const std::atomic<bool>* cancel) {
  const uint64_t budget = RenderMemoryBudget(RenderInputBytes(source_.text, messages, options));
  std::string payload(1, kRender);
  PutString(payload, source_.text);
  PutString(payload, source_.bos);
  PutString(payload, source_.eos);
  payload.push_back(source_.add_bos ? 1 : 0);
  payload.push_back(source_.add_eos ? 1 : 0);
  payload.push_back(source_.overridden ? 1 : 0);
  PutU64(payload, budget);
  PutU64(payload, limits_.max_output_bytes);
  PutRenderInput(payload, messages, options);
  if (payload.size() > kMaxRequestBytes) return Status::InvalidArgument("the chat messages are too large to render");
  const std::string frame = Frame(std::move(payload));

  // A child that died since the last render (or was never started) is started now; one whose
  // socket fails at the write died in between and is started once more.
  // The sampled bound counts what this render adds to the idle sandbox: what earlier renders left
  // (a sanitizer's quarantine keeps freed memory) is not this template's.
  bool sent = false;
  uint64_t rss_before = 0;
  for (int attempt = 0; attempt < 2 && !sent; ++attempt) {
    if (pid_ < 0) RESIDENT_RETURN_IF_ERROR(Start());
    rss_before = std::max(rss_at_start_, ProcessRssBytes(pid_));
    sent = WriteAll(fd_, frame.data(), frame.size());
    if (!sent) Stop();
  }
  if (!sent) return Status::Internal("the chat template renderer stopped before it could render");

  const auto deadline = Clock::now() + limits_.timeout;
  while (true) {
    if (cancel != nullptr && cancel->load()) {
      Stop();
      return Status::Cancelled("request cancelled");
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (limits_.timeout.count() > 0 && left.count() <= 0) {
      Stop();
      return Fail("did not finish rendering within " + Seconds(limits_.timeout) + " (a loop that does not end?)");
    }
    // The same bound, sampled: it holds where the sandbox cannot limit its address space (under
    // a sanitizer) and against memory allocated other than by operator new.
    if (ProcessRssBytes(pid_) > rss_before + kRenderStackBytes + budget) {
      Stop();
      return Fail("needed more than " + FormatBytes(budget) +
                  " of memory while rendering (a string or a loop that grows without bound?)");
    }
    pollfd pfd{fd_, POLLIN, 0};
    const auto wait = limits_.timeout.count() > 0 ? std::min(left, kCancelPoll) : kCancelPoll;
    int pr = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(1, wait.count())));
    if (pr > 0) break;
    if (pr < 0 && errno != EINTR) {
      Stop();
      return Status::Internal(std::string("the chat template renderer: poll: ") + std::strerror(errno));
    }
  }
  // The prompt, and what the chat layer derives from the template and the tools (a grammar
  // and a parser that grow with the tools' schemas, as the request did).
  const size_t max_answer = (limits_.max_output_bytes > 0 ? limits_.max_output_bytes : kMaxRequestBytes) + 64 +
                            kMaxRenderExtraBytes;
  auto answer = ReadPayload(fd_, max_answer);
  if (!answer) {
    const int status = Stop();
    if (WIFSIGNALED(status)) {
      const char* name = strsignal(WTERMSIG(status));
      return Fail("crashed the renderer while rendering (signal " + std::to_string(WTERMSIG(status)) + ", " +
                  (name ? name : "?") + ")");
    }
    return Status::Internal("the chat template renderer stopped while rendering (exit code " +
                            std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  Cursor in{*answer};
  const char kind = static_cast<char>(in.Bytes(1));
  switch (kind) {
    case kText: {
      RenderedChat chat;
      if (ReadRendered(in, &chat)) return chat;
      break;
    }
    case kError: {
      std::string message = in.String();
      if (in.ok) return Status::InvalidArgument(std::move(message));
      break;
    }
    case kTooLong: {
      const uint64_t size = in.U64();
      if (!in.ok) break;
      return Status::InvalidArgument("the chat as rendered by the template is " + FormatBytes(size) +
                                     ", more than a context of this size can hold (" +
                                     FormatBytes(limits_.max_output_bytes) + " at most); shorten the messages or raise num_ctx");
    }
    case kNoMemory:
      Stop();
      return Fail("needed more than " + FormatBytes(budget) +
                  " of memory while rendering (a string or a loop that grows without bound?)");
    case kStackOverflow:
      Stop();
      return Fail("recursed too deeply while rendering (its stack of " + FormatBytes(kRenderStackBytes) + " overflowed)");
    default:
      break;
  }
  Stop();
  return Status::Internal("the chat template renderer answered something malformed");
}

}  // namespace resident::runner
