// llama.cpp's chat layer as resident uses it, with real models' templates from llama.cpp's
// models/templates: tools rendered and constrained (ChatTemplate), tool calls and thinking read
// back from generated text (ChatOutput).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "runner/chat_output.h"
#include "runner/chat_template.h"

namespace resident::runner {
namespace {

std::string ReadTemplate(const std::string& file) {
  std::ifstream in(std::string(RESIDENT_VOCAB_DIR) + "/templates/" + file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::unique_ptr<ChatTemplate> Template(const std::string& file) {
  ChatTemplateSource s;
  s.text = ReadTemplate(file);
  EXPECT_FALSE(s.text.empty()) << file;
  auto t = ChatTemplate::Create(s);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

const char* kQwen = "Qwen-Qwen2.5-7B-Instruct.jinja";
const char* kDeepSeek = "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja";

ToolDefinition Weather() {
  return {"get_weather", "The weather in a city",
          R"({"type":"object","properties":{"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["unit"]})"};
}

// Qwen 2.5 asked for the weather, offered the weather tool, with a call required.
Result<RenderedChat> QwenRequiredCall(bool parallel_tool_calls = true) {
  auto t = Template(kQwen);
  if (t == nullptr) return Status::NotFound(std::string("no template ") + kQwen);
  ChatRenderOptions o;
  o.tools = {Weather()};
  o.tool_choice = ToolChoice::kRequired;
  o.parallel_tool_calls = parallel_tool_calls;
  return t->Render({{"user", "weather?"}}, o);
}

TEST(ChatLayer, QwenRendersToolsAndRequiredConstrainsTheAnswerToCallsOnly) {
  auto chat = QwenRequiredCall();
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_NE(chat->prompt.find("\"name\": \"get_weather\""), std::string::npos) << chat->prompt;
  EXPECT_TRUE(chat->prompt.ends_with("<|im_start|>assistant\n")) << chat->prompt;
  EXPECT_FALSE(chat->grammar_lazy);
  // The root rule: the generation prompt, then calls, no text before them.
  const size_t root = chat->grammar.find("root ::= ");
  ASSERT_NE(root, std::string::npos) << chat->grammar;
  const std::string root_line = chat->grammar.substr(root, chat->grammar.find('\n', root) - root);
  EXPECT_EQ(root_line.find("until"), std::string::npos) << root_line;
  EXPECT_NE(root_line.find("<|im_start|>assistant"), std::string::npos) << root_line;
  EXPECT_TRUE(chat->parse.tools);
  EXPECT_FALSE(chat->parse.thinking);
  EXPECT_EQ(chat->parse.generation_prompt, "<|im_start|>assistant\n");
  EXPECT_FALSE(chat->parse.parser.empty());
}

TEST(ChatLayer, AutoToolChoiceGivesALazyGrammarTriggeredByTheCallMarker) {
  auto t = Template(kQwen);
  ASSERT_NE(t, nullptr);
  ChatRenderOptions o;
  o.tools = {Weather()};
  auto chat = t->Render({{"user", "weather?"}}, o);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_TRUE(chat->grammar_lazy);
  EXPECT_FALSE(chat->grammar.empty());
  ASSERT_FALSE(chat->trigger_patterns.empty());
  // Qwen's call marker with the newline its format writes after it, as a literal pattern.
  EXPECT_EQ(chat->trigger_patterns[0], "<tool_call>\n");
  // "none": the tools are rendered, nothing constrains or parses calls.
  o.tool_choice = ToolChoice::kNone;
  auto none = t->Render({{"user", "weather?"}}, o);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->grammar.empty());
  EXPECT_FALSE(none->parse.tools);
  EXPECT_FALSE(none->parsed());
}

TEST(ChatLayer, EarlierCallsAndToolResultsRenderThroughTheTemplate) {
  auto t = Template(kQwen);
  ASSERT_NE(t, nullptr);
  ChatMessage call{"assistant", ""};
  call.tool_calls = {{"call_1", "get_weather", R"({"unit":"celsius"})"}};
  ChatMessage result{"tool", "21 degrees"};
  result.tool_name = "get_weather";
  result.tool_call_id = "call_1";
  ChatRenderOptions o;
  o.tools = {Weather()};
  auto chat = t->Render({{"user", "weather?"}, call, result}, o);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_NE(chat->prompt.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}"),
            std::string::npos)
      << chat->prompt;
  EXPECT_NE(chat->prompt.find("<tool_response>\n21 degrees\n</tool_response>"), std::string::npos) << chat->prompt;
}

TEST(ChatLayer, CallsOnlyGrammarDropsTheTextBeforeTheCallsAndLeavesOtherShapes) {
  EXPECT_EQ(CallsOnlyGrammar("a ::= \"x\"\nroot ::= \"<s>\" space until-161? tool-calls\nspace ::= \" \"\n"),
            "a ::= \"x\"\nroot ::= \"<s>\" space tool-calls\nspace ::= \" \"\n");
  EXPECT_EQ(CallsOnlyGrammar("root ::= space until-9? tool-call"), "root ::= space tool-call");
  const std::string other = "root ::= (start any)* start tool-call\n";
  EXPECT_EQ(CallsOnlyGrammar(other), other);
  EXPECT_EQ(RegexEscape("<|tool|>(x)"), "<\\|tool\\|>\\(x\\)");
}

TEST(ChatLayer, ToolCallsAreReadBackWholeOnceCompleteWhileStreaming) {
  auto t = Template(kQwen);
  ASSERT_NE(t, nullptr);
  ChatRenderOptions o;
  o.tools = {Weather()};
  auto chat = t->Render({{"user", "weather?"}}, o);
  ASSERT_TRUE(chat.ok());
  auto out = ChatOutput::Create(chat->parse);
  ASSERT_TRUE(out.ok()) << out.status().message();
  const std::string answer =
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"fahrenheit\"}}\n</tool_call>";
  std::string content;
  std::vector<ToolCall> calls;
  size_t calls_before_end = 0;
  for (char c : answer) {  // a character at a time, as a stream may cut it
    ChatDelta d = (*out)->Add(std::string(1, c));
    content += d.content;
    calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  }
  calls_before_end = calls.size();
  ChatDelta last = (*out)->Finish(false);
  content += last.content;
  calls.insert(calls.end(), last.tool_calls.begin(), last.tool_calls.end());
  EXPECT_EQ(calls_before_end, 1u);  // the first call once the second began
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[0].arguments, R"({"unit": "celsius"})");
  EXPECT_EQ(calls[1].arguments, R"({"unit": "fahrenheit"})");
  EXPECT_TRUE(calls[0].id.starts_with("call_")) << calls[0].id;
  EXPECT_EQ(calls[0].id.size(), 13u);
  EXPECT_NE(calls[0].id, calls[1].id);
  EXPECT_EQ(content, "Let me look.\n");
}

TEST(ChatLayer, ACallCutByTheTokenLimitIsNoCall) {
  auto chat = QwenRequiredCall();
  ASSERT_TRUE(chat.ok());
  auto out = ChatOutput::Create(chat->parse);
  ASSERT_TRUE(out.ok());
  ChatDelta d = (*out)->Add("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"cel");
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_TRUE((*out)->Finish(/*truncated=*/true).tool_calls.empty());
}

// Qwen 2.5 with one tool, a call required and no parallel calls: the parser of its answer, and
// what the render said to parse.
void RequiredCallWithoutParallelCalls(std::unique_ptr<ChatOutput>* out, ChatParseSpec* spec = nullptr) {
  auto chat = QwenRequiredCall(false);
  ASSERT_TRUE(chat.ok());
  auto made = ChatOutput::Create(chat->parse, /*parallel_tool_calls=*/false);
  ASSERT_TRUE(made.ok());
  *out = std::move(made).value();
  if (spec != nullptr) *spec = chat->parse;
}

// Qwen's grammar allows one <tool_call> after another whatever parallel_tool_calls says: without
// parallel calls the answer is its first call.
TEST(ChatLayer, WithoutParallelCallsOnlyTheFirstCallIsReported) {
  std::unique_ptr<ChatOutput> out;
  ASSERT_NO_FATAL_FAILURE(RequiredCallWithoutParallelCalls(&out));
  std::vector<ToolCall> calls;
  ChatDelta d = out->Add(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"fahrenheit\"}}\n</tool_call>");
  calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  d = out->Finish(false);
  calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].arguments, R"({"unit": "celsius"})");
}

// Without parallel calls the answer is whole once its call's arguments close: the call is
// reported then and the runner generates no more.
TEST(ChatLayer, WithoutParallelCallsTheAnswerIsCompleteOnceItsCallCloses) {
  std::unique_ptr<ChatOutput> out;
  ChatParseSpec spec;
  ASSERT_NO_FATAL_FAILURE(RequiredCallWithoutParallelCalls(&out, &spec));
  const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}\n</tool_call>";
  std::vector<ToolCall> calls;
  size_t complete_at = 0;
  for (size_t i = 0; i < call.size(); ++i) {
    ChatDelta d = out->Add(call.substr(i, 1));
    calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    if (out->Complete() && complete_at == 0) complete_at = i + 1;
  }
  // Once the arguments' object closes, not before.
  EXPECT_GE(complete_at, call.find("}}") + 1);
  EXPECT_LE(complete_at, call.size());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_TRUE(out->Finish(false).tool_calls.empty());  // reported once

  // With parallel calls another may follow: never complete before the end.
  auto parallel = ChatOutput::Create(spec);
  ASSERT_TRUE(parallel.ok());
  (*parallel)->Add(call);
  EXPECT_FALSE((*parallel)->Complete());
}

TEST(ChatLayer, DeepSeekR1ThinksAfterItsGenerationPromptAndTheThinkingIsSplitOut) {
  auto t = Template(kDeepSeek);
  ASSERT_NE(t, nullptr);
  ChatRenderOptions o;
  o.think = Think::kOn;
  auto chat = t->Render({{"user", "2+2?"}}, o);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_TRUE(chat->prompt.ends_with("<think>\n")) << chat->prompt;
  EXPECT_TRUE(chat->parse.thinking);
  EXPECT_TRUE(chat->parsed());
  auto out = ChatOutput::Create(chat->parse);
  ASSERT_TRUE(out.ok());
  std::string thinking, content;
  for (const char* piece : {"Two ", "and two.\n", "</th", "ink>\n\n", "Four."}) {
    ChatDelta d = (*out)->Add(piece);
    thinking += d.thinking;
    content += d.content;
  }
  ChatDelta last = (*out)->Finish(false);
  thinking += last.thinking;
  content += last.content;
  EXPECT_EQ(thinking, "Two and two.\n");
  EXPECT_EQ(content, "Four.");

  // Off: the template closes the thinking itself; nothing is parsed.
  o.think = Think::kOff;
  auto off = t->Render({{"user", "2+2?"}}, o);
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off->prompt.ends_with("</think>")) << off->prompt;
  EXPECT_FALSE(off->parsed());
}

TEST(ChatLayer, AnAnswerCutWhileThinkingIsAllThinking) {
  auto t = Template(kDeepSeek);
  ASSERT_NE(t, nullptr);
  ChatRenderOptions o;
  o.think = Think::kOn;
  auto chat = t->Render({{"user", "2+2?"}}, o);
  ASSERT_TRUE(chat.ok());
  auto out = ChatOutput::Create(chat->parse);
  ASSERT_TRUE(out.ok());
  ChatDelta d = (*out)->Add("still going");
  ChatDelta last = (*out)->Finish(/*truncated=*/true);
  EXPECT_EQ(d.thinking + last.thinking, "still going");
  EXPECT_EQ(d.content + last.content, "");
}

}  // namespace
}  // namespace resident::runner
