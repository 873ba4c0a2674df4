#include "api/requests.h"

#include "api/openai_requests.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resident::api {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Found by fuzzing the request decoders (fuzz/regressions/requests/): a body of a few hundred KB
// whose options or format nest arrays 100,000 deep crashed the server. Parsing is iterative, but
// dump() (options kept as text, a format schema handed to the converter) recurses once per level
// and overflowed the handler thread's stack (ASan: stack-overflow in nlohmann's serializer).
TEST(RequestDecoding, DeeplyNestedBodiesAreRejectedInsteadOfOverflowingTheStack) {
  const RequestDefaults defaults;
  const std::string deep = Nested(100000);
  for (const std::string& body : {R"({"model":"m","options":{"x":)" + deep + "}}",
                                  R"({"model":"m","format":{"x":)" + deep + "}}",
                                  R"({"model":"m","zzz":)" + deep + "}"}) {
    auto g = DecodeGenerate(body, defaults);
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(g.status().message().find("nested deeper than 256"), std::string::npos) << g.status().message();
    EXPECT_FALSE(DecodeChat(body, defaults).ok());
    EXPECT_FALSE(DecodeEmbed(body, defaults, false).ok());
  }
}

TEST(RequestDecoding, NestingUpToTheLimitDecodes) {
  const RequestDefaults defaults;
  // The body object is level 1, "options" level 2: kMaxJsonDepth levels in all.
  auto g = DecodeGenerate(R"({"model":"m","options":{"x":)" + Nested(kMaxJsonDepth - 2) + "}}", defaults);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_FALSE(g->options.request_json.empty());
  EXPECT_FALSE(
      DecodeGenerate(R"({"model":"m","options":{"x":)" + Nested(kMaxJsonDepth - 1) + "}}", defaults).ok());
  // Brackets inside strings, escaped quotes included, are text, not nesting.
  const std::string text(1000, '[');
  auto quoted = DecodeGenerate(R"({"model":"m","prompt":"\")" + text + R"(\\"})", defaults);
  ASSERT_TRUE(quoted.ok()) << quoted.status().message();
  EXPECT_EQ(quoted->prompt, "\"" + text + "\\");
}

using nlohmann::json;

std::string ErrorOf(const Status& st) { return st.ok() ? "ok" : st.message(); }

// Issue 20, item 4: every input that scales memory or time is bounded before any work.
TEST(RequestDecoding, ValuesAreCountedBeforeTheBodyIsParsed) {
  std::string values = "[0";
  for (size_t i = 1; i < kMaxJsonValues; ++i) values += ",0";
  EXPECT_TRUE(CheckJsonShape(values + "]").ok());  // kMaxJsonValues values
  EXPECT_EQ(ErrorOf(CheckJsonShape(values + ",0]")), "request body too complex: more than 1048576 JSON values");
  EXPECT_TRUE(CheckJsonShape("\"" + std::string(2000000, ',') + "\"").ok());  // commas in a string are text
}

TEST(RequestDecoding, StopStringsAreBoundedInNumberAndLength) {
  const RequestDefaults d;
  auto stops = [](size_t n, size_t len) {
    json a = json::array();
    for (size_t i = 0; i < n; ++i) a.push_back(std::string(len, 'x'));
    return json{{"model", "m"}, {"options", {{"stop", a}}}}.dump();
  };
  EXPECT_TRUE(DecodeGenerate(stops(kMaxStopStrings, kMaxStopBytes), d).ok());
  EXPECT_EQ(ErrorOf(DecodeGenerate(stops(kMaxStopStrings + 1, 1), d).status()), "too many stop strings: 65 (at most 64)");
  EXPECT_EQ(ErrorOf(DecodeChat(stops(1, kMaxStopBytes + 1), d).status()),
            "a stop string of 1025 bytes is too long (at most 1024)");
  EXPECT_FALSE(DecodeGenerate(json{{"model", "m"}, {"options", {{"stop", std::string(5000, 'x')}}}}.dump(), d).ok());
  // A model's PARAMETER stop lines are held to the same bounds when options are resolved.
  std::vector<std::pair<std::string, std::string>> params(kMaxStopStrings + 1, {"stop", "s"});
  EXPECT_EQ(ErrorOf(ResolveOptions(ModelOptions{}, params, d).status()),
            "the model's Modelfile parameters: too many stop strings: 65 (at most 64)");
}

TEST(RequestDecoding, AFormatSchemaIsBoundedInSizeAndAlternatives) {
  json values = json::array();
  for (int i = 0; i < 1000; ++i) values.push_back(i);
  EXPECT_TRUE(GrammarForFormat(json{{"enum", values}}).ok());
  values.push_back(1000);
  EXPECT_EQ(ErrorOf(GrammarForFormat(json{{"enum", values}}).status()),
            "the format's JSON schema has 1001 enum values and anyOf/oneOf branches (at most 1000 in all)");
  // Alternatives anywhere count together.
  json nested{{"type", "object"},
              {"properties",
               {{"a", {{"anyOf", json::array({{{"type", "string"}}, {{"type", "number"}}})}}},
                {"b", {{"type", "array"}, {"items", {{"enum", json(std::vector<int>(999, 1))}}}}}}}};
  EXPECT_EQ(ErrorOf(GrammarForFormat(nested).status()),
            "the format's JSON schema has 1001 enum values and anyOf/oneOf branches (at most 1000 in all)");
  json big{{"type", "object"}, {"description", std::string(kMaxFormatBytes, 'd')}};
  EXPECT_NE(ErrorOf(GrammarForFormat(big).status()).find("bytes (at most 65536)"), std::string::npos);
}

TEST(RequestDecoding, CreateIsBoundedBeforeAnythingIsWritten) {
  json licenses = json::array();
  for (size_t i = 0; i <= store::kMaxLicenses; ++i) licenses.push_back("l");
  EXPECT_EQ(ErrorOf(DecodeCreate(json{{"model", "x"}, {"from", "m"}, {"license", licenses}}.dump()).status()),
            "too many licenses: 65 (at most 64)");
  EXPECT_EQ(ErrorOf(DecodeCreate(json{{"model", "x"}, {"from", "m"}, {"system", std::string((16u << 20) + 1, 's')}}.dump())
                        .status()),
            "the system message is 16777217 bytes, more than a model may carry (16777216 bytes)");
  json messages = json::array();
  for (size_t i = 0; i <= store::kMaxMessages; ++i) messages.push_back({{"role", "user"}, {"content", "c"}});
  EXPECT_EQ(ErrorOf(DecodeCreate(json{{"model", "x"}, {"from", "m"}, {"messages", messages}}.dump()).status()),
            "too many messages: 4097 (at most 4096)");
  json stops = json::array();
  for (int i = 0; i < 65; ++i) stops.push_back("s" + std::to_string(i));
  EXPECT_EQ(ErrorOf(DecodeCreate(json{{"model", "x"}, {"from", "m"}, {"parameters", {{"stop", stops}}}}.dump()).status()),
            "too many stop strings: 65 (at most 64)");
  EXPECT_TRUE(DecodeCreate(json{{"model", "x"}, {"from", "m"}, {"license", {"MIT"}}, {"system", "s"}}.dump()).ok());
}

TEST(RequestDecoding, ModelRoutesTakeTheModelOrTheOlderName) {
  EXPECT_EQ(DecodeShow(R"({"model":"llama3.2"})")->model, "llama3.2");
  EXPECT_EQ(DecodeShow(R"({"name":"llama3.2"})")->model, "llama3.2");
  EXPECT_EQ(DecodeDelete(R"({"model":"m","name":"n"})")->model, "m");
  EXPECT_EQ(ErrorOf(DecodeShow("{}").status()), "model is required");
  EXPECT_EQ(ErrorOf(DecodeDelete(R"({"model":""})").status()), "model is required");
  EXPECT_EQ(ErrorOf(DecodeShow(R"({"model":7})").status()), R"(invalid value for "model": expected a string, got number)");
  EXPECT_EQ(ErrorOf(DecodeShow("").status()), "missing request body");

  auto copy = DecodeCopy(R"({"source":"a","destination":"b:v2"})");
  ASSERT_TRUE(copy.ok()) << copy.status().message();
  EXPECT_EQ(copy->source, "a");
  EXPECT_EQ(copy->destination, "b:v2");
  EXPECT_EQ(ErrorOf(DecodeCopy(R"({"source":"a"})").status()), "destination is required");
  EXPECT_EQ(ErrorOf(DecodeCopy(R"({"destination":"b","name":"a"})").status()), "source is required");
}

TEST(RequestDecoding, CreateTakesAModelfileOrOllamasStructuredFields) {
  auto text = DecodeCreate(R"({"model":"mine","modelfile":"FROM /m.gguf\nPARAMETER temperature 0.5\nSYSTEM hi","stream":false})");
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(text->model, "mine");
  EXPECT_FALSE(text->stream);
  EXPECT_EQ(text->modelfile.from, "/m.gguf");
  EXPECT_EQ(text->modelfile.system, "hi");
  ASSERT_EQ(text->modelfile.parameters.size(), 1u);

  auto fields = DecodeCreate(R"({"model":"mine","from":"base","template":"{{ .Prompt }}","system":"be brief",
    "parameters":{"temperature":0.7,"stop":["<a>","<b>"],"use_mmap":false},
    "messages":[{"role":"user","content":"hi"},{"role":"assistant"}],"license":["MIT","BSD"]})");
  ASSERT_TRUE(fields.ok()) << fields.status().message();
  EXPECT_TRUE(fields->stream);
  const store::Modelfile& mf = fields->modelfile;
  EXPECT_EQ(mf.from, "base");
  EXPECT_TRUE(mf.has_template);
  EXPECT_EQ(mf.template_text, "{{ .Prompt }}");
  EXPECT_TRUE(mf.has_system);
  EXPECT_EQ(mf.parameters.size(), 4u);  // stop twice
  ASSERT_EQ(mf.messages.size(), 2u);
  EXPECT_EQ(mf.messages[1], (std::pair<std::string, std::string>{"assistant", ""}));
  EXPECT_EQ(mf.licenses, (std::vector<std::string>{"MIT", "BSD"}));

  EXPECT_EQ(ErrorOf(DecodeCreate(R"({"model":"m"})").status()), "neither 'from' nor 'modelfile' was specified");
  EXPECT_NE(ErrorOf(DecodeCreate(R"({"model":"m","modelfile":"PARAMETER temperature 1"})").status()).find("FROM"),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeCreate(R"({"model":"m","from":"b","quantize":"q4_K_M"})").status()).find("quantize"),
            std::string::npos);
  EXPECT_TRUE(DecodeCreate(R"({"model":"m","from":"b","quantize":"","adapters":{},"files":null})").ok());
  EXPECT_NE(ErrorOf(DecodeCreate(R"({"model":"m","from":"b","adapters":{"a":"sha256:00"}})").status()).find("adapters"),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeCreate(R"({"model":"m","from":"b","files":{"a.gguf":"sha256:00"}})").status()).find("files"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(DecodeCreate(R"({"model":"m","from":"b","messages":[{"role":"tool","content":"x"}]})").status()),
            "message role must be system, user or assistant");
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","parameters":{"temperature":"hot"}})").ok());
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","parameters":{"bogus":1}})").ok());
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","parameters":{"stop":[["x"]]}})").ok());
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","license":3})").ok());
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","stream":"yes"})").ok());
  EXPECT_FALSE(DecodeCreate(R"({"model":"m","from":"b","system":["x"]})").ok());
}

// Found with LangChain's OpenAI completion class: a prompt array of one string answered
// `500 [json.exception.invalid_iterator.212] cannot compare iterators of different containers`.
TEST(OpenAiRequestDecoding, ACompletionPromptIsAStringOrAnArrayOfOneString) {
  const RequestDefaults defaults;
  auto one = DecodeOpenAiCompletion(R"({"model":"tiny","max_tokens":3,"prompt":["Once upon a time"]})", defaults);
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_EQ(one->prompt, "Once upon a time");
  EXPECT_EQ(one->options.num_predict, 3);
  auto plain = DecodeOpenAiCompletion(R"({"model":"tiny","prompt":"Once","suffix":"end","stream":true})", defaults);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->prompt, "Once");
  EXPECT_EQ(plain->suffix, "end");
  EXPECT_TRUE(plain->stream);
  for (const char* prompt : {R"(["a","b"])", "[]", "[1,2]", "[[\"a\"]]", "7", "null", "{}"}) {
    auto bad = DecodeOpenAiCompletion(std::string(R"({"model":"tiny","prompt":)") + prompt + "}", defaults);
    ASSERT_FALSE(bad.ok()) << prompt;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << prompt;
    EXPECT_EQ(bad.status().message(), "prompt is required: a string (or an array of one string)") << prompt;
  }
  EXPECT_FALSE(DecodeOpenAiCompletion(R"({"model":"tiny"})", defaults).ok());
}

TEST(OpenAiRequestDecoding, ChatFieldsBecomeOllamaOptionsAndMessages) {
  const RequestDefaults defaults;
  auto c = DecodeOpenAiChat(R"({"model":"tiny","stream":true,"stream_options":{"include_usage":true},
    "max_completion_tokens":5,"temperature":0.2,"seed":9,"stop":"x","n":1,"keep_alive":"1m",
    "response_format":{"type":"json_object"},
    "messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null}]})", defaults);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model, "tiny");
  EXPECT_TRUE(c->stream);
  EXPECT_TRUE(c->include_usage);
  EXPECT_EQ(c->options.num_predict, 5);
  EXPECT_EQ(c->options.sampling.seed, 9);
  EXPECT_EQ(c->options.stop, std::vector<std::string>{"x"});
  ASSERT_TRUE(c->keep_alive.has_value());
  EXPECT_FALSE(c->grammar.empty());
  ASSERT_EQ(c->messages.size(), 3u);
  EXPECT_EQ(c->messages[1].content, "ab");
  EXPECT_EQ(c->messages[2].content, "");

  const std::string user = R"("messages":[{"role":"user","content":"x"}])";
  const std::vector<std::string> bads = {std::string(R"({"model":"tiny","messages":[]})"),
                                 std::string(R"({"model":"tiny","messages":[{"content":"x"}]})"),
                                 std::string(R"({"model":"tiny","messages":["x"]})"),
                                 R"({"model":"tiny","temperature":"hot",)" + user + "}",
                                 R"({"model":"tiny","stream":1,)" + user + "}",
                                 R"({"model":"tiny","tools":[{"type":"function"}],)" + user + "}",
                                 R"({"model":"tiny","response_format":{"type":"yaml"},)" + user + "}",
                                 R"({"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"};
  for (const std::string& bad : bads) {
    auto r = DecodeOpenAiChat(bad, defaults);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(OpenAiRequestDecoding, EmbeddingsTakeAStringOrStringsAndAnEncoding) {
  auto e = DecodeOpenAiEmbedding(R"({"model":"tiny","input":["a","b"],"encoding_format":"base64"})");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->inputs, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(e->base64);
  EXPECT_FALSE(DecodeOpenAiEmbedding(R"({"model":"tiny","input":"a"})")->base64);
  EXPECT_EQ(ErrorOf(DecodeOpenAiEmbedding(R"({"model":"tiny","input":[]})").status()), "invalid input");
  EXPECT_FALSE(DecodeOpenAiEmbedding(R"({"model":"tiny","input":[[1,2]]})").ok());
  EXPECT_FALSE(DecodeOpenAiEmbedding(R"({"model":"tiny","input":"a","encoding_format":"hex"})").ok());
  EXPECT_FALSE(DecodeOpenAiEmbedding(R"({"input":"a"})").ok());
}

// Every decoder answers a Status for any value in any field it reads: none throws (a throw is
// a 500 carrying the JSON library's message).
TEST(RequestDecoding, NoFieldOfAnyTypeMakesADecoderThrow) {
  const RequestDefaults defaults;
  const std::vector<std::string> fields = {
      "model", "name", "prompt", "system", "raw", "stream", "keep_alive", "options", "format", "context",
      "suffix", "template", "images", "messages", "tools", "input", "truncate", "source", "destination",
      "modelfile", "from", "parameters", "license", "quantize", "adapters", "files", "stream_options", "n",
      "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop", "response_format",
      "encoding_format", "tool_choice", "parallel_tool_calls", "think", "reasoning_effort", "reasoning", "logprobs",
      "top_logprobs", "dimensions", "verbose"};
  const std::vector<std::string> values = {
      "null", "true", "0", "-1", "1e400", "\"\"", "\"x\"", "[]", "[1]", "[\"x\"]", "[[]]", "{}", "{\"type\":3}",
      "{\"include_usage\":\"yes\"}", "{\"type\":\"json_schema\",\"json_schema\":3}", "[{\"role\":3}]",
      "[{\"role\":\"user\",\"content\":[{\"type\":7}]}]", "{\"stop\":[1]}", "{\"temperature\":{}}",
      "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":3}}]", "{\"type\":\"function\"}",
      "[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"[1\"}}]}]",
      "[{\"role\":\"tool\",\"tool_calls\":3}]", "\"high\"", "99999999999999999999", "{\"effort\":\"max\"}"};
  for (const std::string& field : fields) {
    for (const std::string& value : values) {
      const std::string body = R"({"model":"m","from":"b","messages":[{"role":"user","content":"x"}],")" + field +
                               "\":" + value + "}";
      SCOPED_TRACE(body);
      EXPECT_NO_THROW({
        (void)DecodeGenerate(body, defaults);
        (void)DecodeChat(body, defaults);
        (void)DecodeEmbed(body, defaults, false);
        (void)DecodeEmbed(body, defaults, true);
        (void)DecodeShow(body);
        (void)DecodeCopy(body);
        (void)DecodeDelete(body);
        (void)DecodeCreate(body);
        (void)DecodeOpenAiChat(body, defaults);
        (void)DecodeOpenAiCompletion(body, defaults);
        (void)DecodeOpenAiEmbedding(body);
      });
    }
  }
}

}  // namespace
}  // namespace resident::api
