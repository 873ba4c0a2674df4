#include "runner/chat_output.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>

#include "chat.h"  // llama.cpp common/

namespace resident::runner {

struct ChatOutput::Impl {
  common_chat_parser_params params;
  bool thinking = false;
  std::string generated;        // the answer so far
  std::string thinking_sent;    // what was reported of each field so far
  std::string content_sent;
  size_t calls_sent = 0;
  size_t max_calls = SIZE_MAX;        // 1 without parallel tool calls
  size_t calls_reported = 0;
  bool complete = false;              // the one call allowed is whole
  std::vector<std::string> call_ids;  // an id per call, chosen when the call is first seen
};

ChatOutput::ChatOutput(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatOutput::~ChatOutput() = default;

std::string NewToolCallId() {
  static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 8; ++i) id.push_back(kLetters[rng() % (sizeof kLetters - 1)]);
  return id;
}

Result<std::unique_ptr<ChatOutput>> ChatOutput::Create(const ChatParseSpec& spec, bool parallel_tool_calls) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->params.format = static_cast<common_chat_format>(spec.format);
    impl->params.generation_prompt = spec.generation_prompt;
    impl->params.reasoning_format = spec.thinking ? COMMON_REASONING_FORMAT_DEEPSEEK : COMMON_REASONING_FORMAT_NONE;
    impl->params.parse_tool_calls = spec.tools;
    if (!spec.parser.empty()) impl->params.parser.load(spec.parser);
    impl->thinking = spec.thinking;
    if (!parallel_tool_calls) impl->max_calls = 1;
    return std::unique_ptr<ChatOutput>(new ChatOutput(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("cannot load the chat template's output parser: ") + e.what());
  }
}

namespace {

std::string_view TrimLeft(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// What `now` adds to what was sent of a field. The chat layer may revise a partial parse (a
// marker it took for text turns out to begin a tool call): text already sent stays sent, and
// the field resumes once it grows past it again.
std::string Grow(std::string& sent, std::string_view now) {
  if (now.size() <= sent.size() || now.substr(0, sent.size()) != sent) return {};
  std::string added(now.substr(sent.size()));
  sent.assign(now);
  return added;
}

}  // namespace

ChatDelta ChatOutput::Update(bool partial, bool final) {
  Impl& s = *impl_;
  common_chat_msg msg;
  try {
    msg = common_chat_parse(s.generated, partial, s.params);
  } catch (const std::exception& e) {
    if (!final) return {};
    // The whole answer does not match the format: read what matched, as while streaming.
    try {
      msg = common_chat_parse(s.generated, /*is_partial=*/true, s.params);
    } catch (const std::exception&) {
      msg = common_chat_msg{};
      msg.content = s.generated;
    }
  }
  ChatDelta d;
  // As Ollama's thinking parser: whitespace after the opening tag and before the answer goes.
  std::string_view thinking = TrimLeft(msg.reasoning_content);
  std::string_view content = s.thinking ? TrimLeft(msg.content) : std::string_view(msg.content);
  d.thinking = Grow(s.thinking_sent, thinking);
  d.content = Grow(s.content_sent, content);
  // A call is complete when another one follows it, or when the answer is over; the one call
  // allowed without parallel calls once its arguments are a whole JSON object (the chat layer's
  // partial parse gives them as far as they were written).
  size_t complete = final ? msg.tool_calls.size() : (msg.tool_calls.empty() ? 0 : msg.tool_calls.size() - 1);
  if (s.max_calls == 1 && !msg.tool_calls.empty() && !msg.tool_calls[0].name.empty() &&
      common_json::parse_no_throw(msg.tool_calls[0].arguments).is_object()) {
    complete = std::max<size_t>(complete, 1);
    s.complete = true;
  }
  while (s.call_ids.size() < msg.tool_calls.size()) {
    const std::string& given = msg.tool_calls[s.call_ids.size()].id;
    s.call_ids.push_back(given.empty() ? NewToolCallId() : given);
  }
  for (; s.calls_sent < complete; ++s.calls_sent) {
    const common_chat_tool_call& c = msg.tool_calls[s.calls_sent];
    std::string arguments = c.arguments.empty() ? "{}" : c.arguments;
    // A call cut short by the token limit has no complete arguments: it is not a call.
    if (c.name.empty() || !common_json::parse_no_throw(arguments).is_object()) continue;
    if (s.calls_reported == s.max_calls) continue;
    ++s.calls_reported;
    d.tool_calls.push_back(ToolCall{s.call_ids[s.calls_sent], c.name, std::move(arguments)});
  }
  return d;
}

ChatDelta ChatOutput::Add(std::string_view text) {
  Impl& s = *impl_;
  s.generated.append(text);
  return Update(/*partial=*/true, /*final=*/false);
}

bool ChatOutput::Complete() const { return impl_->complete; }

ChatDelta ChatOutput::Finish(bool truncated) { return Update(/*partial=*/truncated, /*final=*/true); }

}  // namespace resident::runner
