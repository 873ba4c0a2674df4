#include "runner/protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace resident::runner {

using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LoadRequest, model_path, n_ctx, n_batch, n_threads,
                                                n_gpu_layers, n_parallel, use_mmap)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SamplingOptions, temperature, top_k, top_p, min_p,
                                                repeat_penalty, repeat_last_n, presence_penalty,
                                                frequency_penalty, seed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ChatMessage, role, content)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GenerateRequest, id, messages, prompt, context,
                                                add_special, num_predict, stop, sampling, grammar,
                                                return_context, suffix)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TokenizeRequest, id, text, add_special)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmbedRequest, id, inputs, normalize, truncate)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CancelRequest, id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HealthRequest, id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MemoryRequest, id)
inline void to_json(json& j, const ShutdownRequest&) { j = json::object(); }
inline void from_json(const json&, ShutdownRequest&) {}
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModelFacts, size_bytes, n_params, n_ctx, n_ctx_train,
                                                n_embd, n_threads, architecture, chat_template,
                                                rss_bytes, vram_bytes, load_ns, fim)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LoadedEvent, facts)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LoadProgressEvent, progress)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LoadFailedEvent, code, message)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TokenEvent, id, text)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DoneEvent, id, done_reason, prompt_eval_count,
                                                prompt_eval_ns, eval_count, eval_ns, context)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ErrorEvent, id, code, message)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TokenizeResult, id, tokens)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmbedResult, id, embeddings, prompt_eval_count)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HealthResult, id, busy)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MemoryResult, id, rss_bytes, vram_bytes)

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
