// Engine: one loaded model and its context, inside a runner process. The only class that calls
// llama.cpp. Not thread-safe: the runner drives it from one worker thread; only the cancel flags
// are set from elsewhere.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "llama.h"
#include "runner/chat_template.h"
#include "runner/prompt_cache.h"
#include "runner/protocol.h"

struct ggml_threadpool;

namespace resident::runner {

class CpuShare;

class Engine {
 public:
  // Loads llama.cpp's backends (the CPU variant for this machine, any GPU one). Idempotent;
  // Load calls it too. A spare runner calls it before it has a model, so that a later load
  // does not pay for it.
  static void PrepareBackends();
  // True when a GPU backend is loaded: its driver reserves address space freely, so the runner
  // must not limit its own (runner_limits.h).
  static bool HasGpuBackend();

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

  // Generation is continuous batching over `slots()` sequences (the load request's n_parallel):
  // Start places a request in a free slot, and every Step decodes one batch holding the next token
  // of each generating slot and a chunk of each new prompt, then samples for each of them.
  // Text, with the log-probabilities of the tokens it came from when the request asked for them.
  // Returns false when the answer is whole by its own format (a chat's one tool call without
  // parallel calls): the slot then finishes as at a stop string.
  using TextSink = std::function<bool(std::string_view, std::vector<TokenLogprob>)>;
  using DoneSink = std::function<void(Result<DoneEvent>)>;

  int slots() const { return static_cast<int>(slots_.size()); }
  int FreeSlots() const;
  bool Busy() const { return FreeSlots() < slots(); }

  // Takes a free slot (the one whose cached tokens share the longest prefix with this prompt).
  // on_text receives whole UTF-8 characters, never text of a stop sequence; on_done is called
  // once, from Step, with the final statistics or kCancelled (once *cancel became true: checked
  // before every token and inside llama_decode), a decode error, or kInternal naming the model
  // when the logits to sample from hold NaN or +infinity (broken weights). Errors that the request itself
  // causes (a prompt that does not fit the context, no FIM tokens, a bad grammar) are returned
  // here and on_done is never called. Precondition: FreeSlots() > 0.
  // `chat` (may be null): what the render of a chat request adds to its sampling: the chat
  // layer's tool-call grammar (lazy, from its triggers on; or from the start, after the
  // generation prompt), the special tokens kept as text (a tool call's markers). The request's
  // own grammar (`format`) wins over the chat layer's.
  Status Start(const GenerateRequest& request, const RenderedChat* chat, std::shared_ptr<const std::atomic<bool>> cancel,
               TextSink on_text, DoneSink on_done);

  // One decode of every busy slot. No-op when nothing is busy.
  void Step();
  // Nothing to do for now: the CPU threads sleep instead of spinning until the next decode.
  void Idle();

  // With the default thread count (the load request's n_threads 0), the cores are split among the
  // runners busy at each decode (see cpu_share.h); `share` outlives the engine.
  void ShareCores(CpuShare* share) { share_ = share; }

  // One mean-pooled embedding per input (L2-normalized when asked). Only while no slot is busy:
  // it uses the whole context and drops every slot's cached prefix. kInternal naming the model
  // when an embedding holds NaN or an infinity (broken weights): never NaN as a result.
  Result<EmbedResult> Embed(const EmbedRequest& request, const std::atomic<bool>& cancel);

  Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special) const;

  // The longest text that can be fewer tokens than the context holds: no token of this model
  // stands for more than max_token_bytes() bytes of text (its longest piece, special tokens
  // included), so a longer text is more than n_ctx tokens without tokenizing it. Constant after
  // Load: any thread may read it.
  uint64_t max_token_bytes() const { return max_token_bytes_; }
  uint64_t MaxFittingBytes() const { return static_cast<uint64_t>(facts_.n_ctx) * max_token_bytes_; }
  // Ok when `bytes` of `what` ("the prompt", "the chat messages") may fit the context. Errors:
  // kInvalidArgument "the prompt is N bytes, more than the context of C tokens can hold (...)".
  Status CheckFits(uint64_t bytes, std::string_view what) const;

  // The chat template to render this model's messages with (the load request's, else the GGUF's,
  // else "chatml") and the token facts rendering needs. Rendering is not the engine's: a request
  // reaches Start with its messages rendered into its prompt (template_sandbox.h).
  const ChatTemplateSource& chat_template() const { return chat_template_; }

  // Sleeping (sleep_after): Sleep gives the context's memory back (KV cache, compute buffers) and
  // keeps the model, its weights' mapping and the thread pool; every slot's cached tokens are gone.
  // Precondition: !Busy(). Two ways, the same to callers:
  // - in place (the load request's may_sleep, once a decode has shown which buffers the context's
  //   graphs use, all of them the CPU backend's): the context stays, its KV cache is emptied, and
  //   the pages of its buffers other than the weights are handed back to the kernel
  //   (MADV_DONTNEED); they come back as zero pages at their next touch, so a wake costs nothing
  //   and a request after it faults in only what it touches. A context whose buffers are not known
  //   yet is freed instead.
  // - freed: llama_free; Wake creates the context again with the load's parameters.
  // Start and Embed wake a sleeping engine themselves. Errors (Wake): kResourceExhausted when the
  // context cannot be created; the engine then stays asleep.
  void Sleep();
  Status Wake();
  bool asleep() const { return asleep_; }
  // Whether the last Sleep kept the context (in place) rather than freeing it.
  bool slept_in_place() const { return asleep_ && ctx_ != nullptr; }

  // Progress (runner_limits.h): while the engine computes, it stores the steady clock's now in
  // nanoseconds here at every decoded graph node, decode and sampled token. `beat` outlives the
  // engine; nullptr: none.
  void SetHeartbeat(std::atomic<int64_t>* beat) { heartbeat_ = beat; }

  // The prompt cache (prompt_cache.h; engine_prompt_cache.cc), on when the load request named a
  // folder. Its key is the model file's identity, the context settings that shape the KV cache
  // (n_ctx, sequences, n_batch, n_ubatch, K/V types, flash attention, KV layout, GPU layers), the
  // engine's thread count and the llama.cpp build and CPU variant in use.
  //
  // Saves the state of every idle slot whose cached tokens are kMinPromptCacheTokens or more (a
  // slot whose tokens another slot's extend, or that the folder holds already, is not written
  // again), with how many of them are canonical (ReusablePrefix), and drops the entries a new one
  // supersedes. Call while no slot is busy: before an unload or a sleep. Never fails: what cannot
  // be saved (a full disk, an entry larger than the folder) is a warning in the report.
  PromptCacheReport SavePromptCache();
  // What the prompt cache did since the last call (entries dropped at load, restores by Start),
  // for the server's counters and log; empty() when nothing.
  PromptCacheReport TakePromptCacheReport() { return std::exchange(prompt_report_, PromptCacheReport{}); }

 private:
  struct Slot;
  Engine();
  Result<std::vector<int32_t>> PromptTokens(const GenerateRequest& request);
  Result<std::unique_ptr<llama_sampler, void (*)(llama_sampler*)>> MakeSampler(const GenerateRequest& request,
                                                                               const RenderedChat* chat) const;
  // The chat layer's grammar as a sampler (lazy or fed the generation prompt); null when none.
  Result<llama_sampler*> ChatGrammar(const RenderedChat& chat) const;
  // Feeds one sampled token to its slot: emits text, and finishes the slot when it stops.
  void Accept(Slot& slot, int32_t token);
  void Finish(Slot& slot, Result<DoneEvent> result);
  std::string TokenText(int32_t token, bool special = false) const;
  // The text a slot emits for a token: special tokens of the chat layer's format as text.
  std::string SlotTokenText(const Slot& slot, int32_t token) const;
  // Sets the threads for the next decode (see ShareCores); `fixed`: the engine's own thread count
  // whatever other runners do (a reproducible request is in the batch).
  void PickThreads(bool fixed = false);

  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  bool asleep_ = false;
  // Sleeping in place (see Sleep): whether the load asked for it, and the host buffers other than
  // the weights that the last decode's graph used (its compute buffer, the KV cache), noted by
  // llama.cpp's eval callback. Emptied before every decode, so that a buffer llama.cpp reallocated
  // is never kept.
  bool may_sleep_ = false;
  std::vector<ggml_backend_buffer_t> graph_buffers_;
  // Sleep frees the context, for its whole life: a graph used a buffer that is not the CPU
  // backend's own (a device's, a GPU backend's pinned host memory), or madvise refused one.
  bool sleep_frees_ = false;
  static bool NoteGraphBuffers(ggml_tensor* t, bool ask, void* engine);
  void NoteBuffer(ggml_backend_buffer_t buffer);
  int DecodeBatch(const llama_batch& batch);
  const llama_vocab* vocab_ = nullptr;
  ModelFacts facts_;
  uint64_t max_token_bytes_ = 1;
  std::string name_;  // how messages name the model: the load request's model_name, else the file's name
  int32_t n_batch_ = 512;
  llama_batch batch_{};  // room for n_batch_ tokens, reused by every step
  std::vector<std::unique_ptr<Slot>> slots_;
  // The cancel flags of the requests in the batch being decoded (llama.cpp's abort callback).
  std::vector<const std::atomic<bool>*> batch_cancel_;
  ChatTemplateSource chat_template_;
  std::atomic<int64_t>* heartbeat_ = nullptr;
  void Beat();
  // llama.cpp's abort callback (data: the engine): a beat, and true when a request in the batch
  // being decoded was cancelled.
  static bool AbortCheck(void* engine);
  ggml_threadpool* threadpool_ = nullptr;  // kept across decodes (the prebuilt ggml has no OpenMP)
  void (*threadpool_free_)(ggml_threadpool*) = nullptr;
  void (*threadpool_pause_)(ggml_threadpool*) = nullptr;
  bool auto_threads_ = true;  // n_threads was 0: physical cores, shared
  int cores_ = 1;
  int threads_now_ = 0;
  CpuShare* share_ = nullptr;

  // The prompt cache (engine_prompt_cache.cc). Load calls OpenPromptCache on another thread while
  // it creates the context (the model is loaded, `cparams` final): it reads the
  // folder's entries for this key and checks the most recently used one, which the first request
  // will most likely restore, on the core the context's creation leaves idle.
  void OpenPromptCache(const LoadRequest& request, const llama_context_params& cparams, std::string backend);
  // Restores into `slot` (free) the saved entry that lets `prompt` keep more than `keep` of its
  // tokens, if there is one and its file is sound. Returns the tokens the prompt keeps from the
  // slot now (`keep` when nothing was restored; 0 when a restore failed after the slot was emptied).
  size_t RestorePromptPrefix(Slot& slot, size_t keep, const std::vector<int32_t>& prompt, bool reproducible);
  std::optional<PromptCacheFolder> prompt_folder_;
  std::vector<PromptCacheEntry> prompt_entries_;  // this key's entries, most recently used first
  std::optional<VerifiedPromptEntry> prompt_checked_;  // checked at load, until the first request
  PromptCacheReport prompt_report_;
  llama_context_params cparams_{};  // the context's parameters, to create it again at a wake
};

// The llama.cpp build and backends in use, for the prompt cache's key: libllama, the CPU variant
// ggml chose for this machine (each computes in its own way) and every device.
std::string BackendIdentity();

// Slots whose cached tokens are fewer are not saved to the prompt cache: evaluating them again
// costs little, and they would fill the folder with small files. Nor is an entry restored that
// spares fewer.
inline constexpr size_t kMinPromptCacheTokens = 64;
// The most recently used entry is checked while the model loads when its state is no larger (a
// few hundred ms of reading at most, within a context's creation).
inline constexpr uint64_t kPromptCacheCheckAtLoadMaxBytes = 512ull << 20;

// Text helpers with no llama.cpp dependency, exposed for tests.
// Length of the longest prefix of `text` that does not end inside a UTF-8 character.
size_t CompleteUtf8Prefix(std::string_view text);

// Whether any of the n values is NaN or +infinity, or -infinity unless `allow_minus_infinity`
// (a logit of -infinity only rules its token out).
bool HasNonFinite(const float* values, size_t n, bool allow_minus_infinity = false);

// How many of a slot's cached tokens a new prompt may keep (their KV entries are reused; the rest
// of the prompt is decoded). `cached` are the slot's tokens, the first `canonical` of which were
// decoded as a fresh context decodes them: in whole chunks of `n_batch` tokens starting at
// position 0, each chunk alone in its batch, with the engine's fixed thread count. At least the
// last prompt token is always decoded again (its logits are needed).
// - Not reproducible: the longest common prefix of `cached` and `prompt`.
// - Reproducible (a request with a seed): only whole chunks of the canonical prefix, and never the
//   chunk that holds the prompt's last token, so that the prompt is decoded in exactly the chunks a
//   fresh context would decode it in, from exactly the same KV entries. llama.cpp's CPU kernels
//   take other code paths for other batch sizes (flash attention tiles, matrix kernels) and split
//   attention over the KV cache by thread count, so any other reuse can change the logits' last
//   bits, and with them the sampled text.
size_t ReusablePrefix(const std::vector<int32_t>& cached, size_t canonical, const std::vector<int32_t>& prompt,
                      size_t n_batch, bool reproducible);

// log-softmax of `logits` (n values) at `token`, and the `top` most likely tokens with theirs,
// most likely first (ties: the lower id first). The log-probability OpenAI and Ollama return:
// under the model's own distribution, before temperature or any other sampler.
struct TokenLogprobIds {
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};
TokenLogprobIds LogSoftmaxAt(const float* logits, size_t n, int32_t token, int top);

// Where `held` may be cut for emission given the stop strings: returns {emit_len, stopped}.
// When a stop string occurs, emit_len is its position and stopped is true; otherwise emit_len
// excludes the longest suffix that could still begin a stop string.
std::pair<size_t, bool> StopScan(std::string_view held, const std::vector<std::string>& stop);

}  // namespace resident::runner
