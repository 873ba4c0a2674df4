#include "runner/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <thread>
#include <typeinfo>

#include <nlohmann/json.hpp>

namespace resident::runner {
namespace {

struct SocketPair {
  int fds[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0); }
  ~SocketPair() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  void CloseWriter() {
    ::close(fds[0]);
    fds[0] = -1;
  }
};

TEST(Protocol, RoundTripsEveryFieldOfAGenerateRequest) {
  GenerateRequest r;
  r.id = 7;
  r.messages = {{"system", "be brief"}, {"user", "héllo"}};
  r.prompt = "raw";
  r.context = {1, 2, 3};
  r.num_predict = 12;
  r.stop = {"\n\n", "User:"};
  r.sampling.temperature = 0.25f;
  r.sampling.seed = 1234;
  r.grammar = "root ::= \"a\"";
  auto decoded = DecodePayload(EncodeFrame(r).substr(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& g = std::get<GenerateRequest>(*decoded);
  EXPECT_EQ(g.id, 7u);
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[1].content, "héllo");
  EXPECT_EQ(g.context, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(g.num_predict, 12);
  EXPECT_EQ(g.stop, r.stop);
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0.25f);
  EXPECT_EQ(g.sampling.seed, 1234);
  EXPECT_EQ(g.grammar, r.grammar);
}

TEST(Protocol, RoundTripsThePromptCacheMessagesAndFields) {
  LoadRequest load;
  load.prompt_cache_dir = "/var/cache/pc";
  load.prompt_cache_max_bytes = 2ull << 30;
  auto l = DecodePayload(EncodeFrame(load).substr(4));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(std::get<LoadRequest>(*l).prompt_cache_dir, "/var/cache/pc");
  EXPECT_EQ(std::get<LoadRequest>(*l).prompt_cache_max_bytes, 2ull << 30);

  DoneEvent done;
  done.prompt_eval_count = 40;
  done.prompt_cached_count = 32;
  auto d = DecodePayload(EncodeFrame(done).substr(4));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(std::get<DoneEvent>(*d).prompt_cached_count, 32);

  auto s = DecodePayload(EncodeFrame(SavePromptRequest{9}).substr(4));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(std::get<SavePromptRequest>(*s).id, 9u);

  PromptCacheReport r;
  r.id = 9;
  r.saves = 1;
  r.saved_bytes = 123456789012ull;
  r.hits = 2;
  r.restored_tokens = 1500;
  r.restored_bytes = 99;
  r.evictions = 3;
  r.evicted_bytes = 77;
  r.dropped = 4;
  r.notes = {"saved 1500 tokens"};
  r.warnings = {"ignored the entry x"};
  auto p = DecodePayload(EncodeFrame(r).substr(4));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const auto& q = std::get<PromptCacheReport>(*p);
  EXPECT_EQ(q.id, 9u);
  EXPECT_EQ(q.saves, 1u);
  EXPECT_EQ(q.saved_bytes, 123456789012ull);
  EXPECT_EQ(q.hits, 2u);
  EXPECT_EQ(q.restored_tokens, 1500u);
  EXPECT_EQ(q.restored_bytes, 99u);
  EXPECT_EQ(q.evictions, 3u);
  EXPECT_EQ(q.evicted_bytes, 77u);
  EXPECT_EQ(q.dropped, 4u);
  EXPECT_EQ(q.notes, r.notes);
  EXPECT_EQ(q.warnings, r.warnings);
  EXPECT_FALSE(q.empty());
  EXPECT_TRUE(PromptCacheReport{}.empty());
}

TEST(Protocol, FramesSurviveOneByteWrites) {
  SocketPair sp;
  std::string a = EncodeFrame(TokenEvent{3, "tok"});
  std::string b = EncodeFrame(ErrorEvent{4, StatusCode::kNotFound, "gone"});
  std::string all = a + b;
  std::thread writer([&] {
    for (char c : all) ASSERT_EQ(::write(sp.fds[0], &c, 1), 1);
  });
  FrameReader reader(sp.fds[1]);
  auto first = reader.Next();
  auto second = reader.Next();
  writer.join();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(std::get<TokenEvent>(*first).text, "tok");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(std::get<ErrorEvent>(*second).code, StatusCode::kNotFound);
  EXPECT_EQ(std::get<ErrorEvent>(*second).message, "gone");
}

TEST(Protocol, WriteFrameThenReadBack) {
  SocketPair sp;
  ASSERT_TRUE(WriteFrame(sp.fds[0], MemoryResult{9, 123456789012ull, 0}).ok());
  FrameReader reader(sp.fds[1]);
  auto m = reader.Next();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(std::get<MemoryResult>(*m).rss_bytes, 123456789012ull);
}

TEST(Protocol, EndOfStreamIsUnavailable) {
  SocketPair sp;
  sp.CloseWriter();
  FrameReader reader(sp.fds[1]);
  auto m = reader.Next();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
}

TEST(Protocol, StreamEndingInsideAFrameIsAnError) {
  SocketPair sp;
  std::string frame = EncodeFrame(TokenEvent{1, "hello"});
  ASSERT_EQ(::write(sp.fds[0], frame.data(), frame.size() - 2), static_cast<ssize_t>(frame.size() - 2));
  sp.CloseWriter();
  FrameReader reader(sp.fds[1]);
  auto m = reader.Next();
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("inside a frame"), std::string::npos);
}

TEST(Protocol, OversizedAndZeroLengthFramesAreRejectedBeforeAllocating) {
  for (uint32_t n : {0u, kMaxFrameBytes + 1, 0xffffffffu}) {
    SocketPair sp;
    char header[4];
    for (int i = 0; i < 4; ++i) header[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    ASSERT_EQ(::write(sp.fds[0], header, 4), 4);
    FrameReader reader(sp.fds[1]);
    auto m = reader.Next();
    ASSERT_FALSE(m.ok()) << n;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("out of range"), std::string::npos);
  }
}

TEST(Protocol, GarbagePayloadIsRejected) {
  EXPECT_FALSE(DecodePayload("\xc1\xc1\xc1").ok());             // invalid MessagePack
  EXPECT_FALSE(DecodePayload(std::string("\x91\x01", 2)).ok());  // an array, not an object
  // {"t": 200}: an object whose type tag is unknown.
  auto unknown = DecodePayload(std::string("\x81\xa1t\xcc\xc8", 5));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown message type"), std::string::npos);
  // {"t": 11, "text": 5}: a TokenEvent whose text is a number.
  auto wrong = DecodePayload(std::string("\x82\xa1t\x0b\xa4text\x05", 10));
  static_assert(std::is_same_v<std::variant_alternative_t<11, Message>, TokenEvent>);
  ASSERT_FALSE(wrong.ok());
}

// The bytes of a string literal, NULs included.
template <size_t N>
std::string Bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// Found by fuzzing (fuzz/regressions/protocol/): nlohmann's get<int32_t> converts a float with a
// static_cast, undefined behaviour when it does not fit (UBSan: "1e+300 is outside the range of
// representable values of type 'int'"). Numbers must now fit their fields.
TEST(Protocol, NumbersThatDoNotFitTheirFieldAreRejected) {
  // {"t": 0, "n_ctx": 1e300}: a LoadRequest whose n_ctx is a float beyond int32.
  const std::string float_into_int32 = Bytes("\x82\xa1t\x00\xa5n_ctx\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c");
  static_assert(std::is_same_v<std::variant_alternative_t<0, Message>, LoadRequest>);
  // {"t": 11, "id": -1.0}: a TokenEvent whose uint64 id is a negative float.
  const std::string negative_float_into_uint64 = Bytes("\x82\xa1t\x0b\xa2id\xcb\xbf\xf0\x00\x00\x00\x00\x00\x00");
  // {"t": 11, "id": -1}: the same id as a negative integer, which used to wrap to 2^64-1.
  const std::string negative_int_into_uint64 = Bytes("\x82\xa1t\x0b\xa2id\xff");
  // {"t": 8, "facts": {"n_ctx": 4294967296}}: an integer beyond int32.
  const std::string wide_int_into_int32 = Bytes("\x82\xa1t\x08\xa5" "facts\x81\xa5n_ctx\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
  // {"t": 13, "code": 99}: a status code that does not exist.
  const std::string unknown_status_code = Bytes("\x82\xa1t\x0d\xa4" "code\x63");
  for (const std::string* payload :
       {&float_into_int32, &negative_float_into_uint64, &negative_int_into_uint64, &wide_int_into_int32,
        &unknown_status_code}) {
    auto m = DecodePayload(*payload);
    ASSERT_FALSE(m.ok()) << std::visit([](const auto& v) { return typeid(v).name(); }, *m);
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("bad message fields"), std::string::npos) << m.status().message();
  }
  // Fitting values still decode, including the extremes of each type.
  LoadRequest load;
  load.n_ctx = std::numeric_limits<int32_t>::max();
  load.n_gpu_layers = std::numeric_limits<int32_t>::min();
  auto decoded = DecodePayload(EncodeFrame(load).substr(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<LoadRequest>(*decoded).n_ctx, load.n_ctx);
  EXPECT_EQ(std::get<LoadRequest>(*decoded).n_gpu_layers, load.n_gpu_layers);
  MemoryResult mem{std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max(), 0};
  decoded = DecodePayload(EncodeFrame(mem).substr(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<MemoryResult>(*decoded).id, mem.id);
  ErrorEvent err{1, StatusCode::kInternal, "x"};
  decoded = DecodePayload(EncodeFrame(err).substr(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<ErrorEvent>(*decoded).code, StatusCode::kInternal);
}


TEST(Protocol, RoundTripsToolsThinkingAndLogprobs) {
  GenerateRequest r;
  ChatMessage call{"assistant", ""};
  call.thinking = "hmm";
  call.tool_calls = {{"call_1", "get_weather", R"({"city":"Paris"})"}};
  ChatMessage result{"tool", "sunny"};
  result.tool_name = "get_weather";
  result.tool_call_id = "call_1";
  r.messages = {{"user", "weather?"}, call, result};
  r.tools = {{"get_weather", "the weather", R"({"type":"object"})"}};
  r.tool_choice = ToolChoice::kRequired;
  r.think = Think::kOn;
  r.think_level = "high";
  r.logprobs = true;
  r.top_logprobs = 5;
  r.parallel_tool_calls = false;
  auto decoded = DecodePayload(EncodeFrame(r).substr(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& g = std::get<GenerateRequest>(*decoded);
  ASSERT_EQ(g.messages.size(), 3u);
  EXPECT_EQ(g.messages[1].thinking, "hmm");
  ASSERT_EQ(g.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(g.messages[1].tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(g.messages[2].tool_name, "get_weather");
  EXPECT_EQ(g.messages[2].tool_call_id, "call_1");
  ASSERT_EQ(g.tools.size(), 1u);
  EXPECT_EQ(g.tools[0].parameters, R"({"type":"object"})");
  EXPECT_EQ(g.tool_choice, ToolChoice::kRequired);
  EXPECT_EQ(g.think, Think::kOn);
  EXPECT_EQ(g.think_level, "high");
  EXPECT_TRUE(g.logprobs);
  EXPECT_EQ(g.top_logprobs, 5);
  EXPECT_FALSE(g.parallel_tool_calls);

  TokenEvent t;
  t.id = 4;
  t.text = "a";
  t.thinking = "b";
  t.tool_calls = {{"call_2", "f", "{}"}};
  t.logprobs = {{"a", -0.5f, {{"a", -0.5f}, {"b", -1.5f}}}};
  auto back = DecodePayload(EncodeFrame(t).substr(4));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  const auto& e = std::get<TokenEvent>(*back);
  EXPECT_EQ(e.thinking, "b");
  ASSERT_EQ(e.tool_calls.size(), 1u);
  EXPECT_EQ(e.tool_calls[0].id, "call_2");
  ASSERT_EQ(e.logprobs.size(), 1u);
  EXPECT_FLOAT_EQ(e.logprobs[0].logprob, -0.5f);
  ASSERT_EQ(e.logprobs[0].top.size(), 2u);
  EXPECT_EQ(e.logprobs[0].top[1].token, "b");

  // A think or tool_choice value outside the enumerations is a malformed frame.
  std::string frame = EncodeFrame(r).substr(4);
  auto j = nlohmann::json::from_msgpack(frame);
  j["think"] = 7;
  std::vector<uint8_t> packed = nlohmann::json::to_msgpack(j);
  EXPECT_FALSE(DecodePayload(std::string(packed.begin(), packed.end())).ok());
}

}  // namespace
}  // namespace resident::runner
