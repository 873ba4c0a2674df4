// Engine: one loaded model and its context, inside a runner process. The only class that calls
// llama.cpp. Not thread-safe: the runner drives it from one worker thread, except Cancel flags.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runner/protocol.h"

struct llama_model;
struct llama_context;
struct llama_vocab;

namespace resident::runner {

class Engine {
 public:
  // Loads llama.cpp's backends (the CPU variant for this machine, any GPU one). Idempotent;
  // Load calls it too. A spare runner calls it before it has a model, so that a later load
  // does not pay for it.
  static void PrepareBackends();

  // Loads the model and creates its context. progress(0..1) is called during the load; returning
  // false from it aborts the load. Errors: kNotFound for a missing file, kInvalidArgument for a
  // file llama.cpp cannot read (not GGUF, truncated, unknown architecture), kResourceExhausted
  // when the context cannot be allocated.
  static Result<std::unique_ptr<Engine>> Load(const LoadRequest& request,
                                               const std::function<bool(float)>& progress);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelFacts& facts() const { return facts_; }

  // Generates text. on_text receives whole UTF-8 characters, never text of a stop sequence.
  // Returns the final statistics, or kCancelled when *cancel became true (checked before every
  // token and inside llama_decode), kInvalidArgument for a prompt that does not fit the context.
  Result<DoneEvent> Generate(const GenerateRequest& request,
                             const std::function<void(std::string_view)>& on_text,
                             const std::atomic<bool>& cancel);

  // One mean-pooled embedding per input (L2-normalized when asked).
  Result<EmbedResult> Embed(const EmbedRequest& request, const std::atomic<bool>& cancel);

  Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special) const;

  // Renders chat messages with the model's template, ready for the assistant's turn.
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages);

 private:
  Engine() = default;
  Status DecodePrompt(const std::vector<int32_t>& tokens, const std::atomic<bool>& cancel);
  std::string TokenText(int32_t token) const;

  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  ModelFacts facts_;
  int32_t n_batch_ = 512;
  std::vector<int32_t> cached_;  // tokens whose KV entries are in the context (sequence 0)
  const std::atomic<bool>* abort_flag_ = nullptr;
  std::unique_ptr<class ChatTemplate> chat_template_;
};

// Text helpers with no llama.cpp dependency, exposed for tests.
// Length of the longest prefix of `text` that does not end inside a UTF-8 character.
size_t CompleteUtf8Prefix(std::string_view text);
// Where `held` may be cut for emission given the stop strings: returns {emit_len, stopped}.
// When a stop string occurs, emit_len is its position and stopped is true; otherwise emit_len
// excludes the longest suffix that could still begin a stop string.
std::pair<size_t, bool> StopScan(std::string_view held, const std::vector<std::string>& stop);

}  // namespace resident::runner
