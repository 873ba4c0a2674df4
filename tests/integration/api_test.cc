// The Ollama API's request handling. Two halves:
//  - ApiServer in this process, on a fake catalog (hand-made ModelEntry with Modelfile defaults)
//    and fake runners that record what they were asked: what a request turns into.
//  - the real `resident serve` binary with a synthetic model: format grammars, suffix, context,
//    raw, body limits and bad input end to end.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "api/server.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// ---- in-process: fake catalog and recording runners -------------------------------------------

struct Recorder {
  std::mutex mu;
  std::vector<runner::GenerateRequest> generated;
  std::vector<runner::LoadRequest> loads;
  bool fim = false;
};

class RecordingRunner final : public runner::ModelRunner {
 public:
  explicit RecordingRunner(Recorder* rec) : rec_(rec) {
    facts_.architecture = "llama";
    facts_.n_params = 20'000'000;
    facts_.fim = rec->fim;
  }
  Result<runner::DoneEvent> Generate(const runner::GenerateRequest& request,
                                     const std::function<bool(std::string_view)>& on_text, std::stop_token) override {
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      rec_->generated.push_back(request);
    }
    on_text("{\"a\":");
    on_text("1}");
    runner::DoneEvent d;
    d.done_reason = "stop";
    d.prompt_eval_count = 7;
    d.eval_count = 2;
    d.context = {1, 2, 3};
    return d;
  }
  Result<runner::EmbedResult> Embed(const runner::EmbedRequest& r, std::stop_token) override {
    runner::EmbedResult e;
    for (size_t i = 0; i < r.inputs.size(); ++i) e.embeddings.push_back({0.6f, 0.8f});
    e.prompt_eval_count = static_cast<int32_t>(r.inputs.size());
    return e;
  }
  Result<std::vector<int32_t>> Tokenize(std::string_view, bool) override { return std::vector<int32_t>{}; }
  Result<runner::MemoryResult> Memory() override { return runner::MemoryResult{}; }
  Status Health(std::chrono::milliseconds) override { return Status::Ok(); }
  const runner::ModelFacts& facts() const override { return facts_; }
  pid_t pid() const override { return 1; }
  bool alive() const override { return true; }
  void Close() override {}

 private:
  Recorder* rec_;
  runner::ModelFacts facts_;
};

class RecordingFactory final : public runner::RunnerFactory {
 public:
  explicit RecordingFactory(Recorder* rec) : rec_(rec) {}
  Result<std::unique_ptr<runner::ModelRunner>> Start(const runner::LoadRequest& request,
                                                     const std::function<void(float)>&) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    rec_->loads.push_back(request);
    return std::unique_ptr<runner::ModelRunner>(std::make_unique<RecordingRunner>(rec_));
  }

 private:
  Recorder* rec_;
};

class FakeCatalog final : public store::ModelCatalog {
 public:
  Result<store::ModelEntry> Find(std::string_view name) const override {
    for (const auto& e : entries) {
      if (e.name == name || e.name == std::string(name) + ":latest") return e;
    }
    if (name.find('/') != std::string_view::npos) return Status::InvalidArgument("invalid model name");
    return Status::NotFound("model \"" + std::string(name) + "\" not found, try pulling it first");
  }
  std::vector<store::ModelEntry> List() const override { return entries; }
  std::vector<store::ModelEntry> entries;
};

store::ModelEntry PirateEntry() {
  store::ModelEntry e;
  e.name = "pirate:latest";
  e.path = "/models/pirate.gguf";
  e.size = 1234;
  e.system = "You are a pirate.";
  e.parameters = {{"temperature", "0.25"}, {"num_ctx", "1024"}, {"stop", "<end>"}, {"stop", "ARR"}, {"top_k", "7"}};
  e.messages = {{"user", "ahoy"}, {"assistant", "arr"}};
  e.family = "llama";
  e.parameter_size = "20M";
  e.quantization_level = "F16";
  return e;
}

class InProcessApi : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_.entries.push_back(PirateEntry());
    store::ModelEntry bare;
    bare.name = "bare:latest";
    bare.path = "/models/bare.gguf";
    catalog_.entries.push_back(bare);
    sched::Scheduler::Options so;
    so.timer_thread = false;
    scheduler_ = std::make_unique<sched::Scheduler>(so, factory_, clock_);
    api::ApiServer::Options ao;
    ao.port = 0;
    ao.max_body_bytes = 1 << 20;
    server_ = std::make_unique<api::ApiServer>(ao, *scheduler_, catalog_, clock_);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { server_->Serve(); });
  }
  void TearDown() override {
    server_->Stop();
    thread_.join();
  }
  HttpReply PostJson(const std::string& path, const json& body) { return Post(server_->port(), path, body.dump()); }
  runner::GenerateRequest Last() {
    std::lock_guard<std::mutex> lock(rec_.mu);
    EXPECT_FALSE(rec_.generated.empty());
    return rec_.generated.empty() ? runner::GenerateRequest{} : rec_.generated.back();
  }

  Recorder rec_;
  RecordingFactory factory_{&rec_};
  FakeCatalog catalog_;
  SystemClock clock_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::unique_ptr<api::ApiServer> server_;
  std::thread thread_;
};

TEST_F(InProcessApi, ModelfileDefaultsApplyAndRequestOptionsOverrideThem) {
  auto r = PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "hi"}, {"stream", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto g = Last();
  ASSERT_EQ(g.messages.size(), 4u);  // SYSTEM, the two MESSAGEs, the prompt
  EXPECT_EQ(g.messages[0].role, "system");
  EXPECT_EQ(g.messages[0].content, "You are a pirate.");
  EXPECT_EQ(g.messages[1].content, "ahoy");
  EXPECT_EQ(g.messages[3].role, "user");
  EXPECT_EQ(g.messages[3].content, "hi");
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0.25f);
  EXPECT_EQ(g.sampling.top_k, 7);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"<end>", "ARR"}));
  {
    std::lock_guard<std::mutex> lock(rec_.mu);
    ASSERT_EQ(rec_.loads.size(), 1u);
    EXPECT_EQ(rec_.loads[0].n_ctx, 1024);  // a load-time PARAMETER
  }
  // The request's options and system win; its stop replaces the model's.
  r = PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "hi"}, {"system", "Be brief."}, {"stream", false},
                                 {"options", {{"temperature", 0.9}, {"stop", {"X"}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  g = Last();
  EXPECT_EQ(g.messages[0].content, "Be brief.");
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0.9f);
  EXPECT_EQ(g.sampling.top_k, 7);
  EXPECT_EQ(g.stop, std::vector<std::string>{"X"});
  // With a context, the MESSAGEs are not sent again.
  r = PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "more"}, {"context", {1, 2}}, {"stream", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  g = Last();
  EXPECT_EQ(g.context, (std::vector<int32_t>{1, 2}));
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(r.json()["context"], json({1, 2, 3}));
}

TEST_F(InProcessApi, ChatGetsTheModelfileSystemAndMessages) {
  json msgs = json::array({{{"role", "user"}, {"content", "hello"}}});
  auto r = PostJson("/api/chat", {{"model", "pirate"}, {"messages", msgs}, {"stream", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto g = Last();
  ASSERT_EQ(g.messages.size(), 4u);
  EXPECT_EQ(g.messages[0].role, "system");
  EXPECT_EQ(g.messages[3].content, "hello");
  EXPECT_EQ(r.json()["message"]["content"], "{\"a\":1}");
  // A conversation with its own system message keeps it; the model's is not added.
  msgs = json::array({{{"role", "system"}, {"content", "mine"}}, {{"role", "user"}, {"content", "x"}}});
  ASSERT_EQ(PostJson("/api/chat", {{"model", "pirate"}, {"messages", msgs}, {"stream", false}}).status, 200);
  g = Last();
  ASSERT_EQ(g.messages.size(), 4u);
  EXPECT_EQ(g.messages[0].content, "ahoy");
  EXPECT_EQ(g.messages[2].content, "mine");
}

TEST_F(InProcessApi, RawTemplateFormatSuffixAndImages) {
  // raw: the prompt as it is.
  ASSERT_EQ(PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "p"}, {"raw", true}, {"stream", false}}).status, 200);
  auto g = Last();
  EXPECT_TRUE(g.messages.empty());
  EXPECT_EQ(g.prompt, "p");
  // The pass-through Go template means raw; any other template is ignored.
  ASSERT_EQ(PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "q"}, {"template", "{{ .Prompt }}"}, {"stream", false}}).status, 200);
  EXPECT_EQ(Last().prompt, "q");
  ASSERT_EQ(PostJson("/api/generate", {{"model", "pirate"}, {"prompt", "q"}, {"template", "{{ .System }} {{ .Prompt }}"}, {"stream", false}}).status, 200);
  EXPECT_EQ(Last().messages.size(), 4u);
  // format: "json" and a schema become grammars.
  ASSERT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", "q"}, {"format", "json"}, {"stream", false}}).status, 200);
  EXPECT_NE(Last().grammar.find("root"), std::string::npos);
  json schema{{"type", "object"}, {"properties", {{"age", {{"type", "integer"}}}}}, {"required", {"age"}}};
  ASSERT_EQ(PostJson("/api/chat", {{"model", "bare"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"format", schema}, {"stream", false}}).status, 200);
  EXPECT_NE(Last().grammar.find("age"), std::string::npos) << Last().grammar;
  auto bad = PostJson("/api/generate", {{"model", "bare"}, {"prompt", "q"}, {"format", "yaml"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.json()["error"].get<std::string>().find("format"), std::string::npos);
  EXPECT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", "q"}, {"format", {{"type", "object"}, {"properties", 5}}}}).status, 400);
  // suffix: 400 when the model has no FIM tokens.
  auto s = PostJson("/api/generate", {{"model", "bare"}, {"prompt", "def f("}, {"suffix", "return x"}});
  EXPECT_EQ(s.status, 400);
  EXPECT_EQ(s.json()["error"], "\"bare\" does not support insert");
  // images: 400.
  auto i = PostJson("/api/generate", {{"model", "bare"}, {"prompt", "q"}, {"images", {"aGVsbG8="}}});
  EXPECT_EQ(i.status, 400);
  EXPECT_NE(i.json()["error"].get<std::string>().find("images are not supported"), std::string::npos);
}

TEST_F(InProcessApi, TagsAndPsReportTheCatalogDetails) {
  ASSERT_EQ(PostJson("/api/generate", {{"model", "pirate"}}).json()["done_reason"], "load");
  auto tags = Get(server_->port(), "/api/tags").json();
  ASSERT_EQ(tags["models"].size(), 2u);
  EXPECT_EQ(tags["models"][0]["details"]["family"], "llama");
  EXPECT_EQ(tags["models"][0]["details"]["parameter_size"], "20M");
  EXPECT_EQ(tags["models"][0]["details"]["quantization_level"], "F16");
  auto ps = Get(server_->port(), "/api/ps").json();
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["details"]["quantization_level"], "F16");
  httplib::Client c("127.0.0.1", server_->port());
  auto head = c.Head("/api/tags");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  auto root = c.Head("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200);
}

TEST_F(InProcessApi, BadInputGetsClearFourHundredsAndTheServerLivesOn) {
  int port = server_->port();
  auto r = Post(port, "/api/generate", "{\"model\": ");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"], "invalid JSON in request body");
  EXPECT_EQ(Post(port, "/api/chat", "[1,2]").status, 400);
  EXPECT_EQ(PostJson("/api/generate", {{"model", 5}, {"prompt", "x"}}).status, 400);
  EXPECT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", 5}}).status, 400);
  EXPECT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", "x"}, {"stream", "yes"}}).status, 400);
  EXPECT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", "x"}, {"options", {{"temperature", "hot"}}}}).status, 400);
  EXPECT_EQ(PostJson("/api/chat", {{"model", "bare"}, {"messages", "hi"}}).status, 400);
  EXPECT_EQ(PostJson("/api/chat", {{"model", "bare"}, {"messages", {{{"content", "no role"}}}}}).status, 400);
  EXPECT_EQ(PostJson("/api/embed", {{"model", "bare"}, {"input", {1, 2}}}).status, 400);
  EXPECT_EQ(PostJson("/api/chat", {{"messages", json::array()}}).json()["error"], "model is required");
  auto nf = PostJson("/api/chat", {{"model", "ghost"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.json()["error"], "model \"ghost\" not found, try pulling it first");
  auto ka = PostJson("/api/embed", {{"model", "bare"}, {"input", "x"}, {"keep_alive", true}});
  EXPECT_EQ(ka.status, 400);
  EXPECT_EQ(ka.json()["error"],
            "invalid keep_alive: expected a duration string or a number of seconds, got a boolean");
  auto ka_array = PostJson("/api/embed", {{"model", "bare"}, {"input", "x"}, {"keep_alive", json::array()}});
  EXPECT_EQ(ka_array.status, 400);
  EXPECT_EQ(ka_array.json()["error"],
            "invalid keep_alive: expected a duration string or a number of seconds, got an array");
  // Over the body limit (1 MiB here): 413 with an Ollama-shaped error.
  std::string big = json{{"model", "bare"}, {"prompt", std::string(2 << 20, 'a')}}.dump();
  auto too_big = Post(port, "/api/generate", big);
  EXPECT_EQ(too_big.status, 413);
  EXPECT_TRUE(too_big.json().contains("error")) << too_big.body;
  // Non-UTF-8 bytes in a JSON string are not JSON.
  EXPECT_EQ(Post(port, "/api/chat", "{\"model\":\"bare\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}").status, 400);
  // Still serving.
  EXPECT_EQ(PostJson("/api/generate", {{"model", "bare"}, {"prompt", "ok"}, {"stream", false}}).status, 200);
  EXPECT_EQ(Get(port, "/api/nothing").status, 404);
}

TEST_F(InProcessApi, StreamedGenerateEndsWithStatisticsInNanoseconds) {
  auto r = PostJson("/api/generate", {{"model", "bare"}, {"prompt", "x"}});
  ASSERT_EQ(r.status, 200);
  auto lines = r.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["response"], "{\"a\":");
  EXPECT_EQ(lines[0]["done"], false);
  EXPECT_EQ(lines[2]["done"], true);
  EXPECT_EQ(lines[2]["done_reason"], "stop");
  EXPECT_EQ(lines[2]["eval_count"], 2);
  EXPECT_EQ(lines[2]["context"], json({1, 2, 3}));
  EXPECT_GT(lines[2]["total_duration"].get<int64_t>(), 0);
}

// ---- the real binary --------------------------------------------------------------------------

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir() + "/api-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

TEST_F(ApiTest, FormatSchemaConstrainsTheOutputOfARealModel) {
  ServerProcess server(dir_);
  json schema{{"type", "object"},
              {"properties", {{"n", {{"type", "integer"}}}}},
              {"required", {"n"}},
              {"additionalProperties", false}};
  json body{{"model", "tiny"}, {"prompt", "give me json"}, {"format", schema}, {"stream", false},
            {"options", {{"num_predict", 40}, {"seed", 1}}}};
  auto r = Post(server.port(), "/api/generate", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text = r.json()["response"];
  // Random weights, but the grammar only lets {"n": <digits>} through (possibly cut by num_predict).
  std::string compact;
  for (char c : text) {
    if (c != ' ' && c != '\n' && c != '\t') compact += c;
  }
  ASSERT_GE(compact.size(), 5u) << text;
  EXPECT_EQ(compact.substr(0, 5), "{\"n\":") << text;
  if (r.json()["done_reason"] == "stop") {
    EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded()) << text;
  }
}

TEST_F(ApiTest, SuffixContextRawAndOversizedBodies) {
  ServerProcess server(dir_);
  int port = server.port();
  auto s = Post(port, "/api/generate", R"({"model":"tiny","prompt":"a","suffix":"b"})");
  EXPECT_EQ(s.status, 400);
  EXPECT_EQ(s.json()["error"], "\"tiny\" does not support insert");
  // context continues an exchange: the next prompt's tokens follow it.
  auto first = Post(port, "/api/generate", R"({"model":"tiny","prompt":"one","stream":false,"options":{"num_predict":3}})");
  ASSERT_EQ(first.status, 200);
  json ctx = first.json()["context"];
  json second_body{{"model", "tiny"}, {"prompt", "two"}, {"context", ctx}, {"stream", false}, {"options", {{"num_predict", 3}}}};
  auto second = Post(port, "/api/generate", second_body.dump());
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_GT(second.json()["context"].size(), ctx.size());
  EXPECT_GT(second.json()["prompt_eval_count"].get<size_t>(), ctx.size());
  // raw: fewer prompt tokens than the same prompt in the chat template.
  auto raw = Post(port, "/api/generate", R"({"model":"tiny","prompt":"hi","raw":true,"stream":false,"options":{"num_predict":1}})");
  auto templ = Post(port, "/api/generate", R"({"model":"tiny","prompt":"hi","stream":false,"options":{"num_predict":1}})");
  EXPECT_LT(raw.json()["prompt_eval_count"].get<int>(), templ.json()["prompt_eval_count"].get<int>());
  // A prompt longer than the context: a clear 400.
  std::string long_prompt;
  for (int i = 0; i < 600; ++i) long_prompt += "word ";
  json lp{{"model", "tiny"}, {"prompt", long_prompt}, {"stream", false}, {"options", {{"num_ctx", 256}}}};
  auto too_long = Post(port, "/api/generate", lp.dump());
  EXPECT_EQ(too_long.status, 400);
  EXPECT_NE(too_long.json()["error"].get<std::string>().find("context"), std::string::npos) << too_long.body;
  // Bodies over the server's limit (32 MiB): 413.
  std::string big = json{{"model", "tiny"}, {"prompt", std::string(33u << 20, 'a')}}.dump();
  EXPECT_EQ(Post(port, "/api/generate", big).status, 413);
  EXPECT_TRUE(server.alive());
  EXPECT_EQ(Get(port, "/api/version").json()["resident_version"], RESIDENT_VERSION);
}

}  // namespace
}  // namespace resident::testing
