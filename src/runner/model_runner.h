// ModelRunner: a loaded model as the scheduler and the API see it. The real one is a child
// process (RunnerProcess); tests use fakes. Every call is thread-safe; calls block.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runner/protocol.h"

namespace resident::runner {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  // Streams generated text to on_text; when on_text returns false, or `stop` is requested (the
  // client went away; also while the prompt is processed, before any text), the generation is
  // cancelled (within one token or batch) and the call returns kCancelled. kUnavailable when the
  // runner died.
  virtual Result<DoneEvent> Generate(const GenerateRequest& request,
                                     const std::function<bool(std::string_view)>& on_text, std::stop_token stop) = 0;
  // The same, with every TokenEvent whole: a chat's thinking and tool calls, the tokens'
  // log-probabilities. By default the text alone, through Generate.
  virtual Result<DoneEvent> GenerateEvents(const GenerateRequest& request,
                                           const std::function<bool(const TokenEvent&)>& on_event,
                                           std::stop_token stop) {
    return Generate(
        request, [&](std::string_view text) { return on_event(TokenEvent{request.id, std::string(text)}); }, stop);
  }
  // Embeds every input. `stop` cancels it between inputs and batches: kCancelled.
  virtual Result<EmbedResult> Embed(const EmbedRequest& request, std::stop_token stop) = 0;
  virtual Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special) = 0;
  // The runner's measured memory right now.
  virtual Result<MemoryResult> Memory() = 0;
  // Answers within `timeout` or fails with kDeadlineExceeded / kUnavailable.
  virtual Status Health(std::chrono::milliseconds timeout) = 0;
  // The runner's resident memory at its watchdog's latest sample, without asking it (0: not
  // sampled). The scheduler counts it against the memory budget when it is more than the
  // measured figure.
  virtual uint64_t SampledRssBytes() const { return 0; }

  virtual const ModelFacts& facts() const = 0;
  virtual pid_t pid() const = 0;
  virtual bool alive() const = 0;
  // Once !alive(): why the runner is gone, as its failed requests say it ("the runner for
  // m:latest (pid 12) stopped answering (no health answer in 20 s) and was killed"); "" while it
  // lives or when not known.
  virtual std::string exit_reason() const { return {}; }
  // Stops the runner and waits until its process is gone (its memory returned). Idempotent.
  virtual void Close() = 0;
  // Saves the prompt cache now (runner/prompt_cache.h): the idle slots' prompt prefixes, after the
  // requests the runner has already taken. Close does it itself before an unload; a caller that
  // frees the context another way (a sleep) calls it first. Ok with nothing done when the cache is
  // off. Errors: kUnavailable when the runner is gone, kDeadlineExceeded when it took longer than
  // `timeout` (the runner goes on saving).
  virtual Status SavePromptCache(std::chrono::milliseconds timeout) {
    (void)timeout;
    return Status::Ok();
  }

  // Sleeping (sleep_after). Sleep frees the model's context (KV cache, compute buffers), keeping
  // the process, the model and its weights' mapping, and answers the memory it holds once asleep.
  // Wake creates the context again with the load's parameters: its KV cache is new (no cached
  // prompt survives). Call only while no request runs on it (the scheduler holds no lease);
  // a request sent to a sleeping runner wakes it first. Errors: kUnavailable when the runner died,
  // kResourceExhausted when the context cannot be created again, kInternal from a runner that
  // cannot sleep (this default).
  virtual Result<SleepResult> Sleep() { return Status::Internal("this runner cannot sleep"); }
  virtual Result<WakeResult> Wake() { return Status::Internal("this runner cannot sleep"); }
};

// Starts runners. progress(0..1) reports load progress.
class RunnerFactory {
 public:
  virtual ~RunnerFactory() = default;
  virtual Result<std::unique_ptr<ModelRunner>> Start(const LoadRequest& request,
                                                     const std::function<void(float)>& progress) = 0;
};

}  // namespace resident::runner
