// Decoding of what issue 15 added to the request bodies: tools, tool calls and results, think,
// logprobs, embedding dimensions, show's verbose, and the OpenAI layer's defaults.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/http_util.h"
#include "api/model_features.h"
#include "api/openai_requests.h"
#include "api/requests.h"

namespace resident::api {
namespace {

const RequestDefaults kDefaults;

std::string ErrorOf(const Status& s) { return s.message(); }

const char* kWeather =
    R"({"type":"function","function":{"name":"get_weather","description":"d",)"
    R"("parameters":{"type":"object","properties":{"city":{"type":"string"}}}}})";

TEST(ToolsDecoding, OllamaChatTakesToolsToolCallsToolResultsThinkAndLogprobs) {
  auto c = DecodeChat(std::string(R"({"model":"m","tools":[)") + kWeather + R"(],"think":"high","logprobs":true,
    "top_logprobs":3,"tool_choice":"required","messages":[{"role":"user","content":"hi"},
    {"role":"assistant","content":"","thinking":"hmm","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
    {"role":"tool","content":"sunny","tool_name":"get_weather"}]})",
                      kDefaults);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->tools.tools.size(), 1u);
  EXPECT_EQ(c->tools.tools[0].name, "get_weather");
  EXPECT_EQ(c->tools.tools[0].description, "d");
  EXPECT_EQ(c->tools.tools[0].parameters, R"({"properties":{"city":{"type":"string"}},"type":"object"})");
  EXPECT_EQ(c->tools.choice, runner::ToolChoice::kRequired);
  EXPECT_TRUE(c->think.given && c->think.on);
  EXPECT_EQ(c->think.level, "high");
  EXPECT_TRUE(c->logprobs);
  EXPECT_EQ(c->top_logprobs, 3);
  ASSERT_EQ(c->messages.size(), 3u);
  EXPECT_EQ(c->messages[1].thinking, "hmm");
  ASSERT_EQ(c->messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(c->messages[1].tool_calls[0].name, "get_weather");
  EXPECT_EQ(c->messages[1].tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(c->messages[2].tool_name, "get_weather");
}

TEST(ToolsDecoding, ThinkAndTopLogprobsAreCheckedAsOllamaChecksThem) {
  auto think = DecodeChat(R"({"model":"m","think":"extreme","messages":[]})", kDefaults);
  EXPECT_EQ(ErrorOf(think.status()),
            R"(invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false))");
  EXPECT_EQ(ErrorOf(DecodeGenerate(R"({"model":"m","think":3})", kDefaults).status()),
            R"(think must be a boolean or string ("high", "medium", "low", "max", true, or false))");
  EXPECT_EQ(ErrorOf(DecodeGenerate(R"({"model":"m","top_logprobs":21})", kDefaults).status()),
            "top_logprobs must be between 0 and 20");
  EXPECT_EQ(ErrorOf(DecodeChat(R"({"model":"m","top_logprobs":-1})", kDefaults).status()),
            "top_logprobs must be between 0 and 20");
  auto off = DecodeGenerate(R"({"model":"m","think":false})", kDefaults);
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off->think.given);
  EXPECT_FALSE(off->think.on);
  EXPECT_FALSE(DecodeGenerate(R"({"model":"m"})", kDefaults)->think.given);
}

TEST(ToolsDecoding, ToolsAreBoundedBeforeAnyWork) {
  std::string many = R"({"model":"m","messages":[],"tools":[)";
  for (size_t i = 0; i <= kMaxTools; ++i) many += std::string(i ? "," : "") + kWeather;
  many += "]}";
  EXPECT_EQ(ErrorOf(DecodeChat(many, kDefaults).status()), "too many tools: 129 (at most 128)");
  // Their JSON together: 256 KiB.
  std::string big = R"({"model":"m","tools":[{"type":"function","function":{"name":"f","description":")" +
                    std::string(300u << 10, 'x') + R"("}}]})";
  EXPECT_NE(ErrorOf(DecodeChat(big, kDefaults).status()).find("bytes of JSON together"), std::string::npos);
  // Their schemas' alternatives, together.
  std::string alternatives = R"({"model":"m","tools":[)";
  for (int t = 0; t < 3; ++t) {
    alternatives += std::string(t ? "," : "") + R"({"type":"function","function":{"name":"f","parameters":{"enum":[)";
    for (int i = 0; i < 400; ++i) alternatives += std::string(i ? "," : "") + std::to_string(i);
    alternatives += "]}}}";
  }
  alternatives += "]}";
  EXPECT_NE(ErrorOf(DecodeChat(alternatives, kDefaults).status()).find("1200 enum values"), std::string::npos);
  EXPECT_EQ(ErrorOf(DecodeChat(R"({"model":"m","tools":[{"type":"code_interpreter"}]})", kDefaults).status()),
            R"(unsupported tool type "code_interpreter": only "function" tools are supported)");
  EXPECT_EQ(ErrorOf(DecodeChat(R"({"model":"m","tools":[{"type":"function","function":{}}]})", kDefaults).status()),
            "every tool's function needs a name");
}

TEST(ToolsDecoding, OpenAiToolChoiceNamedFunctionReasoningEffortAndToolResultNames) {
  auto c = DecodeOpenAiChat(std::string(R"({"model":"m","tools":[)") + kWeather + R"(],
    "tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,
    "reasoning_effort":"minimal","logprobs":true,"top_logprobs":2,"n":2,
    "messages":[{"role":"user","content":"hi"},
      {"role":"assistant","content":null,"reasoning":"r","tool_calls":[{"id":"call_9","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_9","content":"sunny"}]})",
                            kDefaults);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->tools.function, "get_weather");
  EXPECT_EQ(c->tools.choice, runner::ToolChoice::kRequired);
  EXPECT_FALSE(c->tools.parallel_calls);
  EXPECT_EQ(c->think.level, "low");  // minimal
  EXPECT_TRUE(c->logprobs);
  EXPECT_EQ(c->top_logprobs, 2);
  ASSERT_EQ(c->messages.size(), 3u);
  EXPECT_EQ(c->messages[1].thinking, "r");
  ASSERT_EQ(c->messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(c->messages[1].tool_calls[0].id, "call_9");
  EXPECT_EQ(c->messages[1].tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(c->messages[2].tool_name, "get_weather");  // from the call it answers

  runner::GenerateRequest r;
  ASSERT_TRUE(ApplyToolUse(c->tools, &r).ok());
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tool_choice, runner::ToolChoice::kRequired);
  ToolUse unknown = c->tools;
  unknown.function = "nope";
  EXPECT_EQ(ErrorOf(ApplyToolUse(unknown, &r)), R"(tool_choice names the function "nope", which is not among the tools)");

  const std::string user = R"("messages":[{"role":"user","content":"x"}])";
  EXPECT_EQ(ErrorOf(DecodeOpenAiChat(R"({"model":"m","reasoning_effort":"huge",)" + user + "}", kDefaults).status()),
            R"(invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none"))");
  auto none = DecodeOpenAiChat(R"({"model":"m","reasoning":{"effort":"none"},)" + user + "}", kDefaults);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->think.given);
  EXPECT_FALSE(none->think.on);
  EXPECT_EQ(DecodeOpenAiChat(R"({"model":"m","reasoning_effort":"xhigh",)" + user + "}", kDefaults)->think.level, "max");
  EXPECT_FALSE(DecodeOpenAiChat(R"({"model":"m","tool_choice":"sometimes",)" + user + "}", kDefaults).ok());
  EXPECT_FALSE(DecodeOpenAiChat(R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"not json"}}]}]})",
                                kDefaults)
                   .ok());
}

TEST(ToolsDecoding, OpenAiSamplesAtTemperatureOneAndTopPOneUnlessTold) {
  const std::string user = R"("messages":[{"role":"user","content":"x"}])";
  auto plain = DecodeOpenAiChat(R"({"model":"m",)" + user + "}", kDefaults);
  ASSERT_TRUE(plain.ok());
  EXPECT_FLOAT_EQ(plain->options.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(plain->options.sampling.top_p, 1.0f);
  // The defaults go in as the request's options, over a Modelfile's.
  auto resolved = ResolveOptions(plain->options, {{"temperature", "0.3"}}, kDefaults);
  ASSERT_TRUE(resolved.ok());
  EXPECT_FLOAT_EQ(resolved->sampling.temperature, 1.0f);
  auto told = DecodeOpenAiChat(R"({"model":"m","temperature":0.2,"top_p":0.5,)" + user + "}", kDefaults);
  EXPECT_FLOAT_EQ(told->options.sampling.temperature, 0.2f);
  EXPECT_FLOAT_EQ(told->options.sampling.top_p, 0.5f);
  auto completion = DecodeOpenAiCompletion(R"({"model":"m","prompt":"p","logprobs":4,"top_p":0})", kDefaults);
  ASSERT_TRUE(completion.ok()) << completion.status().message();
  EXPECT_FLOAT_EQ(completion->options.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(completion->options.sampling.top_p, 1.0f);  // 0 is "not given" there, as in Ollama
  EXPECT_TRUE(completion->logprobs);
  EXPECT_EQ(completion->top_logprobs, 4);
  EXPECT_FALSE(DecodeOpenAiCompletion(R"({"model":"m","prompt":"p","logprobs":0})", kDefaults)->logprobs);
  EXPECT_EQ(ErrorOf(DecodeOpenAiCompletion(R"({"model":"m","prompt":"p","logprobs":30})", kDefaults).status()),
            "top_logprobs must be between 0 and 20");
}

TEST(ToolsDecoding, EmbeddingDimensionsAndVerboseShow) {
  EXPECT_EQ(DecodeEmbed(R"({"model":"m","input":"x","dimensions":8})", kDefaults, false)->dimensions, 8);
  EXPECT_FALSE(DecodeEmbed(R"({"model":"m","input":"x","dimensions":"8"})", kDefaults, false).ok());
  EXPECT_EQ(DecodeOpenAiEmbedding(R"({"model":"m","input":"x","dimensions":16})")->dimensions, 16);
  EXPECT_TRUE(DecodeShow(R"({"model":"m","verbose":true})")->verbose);
  EXPECT_FALSE(DecodeShow(R"({"model":"m"})")->verbose);
}

TEST(EmbeddingDimensions, CutThenNormalizedAgainAsOllamaDoes) {
  std::vector<std::vector<float>> e = {{0.6f, 0.0f, 0.8f}, {1.0f, 0.0f}};
  ApplyDimensions(2, &e);
  EXPECT_EQ(e[0], (std::vector<float>{1.0f, 0.0f}));  // (0.6, 0) renormalized
  EXPECT_EQ(e[1], (std::vector<float>{1.0f, 0.0f}));  // as wide already: untouched
  std::vector<std::vector<float>> whole = {{0.6f, 0.8f}};
  ApplyDimensions(0, &whole);
  ApplyDimensions(-3, &whole);
  ApplyDimensions(9, &whole);
  EXPECT_EQ(whole[0], (std::vector<float>{0.6f, 0.8f}));
}

}  // namespace
}  // namespace resident::api

namespace resident::api {
namespace {

// A file that cannot be read: a plain request goes on (the load reports the file, or a runner
// that needs none answers); one that asks for tools or thinking gets the file's error.
TEST(ModelFeatures, AnUnreadableFileFailsOnlyRequestsThatAskSomethingOfIt) {
  store::ModelEntry entry;
  entry.name = "m:latest";
  entry.path = "/nonexistent/m.gguf";
  auto plain = CheckModelFeatures(entry, "m", /*tools=*/false, ThinkValue{});
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(*plain, runner::Think::kDefault);
  auto off = CheckModelFeatures(entry, "m", /*tools=*/false, ThinkValue{.given = true, .on = false});
  EXPECT_TRUE(off.ok());
  auto tools = CheckModelFeatures(entry, "m", /*tools=*/true, ThinkValue{});
  ASSERT_FALSE(tools.ok());
  EXPECT_EQ(tools.status().code(), StatusCode::kNotFound) << tools.status().message();
  auto think = CheckModelFeatures(entry, "m", /*tools=*/false, ThinkValue{.given = true, .on = true});
  EXPECT_FALSE(think.ok());
}

}  // namespace
}  // namespace resident::api
