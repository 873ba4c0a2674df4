// The OpenAI-compatible routes on the real `resident serve` with a synthetic model.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <sstream>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class OpenAiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir() + "/openai-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

TEST_F(OpenAiTest, ChatCompletionsWholeAndStreamedWithUsage) {
  ServerProcess server(dir_);
  json body{{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", "hi"}}}},
            {"max_tokens", 5},
            {"seed", 7},
            {"temperature", 0.5}};
  auto r = Post(server.port(), "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 5);
  std::string whole = j["choices"][0]["message"]["content"];

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto s = Post(server.port(), "/v1/chat/completions", body.dump());
  ASSERT_EQ(s.status, 200);
  auto events = SseEvents(s.body);
  ASSERT_GE(events.size(), 4u) << s.body;
  EXPECT_EQ(events.back(), "[DONE]");
  json usage = events[events.size() - 2];
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 5);
  json finish = events[events.size() - 3];
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  for (size_t i = 0; i + 2 < events.size(); ++i) streamed += events[i]["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(streamed, whole);  // same seed, same text
}

TEST_F(OpenAiTest, CompletionsEmbeddingsModelsAndKeepAlive) {
  ServerProcess server(dir_);
  int port = server.port();
  auto c = Post(port, "/v1/completions", R"({"model":"tiny","prompt":"Once","max_tokens":3,"keep_alive":0})");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json()["object"], "text_completion");
  EXPECT_TRUE(c.json()["choices"][0]["text"].is_string());
  EXPECT_EQ(c.json()["usage"]["completion_tokens"], 3);
  EXPECT_TRUE(server.Children().empty());  // keep_alive 0 honoured: unloaded after the request

  auto e = Post(port, "/v1/embeddings", R"({"model":"tiny","input":["a","b"]})");
  ASSERT_EQ(e.status, 200) << e.body;
  EXPECT_EQ(e.json()["object"], "list");
  ASSERT_EQ(e.json()["data"].size(), 2u);
  EXPECT_EQ(e.json()["data"][1]["index"], 1);
  EXPECT_EQ(e.json()["data"][0]["embedding"].size(), 256u);
  auto b64 = Post(port, "/v1/embeddings", R"({"model":"tiny","input":"a","encoding_format":"base64"})");
  ASSERT_EQ(b64.status, 200);
  EXPECT_EQ(b64.json()["data"][0]["embedding"].get<std::string>().size(), 1368u);  // 1024 bytes of float32

  auto models = Get(port, "/v1/models").json();
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "tiny:latest");
  EXPECT_EQ(models["data"][0]["object"], "model");
  auto one = Get(port, "/v1/models/tiny:latest");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.json()["id"], "tiny:latest");
}

TEST_F(OpenAiTest, ErrorsUseOpenAisShape) {
  ServerProcess server(dir_);
  int port = server.port();
  auto nf = Get(port, "/v1/models/ghost");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.json()["error"]["type"], "not_found_error");
  EXPECT_TRUE(nf.json()["error"]["param"].is_null());
  auto missing = Post(port, "/v1/chat/completions", R"({"model":"ghost","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(missing.json()["error"]["message"].is_string());
  auto bad = Post(port, "/v1/chat/completions", "{oops");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["error"]["type"], "invalid_request_error");
  EXPECT_EQ(Post(port, "/v1/chat/completions", R"({"model":"tiny","messages":[]})").status, 400);
  auto img = Post(port, "/v1/chat/completions",
                  R"({"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})");
  EXPECT_EQ(img.status, 400);
  EXPECT_EQ(Post(port, "/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"keep_alive":"1d"})").status, 400);
  EXPECT_EQ(Post(port, "/v1/embeddings", R"({"model":"tiny","input":[[1,2]]})").status, 400);
  auto json_mode = Post(port, "/v1/chat/completions",
                        R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":8,"response_format":{"type":"json_object"}})");
  ASSERT_EQ(json_mode.status, 200) << json_mode.body;
  EXPECT_EQ(json_mode.json()["choices"][0]["message"]["content"].get<std::string>().substr(0, 1), "{");
  EXPECT_TRUE(server.alive());
}

// Found with LangChain's OpenAI completion class, which sends the prompt as an array: an array
// of one string answered 500 "[json.exception.invalid_iterator.212] cannot compare iterators of
// different containers", streamed or not.
TEST_F(OpenAiTest, ACompletionPromptArrayOfOneStringIsServedStreamedOrNot) {
  ServerProcess server(dir_);
  int port = server.port();
  auto whole = Post(port, "/v1/completions", R"({"model":"tiny","max_tokens":3,"prompt":["Once upon a time"]})");
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(whole.json()["usage"]["completion_tokens"], 3);
  auto streamed =
      Post(port, "/v1/completions", R"({"model":"tiny","max_tokens":3,"prompt":["Once upon a time"],"stream":true})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  auto events = SseEvents(streamed.body);
  ASSERT_FALSE(events.empty()) << streamed.body;
  EXPECT_EQ(events.back(), "[DONE]");
  // Anything else is a 400 in OpenAI's shape, never a 500 with a library's message.
  for (const char* body : {R"({"model":"tiny","prompt":["a","b"]})", R"({"model":"tiny","prompt":[1,2]})",
                           R"({"model":"tiny","prompt":["a"],"stream":true,"stream_options":{"include_usage":"yes"}})",
                           R"({"model":"tiny","prompt":"a","response_format":{"type":3}})",
                           R"({"model":"tiny","input":"a","encoding_format":7})"}) {
    for (const char* path : {"/v1/completions", "/v1/embeddings"}) {
      auto r = Post(port, path, body);
      EXPECT_EQ(r.status, 400) << path << " " << body << ": " << r.body;
      EXPECT_EQ(r.json()["error"]["type"], "invalid_request_error") << path << " " << body << ": " << r.body;
      EXPECT_EQ(r.body.find("json.exception"), std::string::npos) << r.body;
    }
  }
  // httplib's own answers on /v1 routes have OpenAI's shape too.
  auto unknown = Get(port, "/v1/nothing-here");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.json()["error"]["type"], "not_found_error") << unknown.body;
  EXPECT_TRUE(server.alive());
}

}  // namespace
}  // namespace resident::testing
