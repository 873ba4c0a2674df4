// The template sandbox: a child process of the runner (`resident runner --template-sandbox
// --fd 3`) that renders chat templates. Jinja as llama.cpp runs it has no bound of its own, so a
// template can loop for ever, grow a string until memory runs out, or recurse until the stack
// overflows; in the sandbox that costs the child only, and the request fails with a 400 naming
// the bound it hit:
// - time: a render has a deadline (RenderLimits::timeout, the health timeout); past it the
//   child is killed. Loop iterations are bounded by this.
// - memory: before each render the child limits its address space (RLIMIT_AS) to what it has
//   plus RenderMemoryBudget(input bytes); the first allocation that fails there ends it. The
//   runner also samples its resident memory every 50 ms against the same budget.
// - recursion: a stack overflow of its render thread (kRenderStackBytes) is caught on an
//   alternate signal stack and reported as such.
// - output: a rendered chat longer than any tokenization could fit in the context
//   (RenderLimits::max_output_bytes) is refused before the runner tokenizes it.
// A killed or dead child is replaced at the next render. It dies with the runner
// (PR_SET_PDEATHSIG) and holds none of the runner's descriptors.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "runner/chat_template.h"
#include "runner/protocol.h"

namespace resident::runner {

inline constexpr size_t kRenderStackBytes = 8u << 20;  // a thread's default stack, as the runner's worker had
// Bytes a rendered chat may take per token of the context (tokens of a few bytes are the rule;
// a run of spaces or dashes makes one of tens).
inline constexpr uint64_t kMaxRenderedBytesPerToken = 64;

// The memory a render may allocate: 256 MiB plus 16 bytes per byte of its input (the template's
// source and the messages), which llama.cpp copies into JSON and Jinja values a few times.
uint64_t RenderMemoryBudget(uint64_t input_bytes);
// The longest rendered chat a context of n_ctx tokens could hold (1 MiB at least).
uint64_t MaxRenderedBytes(int32_t n_ctx);

struct RenderLimits {
  std::chrono::milliseconds timeout{20000};
  uint64_t max_output_bytes = 0;  // 0: none
};

class TemplateSandbox {
 public:
  // `executable`: the resident binary; `model_name`: how messages name the model ("t1:latest").
  TemplateSandbox(std::string executable, ChatTemplateSource source, std::string model_name, RenderLimits limits);
  ~TemplateSandbox();  // kills the child
  TemplateSandbox(const TemplateSandbox&) = delete;
  TemplateSandbox& operator=(const TemplateSandbox&) = delete;

  // Renders the messages followed by the assistant's turn, with the tools and thinking of
  // `options` (chat_template.h). Errors: kInvalidArgument when the template fails or hits a
  // bound (the message names the bound, the model and what to fix); kCancelled once *cancel is
  // true (the child is killed); kInternal when no child can start. One caller at a time.
  Result<RenderedChat> Render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& options,
                              const std::atomic<bool>* cancel);
  Result<std::string> Render(const std::vector<ChatMessage>& messages, const std::atomic<bool>* cancel);

  // The child now (-1: none). Any thread.
  pid_t pid() const { return pid_.load(); }

 private:
  Status Start();
  // Kills the child (when there is one) and reaps it; returns its wait status.
  int Stop();
  Status Fail(const std::string& what) const;

  const std::string executable_;
  const ChatTemplateSource source_;
  const std::string model_name_;
  const RenderLimits limits_;
  std::atomic<pid_t> pid_{-1};
  int fd_ = -1;
  uint64_t rss_at_start_ = 0;  // the child's resident memory once started
};

// The child's main: renders what arrives on `fd` until it closes. Returns the exit code.
int TemplateSandboxMain(int fd);

}  // namespace resident::runner
