// The runner protocol: how the server and a runner child process talk.
//
// Transport: a Unix stream socket (socketpair) inherited by the runner. Each message is a frame:
//   4 bytes  little-endian payload length N (1 <= N <= kMaxFrameBytes)
//   N bytes  MessagePack object {"t": <MessageType>, ...fields}
// Both ends work on the native structs below; JSON/MessagePack never leaves protocol.cc.
//
// Requests carry an id chosen by the server; every answer names the id it answers. A generate
// request is answered by zero or more TokenEvent frames then exactly one DoneEvent or ErrorEvent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace resident::runner {

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;  // embeddings of long inputs fit; more is an attack

// ---- server -> runner --------------------------------------------------------------------------

struct LoadRequest {
  std::string model_path;
  int32_t n_ctx = 4096;
  int32_t n_batch = 512;
  int32_t n_threads = 0;      // 0: physical cores
  int32_t n_gpu_layers = -1;  // -1: as many as fit (no-op without a GPU backend)
  // The one GPU every offloaded layer goes to (the scheduler placed the model there,
  // sched/gpu_split.h): its index (for messages) and its id (the driver's UUID, "GPU-8f3c..."),
  // which the runner makes the only device it sees (CUDA_VISIBLE_DEVICES) before its backends
  // start. -1 and "": llama.cpp's default, layers spread over every device.
  int32_t main_gpu = -1;
  std::string gpu_id;
  int32_t n_parallel = 1;
  bool use_mmap = true;
  // A Jinja chat template that replaces the model's own (a Modelfile's TEMPLATE); empty: the GGUF's.
  std::string chat_template;
  // Confinement (runner_limits.h): the scheduler's prediction of the runner's footprint (0: no
  // memory cap) and the least margin above it; how long rendering a chat template may take.
  std::string model_name;  // the model as users name it ("t1:latest"), for messages
  uint64_t predicted_bytes = 0;
  uint64_t memory_margin_bytes = 0;
  int64_t template_timeout_ms = 20000;
  // The prompt cache (prompt_cache.h): the folder its entries live in (empty: off) and its size.
  std::string prompt_cache_dir;
  uint64_t prompt_cache_max_bytes = 0;
  // The model may be put to sleep (a sleep_after is set): the engine notes its graphs' buffers,
  // to sleep in place (Engine::Sleep).
  bool may_sleep = false;
};

struct SamplingOptions {
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.9f;
  float min_p = 0.0f;
  float repeat_penalty = 1.1f;
  int32_t repeat_last_n = 64;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t seed = -1;  // -1: random
};

// A function the model called, as the chat layer parsed it from its output, or as an earlier
// assistant message carries it back.
struct ToolCall {
  std::string id;         // "call_..." (chosen by the runner when the model gives none)
  std::string name;
  std::string arguments;  // a JSON object, as text
};

// A function the model may call (OpenAI's {"type":"function","function":{...}}).
struct ToolDefinition {
  std::string name;
  std::string description;
  std::string parameters;  // a JSON schema object as text; "" for none
};

struct ChatMessage {
  std::string role;
  std::string content;
  // An earlier assistant turn's thinking and tool calls; a "tool" message's function and call id.
  std::string thinking;
  std::vector<ToolCall> tool_calls;
  std::string tool_name;
  std::string tool_call_id;
};

// How the chat layer may use tools: as the model chooses, never, or at least one call (the
// output is then constrained by the chat layer's grammar to calls only).
enum class ToolChoice : int32_t { kAuto = 0, kNone = 1, kRequired = 2 };

// Whether the model thinks: the template's default, off, or on (with an effort level).
enum class Think : int32_t { kDefault = -1, kOff = 0, kOn = 1 };

struct GenerateRequest {
  uint64_t id = 0;
  // Either messages, rendered with the model's own chat template (tokenizer.chat_template) and
  // followed by the assistant's turn, or a prompt used as it is.
  std::vector<ChatMessage> messages;
  std::string prompt;                    // text; tokenized by the runner
  std::vector<int32_t> context;          // tokens of an earlier exchange, prepended (Ollama's `context`)
  bool add_special = true;               // BOS etc.; false for raw prompts that carry their own
  int32_t num_predict = -1;              // -1: until end of sequence or context full
  std::vector<std::string> stop;
  SamplingOptions sampling;
  std::string grammar;                   // GBNF; empty: unconstrained
  // Fill-in-the-middle: when not empty, `prompt` is the text before the insertion point and this
  // the text after it, laid out with the model's FIM tokens. kInvalidArgument without them.
  std::string suffix;
  bool return_context = false;           // fill DoneEvent::context
  // Chat requests (messages) only: tools rendered by the template, with the chat layer's grammar
  // and output parsing (TokenEvent::tool_calls); thinking split out (TokenEvent::thinking).
  std::vector<ToolDefinition> tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  Think think = Think::kDefault;
  std::string think_level;               // "low" | "medium" | "high" | "" (with kOn)
  // The log-probability of every generated token (TokenEvent::logprobs), and of the
  // `top_logprobs` most likely tokens at each position (0..kMaxTopLogprobs).
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool parallel_tool_calls = true;       // more than one call per answer, where the template allows
};

inline constexpr int32_t kMaxTopLogprobs = 20;

struct TokenizeRequest {
  uint64_t id = 0;
  std::string text;
  bool add_special = true;
};

struct EmbedRequest {
  uint64_t id = 0;
  std::vector<std::string> inputs;
  bool normalize = true;
  bool truncate = true;
};

struct CancelRequest { uint64_t id = 0; };   // the request with this id stops within one token
struct HealthRequest { uint64_t id = 0; };
struct MemoryRequest { uint64_t id = 0; };
struct ShutdownRequest {};

// ---- runner -> server --------------------------------------------------------------------------

struct ModelFacts {
  uint64_t size_bytes = 0;      // llama_model_size: bytes of the weights
  uint64_t n_params = 0;
  int32_t n_ctx = 0;            // the context actually allocated
  int32_t n_ctx_train = 0;
  int32_t n_embd = 0;
  int32_t n_vocab = 0;
  int32_t n_batch = 0;          // the batch actually allocated
  int32_t n_threads = 0;
  std::string architecture;
  std::string chat_template;    // empty when the model has none
  bool fim = false;             // the vocabulary has fill-in-the-middle tokens (pre, suffix, middle)
  uint64_t rss_bytes = 0;       // measured resident memory of the runner right after the load
  uint64_t vram_bytes = 0;      // bytes placed on a GPU device (0 on CPU)
  int64_t load_ns = 0;          // model + context, measured in the runner
  int32_t gpu_layers = 0;       // layers offloaded to a GPU (0: none, or no GPU backend)
};

struct LoadedEvent { ModelFacts facts; };
struct LoadProgressEvent { float progress = 0; };
struct LoadFailedEvent {
  StatusCode code = StatusCode::kInternal;
  std::string message;
};

struct TopLogprob {
  std::string token;
  float logprob = 0;
};

// One generated token: its text, its log-probability under the model (log-softmax of its
// logits) and the most likely tokens at its position, most likely first.
struct TokenLogprob {
  std::string token;
  float logprob = 0;
  std::vector<TopLogprob> top;
};

struct TokenEvent {
  uint64_t id = 0;
  std::string text;  // whole UTF-8 characters; pieces that split one are held back
  // A chat whose output the chat layer parses (tools, thinking): `text` is the answer's content,
  // `thinking` the thinking, and `tool_calls` each call once it is complete.
  std::string thinking;
  std::vector<ToolCall> tool_calls;
  std::vector<TokenLogprob> logprobs;  // the tokens this event's text came from, when asked for
};

struct DoneEvent {
  uint64_t id = 0;
  std::string done_reason;  // "stop" | "length"
  int32_t prompt_eval_count = 0;
  int64_t prompt_eval_ns = 0;
  int32_t eval_count = 0;
  int64_t eval_ns = 0;
  std::vector<int32_t> context;  // prompt + generated tokens when asked for
  // Prompt tokens whose KV entries were reused (kept from the slot's earlier requests, or restored
  // from the prompt cache) instead of evaluated: prompt_eval_count - this many were evaluated.
  int32_t prompt_cached_count = 0;
};

struct ErrorEvent {
  uint64_t id = 0;
  StatusCode code = StatusCode::kInternal;
  std::string message;
};

struct TokenizeResult { uint64_t id = 0; std::vector<int32_t> tokens; };
struct EmbedResult {
  uint64_t id = 0;
  std::vector<std::vector<float>> embeddings;
  int32_t prompt_eval_count = 0;
};
struct HealthResult {
  uint64_t id = 0;
  bool busy = false;
  // How long the busy worker has gone without progress (a decoded graph node, a decode, a
  // sampled token, a finished request; 0 when idle), and what it was doing ("decoding").
  int64_t stalled_ms = 0;
  std::string doing;
};
struct MemoryResult { uint64_t id = 0; uint64_t rss_bytes = 0; uint64_t vram_bytes = 0; };

// The prompt cache (prompt_cache.h). Server -> runner: save the idle slots' prompt prefixes now
// (before an unload; a sleep may ask it too). Answered by a PromptCacheReport with the same id
// once written, after the requests queued before it.
struct SavePromptRequest { uint64_t id = 0; };
// Runner -> server: what the prompt cache did, as counts since the previous report and one line
// per thing done for the server's log. id 0: unasked (entries dropped at load, a restore at the
// start of a generation); else the answer to that SavePromptRequest.
struct PromptCacheReport {
  uint64_t id = 0;
  uint32_t saves = 0;             // entries written
  uint64_t saved_bytes = 0;
  uint32_t hits = 0;              // entries restored into a slot for a request
  uint64_t restored_tokens = 0;   // prompt tokens those requests took from the restored states
  uint64_t restored_bytes = 0;
  uint32_t evictions = 0;         // entries removed to keep the folder within its size
  uint64_t evicted_bytes = 0;
  uint32_t dropped = 0;           // entries found corrupt, cut short or of another key, and removed
  std::vector<std::string> notes;     // for the log, informational
  std::vector<std::string> warnings;  // for the log, something was wrong (a dropped entry, a failed save)

  bool empty() const { return saves == 0 && hits == 0 && evictions == 0 && dropped == 0 && notes.empty() && warnings.empty(); }
};

// Sleeping (sleep_after): the runner frees its context (KV cache, compute buffers) and keeps the
// model, its weights' mapping and the process; a wake creates the context again with the load's
// parameters (an empty KV cache). Each is answered once the runner is idle and done, by its result
// or an ErrorEvent.
struct SleepRequest { uint64_t id = 0; };
struct WakeRequest { uint64_t id = 0; };
struct SleepResult {
  uint64_t id = 0;
  uint64_t rss_bytes = 0;       // resident memory once asleep (what the budget counts)
  uint64_t rss_anon_bytes = 0;  // its private (anonymous) part: RssAnon
  uint64_t vram_bytes = 0;      // bytes still on a GPU device (0 on CPU)
  bool in_place = false;        // the context was kept and its pages given back (Engine::Sleep)
};
struct WakeResult {
  uint64_t id = 0;
  int64_t wake_ns = 0;          // creating the context, measured in the runner
  uint64_t rss_bytes = 0;       // resident memory once awake
};

using Message = std::variant<LoadRequest, GenerateRequest, TokenizeRequest,
                             EmbedRequest, CancelRequest, HealthRequest, MemoryRequest,
                             ShutdownRequest, LoadedEvent, LoadProgressEvent, LoadFailedEvent,
                             TokenEvent, DoneEvent, ErrorEvent, TokenizeResult,
                             EmbedResult, HealthResult, MemoryResult, SavePromptRequest,
                             PromptCacheReport, SleepRequest, WakeRequest, SleepResult, WakeResult>;

// Serializes a message into one frame (length prefix included).
std::string EncodeFrame(const Message& message);

// Decodes one frame's payload (without the length prefix). Fails on malformed MessagePack,
// an unknown type, or fields of the wrong type.
Result<Message> DecodePayload(std::string_view payload);

// Reads frames from a file descriptor, handling short reads. Not thread-safe: one reader per fd.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  // Blocks until a whole frame arrived. Errors: kUnavailable at end of stream (the peer closed or
  // died), kInvalidArgument for a zero or oversized length or a malformed payload.
  Result<Message> Next();

 private:
  Status ReadExactly(char* out, size_t n);
  int fd_;
};

// Writes one whole frame, handling short writes and EINTR. Callers serialize concurrent writers.
// Fails with kUnavailable when the peer is gone (EPIPE; SIGPIPE is never raised: MSG_NOSIGNAL).
Status WriteFrame(int fd, const Message& message);

}  // namespace resident::runner
