#include "runner/protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace resident::runner {

using nlohmann::json;

// Decoding is stricter than nlohmann's get<T>: a number must fit its field. A float in an integer
// field, or an integer beyond the field's range, would otherwise be converted with undefined
// behaviour (1e300 into an int32_t) or wrap silently (-1 into a uint64_t id); either is an error.
// A missing field keeps its default.
namespace {

struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void BadField(const char* key, const char* want) {
  throw FieldError(std::string("field \"") + key + "\" must be " + want);
}

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

template <typename T>
void ReadValue(const json& v, const char* key, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) BadField(key, "true or false");
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      if (!std::in_range<T>(u)) BadField(key, "an integer in range");
      out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const auto i = v.get<int64_t>();
      if (!std::in_range<T>(i)) BadField(key, "an integer in range");
      out = static_cast<T>(i);
    } else {
      BadField(key, "an integer");
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) BadField(key, "a number");
    const auto d = v.get<double>();
    if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<T>::max()) BadField(key, "a number in range");
    out = static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, ToolChoice> || std::is_same_v<T, Think>) {
    int32_t code = 0;
    ReadValue(v, key, code);
    if (code < -1 || code > 2) BadField(key, "a known value");
    out = static_cast<T>(code);
  } else if constexpr (std::is_same_v<T, StatusCode>) {
    int code = 0;
    ReadValue(v, key, code);
    if (code < 0 || code > static_cast<int>(StatusCode::kInternal)) BadField(key, "a status code");
    out = static_cast<StatusCode>(code);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) BadField(key, "a string");
    out = v.get<std::string>();
  } else if constexpr (IsVector<T>::value) {
    if (!v.is_array()) BadField(key, "an array");
    out.clear();
    out.reserve(v.size());
    for (const json& e : v) ReadValue(e, key, out.emplace_back());
  } else {
    if (!v.is_object()) BadField(key, "an object");
    from_json(v, out);  // a nested message struct, below
  }
}

template <typename T>
void ReadField(const json& j, const char* key, T& out) {
  if (auto it = j.find(key); it != j.end()) ReadValue(*it, key, out);
}

}  // namespace

#define RESIDENT_FIELD_TO(field) j[#field] = value.field;
#define RESIDENT_FIELD_FROM(field) ReadField(j, #field, value.field);
#define RESIDENT_PROTOCOL_FIELDS(Type, ...)                                                     \
  inline void to_json(json& j, const Type& value) {                                             \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(RESIDENT_FIELD_TO, __VA_ARGS__))                   \
  }                                                                                             \
  inline void from_json(const json& j, Type& value) {                                           \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(RESIDENT_FIELD_FROM, __VA_ARGS__))                 \
  }

RESIDENT_PROTOCOL_FIELDS(LoadRequest, model_path, n_ctx, n_batch, n_threads, n_gpu_layers, main_gpu, gpu_id,
                         n_parallel, use_mmap, chat_template, model_name, predicted_bytes,
                         memory_margin_bytes, template_timeout_ms, prompt_cache_dir,
                         prompt_cache_max_bytes, may_sleep)
RESIDENT_PROTOCOL_FIELDS(SamplingOptions, temperature, top_k, top_p, min_p, repeat_penalty,
                         repeat_last_n, presence_penalty, frequency_penalty, seed)
RESIDENT_PROTOCOL_FIELDS(ToolCall, id, name, arguments)
RESIDENT_PROTOCOL_FIELDS(ToolDefinition, name, description, parameters)
RESIDENT_PROTOCOL_FIELDS(ChatMessage, role, content, thinking, tool_calls, tool_name, tool_call_id)
RESIDENT_PROTOCOL_FIELDS(GenerateRequest, id, messages, prompt, context, add_special, num_predict,
                         stop, sampling, grammar, return_context, suffix, tools, tool_choice, think,
                         think_level, logprobs, top_logprobs, parallel_tool_calls)
RESIDENT_PROTOCOL_FIELDS(TokenizeRequest, id, text, add_special)
RESIDENT_PROTOCOL_FIELDS(EmbedRequest, id, inputs, normalize, truncate)
RESIDENT_PROTOCOL_FIELDS(CancelRequest, id)
RESIDENT_PROTOCOL_FIELDS(HealthRequest, id)
RESIDENT_PROTOCOL_FIELDS(MemoryRequest, id)
inline void to_json(json& j, const ShutdownRequest&) { j = json::object(); }
inline void from_json(const json&, ShutdownRequest&) {}
RESIDENT_PROTOCOL_FIELDS(ModelFacts, size_bytes, n_params, n_ctx, n_ctx_train, n_embd, n_vocab, n_batch,
                         n_threads, architecture, chat_template, rss_bytes, vram_bytes, load_ns, fim, gpu_layers)
RESIDENT_PROTOCOL_FIELDS(LoadedEvent, facts)
RESIDENT_PROTOCOL_FIELDS(LoadProgressEvent, progress)
RESIDENT_PROTOCOL_FIELDS(LoadFailedEvent, code, message)
RESIDENT_PROTOCOL_FIELDS(TopLogprob, token, logprob)
RESIDENT_PROTOCOL_FIELDS(TokenLogprob, token, logprob, top)
RESIDENT_PROTOCOL_FIELDS(TokenEvent, id, text, thinking, tool_calls, logprobs)
RESIDENT_PROTOCOL_FIELDS(DoneEvent, id, done_reason, prompt_eval_count, prompt_eval_ns, eval_count,
                         eval_ns, context, prompt_cached_count)
RESIDENT_PROTOCOL_FIELDS(ErrorEvent, id, code, message)
RESIDENT_PROTOCOL_FIELDS(TokenizeResult, id, tokens)
RESIDENT_PROTOCOL_FIELDS(EmbedResult, id, embeddings, prompt_eval_count)
RESIDENT_PROTOCOL_FIELDS(HealthResult, id, busy, stalled_ms, doing)
RESIDENT_PROTOCOL_FIELDS(MemoryResult, id, rss_bytes, vram_bytes)
RESIDENT_PROTOCOL_FIELDS(SavePromptRequest, id)
RESIDENT_PROTOCOL_FIELDS(PromptCacheReport, id, saves, saved_bytes, hits, restored_tokens, restored_bytes, evictions,
                         evicted_bytes, dropped, notes, warnings)
RESIDENT_PROTOCOL_FIELDS(SleepRequest, id)
RESIDENT_PROTOCOL_FIELDS(WakeRequest, id)
RESIDENT_PROTOCOL_FIELDS(SleepResult, id, rss_bytes, rss_anon_bytes, vram_bytes, in_place)
RESIDENT_PROTOCOL_FIELDS(WakeResult, id, wake_ns, rss_bytes)

namespace {

// The variant index is the wire type tag; appending new alternatives keeps old tags stable.
template <size_t I = 0>
Result<Message> FromTag(size_t tag, const json& body) {
  if constexpr (I < std::variant_size_v<Message>) {
    if (tag == I) {
      std::variant_alternative_t<I, Message> value;
      from_json(body, value);
      return Message(std::move(value));
    }
    return FromTag<I + 1>(tag, body);
  } else {
    return Status::InvalidArgument("runner protocol: unknown message type " + std::to_string(tag));
  }
}

}  // namespace

std::string EncodeFrame(const Message& message) {
  json body;
  std::visit([&](const auto& m) { to_json(body, m); }, message);
  body["t"] = message.index();
  std::vector<uint8_t> packed = json::to_msgpack(body);
  std::string frame(4 + packed.size(), '\0');
  uint32_t n = static_cast<uint32_t>(packed.size());
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(frame.data() + 4, packed.data(), packed.size());
  return frame;
}

Result<Message> DecodePayload(std::string_view payload) {
  json body = json::from_msgpack(payload.begin(), payload.end(), /*strict=*/true,
                                 /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Status::InvalidArgument("runner protocol: malformed frame payload");
  }
  auto tag = body.find("t");
  if (tag == body.end() || !tag->is_number_unsigned()) {
    return Status::InvalidArgument("runner protocol: frame without a message type");
  }
  try {
    return FromTag(tag->get<size_t>(), body);
  } catch (const FieldError& e) {
    return Status::InvalidArgument(std::string("runner protocol: bad message fields: ") + e.what());
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("runner protocol: bad message fields: ") + e.what());
  }
}

Status FrameReader::ReadExactly(char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd_, out + got, n - got);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (r == 0) {
      return Status::Unavailable(got == 0 ? "end of stream" : "stream ended inside a frame");
    } else if (errno != EINTR) {
      return Status::Unavailable(std::string("read failed: ") + std::strerror(errno));
    }
  }
  return Status::Ok();
}

Result<Message> FrameReader::Next() {
  char header[4];
  RESIDENT_RETURN_IF_ERROR(ReadExactly(header, 4));
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<uint8_t>(header[i])) << (8 * i);
  if (n == 0 || n > kMaxFrameBytes) {
    return Status::InvalidArgument("runner protocol: frame length " + std::to_string(n) +
                                   " out of range (1.." + std::to_string(kMaxFrameBytes) + ")");
  }
  std::string payload(n, '\0');
  RESIDENT_RETURN_IF_ERROR(ReadExactly(payload.data(), n));
  return DecodePayload(payload);
}

Status WriteFrame(int fd, const Message& message) {
  std::string frame = EncodeFrame(message);
  if (frame.size() - 4 > kMaxFrameBytes) {
    return Status::InvalidArgument("runner protocol: message too large to send");
  }
  size_t sent = 0;
  while (sent < frame.size()) {
    ssize_t w = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<size_t>(w);
    } else if (w < 0 && errno == ENOTSOCK) {
      w = ::write(fd, frame.data() + sent, frame.size() - sent);  // a pipe (tests)
      if (w > 0) sent += static_cast<size_t>(w);
      else if (errno != EINTR) return Status::Unavailable(std::string("write failed: ") + std::strerror(errno));
    } else if (w < 0 && errno != EINTR) {
      return Status::Unavailable(std::string("write failed: ") + std::strerror(errno));
    }
  }
  return Status::Ok();
}

}  // namespace resident::runner
