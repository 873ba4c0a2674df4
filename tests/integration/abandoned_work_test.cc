// Issue 20, item 3, on the real binary: a request whose client has gone is cancelled, streamed or
// not, queued or running. Each test waits for conditions (the server's log, /api/ps, /metrics),
// never for a time: a request that ran on instead would keep the model busy (the next request
// waits behind it) and never write the log line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

class AbandonedWorkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

// Requests using tiny right now, per /api/ps (-1 when it is not loaded).
int ActiveRequests(int port) {
  auto ps = Get(port, "/api/ps").json();
  if (!ps.is_object() || !ps["models"].is_array() || ps["models"].empty()) return -1;
  return ps["models"][0].value("active_requests", -1);
}

double Metric(int port, const std::string& series) { return MetricSample(Get(port, "/metrics").body, series); }

// A generation that would run for thousands of tokens (the whole context), not streamed.
const json kLongOptions{{"num_predict", 100000}, {"num_ctx", 8192}};

TEST_F(AbandonedWorkTest, ANonStreamedGenerationWhoseClientLeftIsCancelledOnEveryRoute) {
  ServerProcess server(dir_);
  const int port = server.port();
  struct Route {
    std::string path;
    json body;
  };
  const std::vector<Route> routes = {
      {"/api/generate", {{"model", "tiny"}, {"prompt", "go"}, {"stream", false}, {"options", kLongOptions}}},
      {"/api/chat",
       {{"model", "tiny"},
        {"messages", {{{"role", "user"}, {"content", "go"}}}},
        {"stream", false},
        {"options", kLongOptions}}},
      // OpenAI's routes take no num_ctx: the server's context (RESIDENT_CONTEXT_LENGTH) applies.
      {"/v1/chat/completions",
       {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "go"}}}}, {"max_tokens", 100000}}},
      {"/v1/completions", {{"model", "tiny"}, {"prompt", "go"}, {"max_tokens", 100000}}},
  };
  for (const Route& r : routes) {
    const std::string line = r.path + " for tiny: the client went away; generation cancelled";
    const int before = CountInLog(server, line);
    int fd = SendRaw(port, RawPost(r.path, r.body.dump()));
    ASSERT_TRUE(WaitFor([&] { return ActiveRequests(port) == 1; }, 120s)) << r.path;
    ::close(fd);  // the client leaves (curl -m)
    ASSERT_TRUE(WaitForLog(server, line, before + 1, 120s)) << r.path;
    EXPECT_TRUE(WaitFor([&] { return ActiveRequests(port) == 0; }, 120s)) << r.path;
  }
  // The runner is free: the next request is served, by the same runner (the server's context,
  // as the /v1 routes had).
  auto runners = server.Children();
  auto next =
      Post(port, "/api/generate",
           json{{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}}.dump());
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(next.json().value("eval_count", 0), 2);
  EXPECT_EQ(server.Children(), runners);
  EXPECT_EQ(CountInLog(server, "failed to decode"), 0);
}

TEST_F(AbandonedWorkTest, AnEmbeddingOfManyInputsWhoseClientLeftIsCancelled) {
  ServerProcess server(dir_);
  const int port = server.port();
  json inputs = json::array();
  for (int i = 0; i < 20000; ++i) inputs.push_back("a a a " + std::to_string(i));
  int fd = SendRaw(port, RawPost("/api/embed", json{{"model", "tiny"}, {"input", inputs}}.dump()));
  ASSERT_TRUE(WaitFor([&] { return ActiveRequests(port) == 1; }, 120s));
  ::close(fd);
  EXPECT_TRUE(
      WaitForLog(server, "/api/embed for tiny: the client went away; embedding of 20000 inputs cancelled", 1, 120s));
  // The runner is free for the next one.
  auto next = Post(port, "/api/embed", R"({"model":"tiny","input":["hello"]})");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(next.json()["embeddings"].size(), 1u);
  // The OpenAI route likewise.
  fd = SendRaw(port, RawPost("/v1/embeddings", json{{"model", "tiny"}, {"input", inputs}}.dump()));
  ASSERT_TRUE(WaitFor([&] { return ActiveRequests(port) == 1; }, 120s));
  ::close(fd);
  EXPECT_TRUE(WaitForLog(server, "/v1/embeddings for tiny: the client went away; embedding of 20000 inputs cancelled",
                         1, 120s));
}

TEST_F(AbandonedWorkTest, ARequestQueuedBehindABusyModelWhoseClientLeftNeverRuns) {
  ServerProcess server(dir_);  // one request at a time per model (num_parallel 1)
  const int port = server.port();
  const std::string long_generation =
      json{{"model", "tiny"}, {"prompt", "go"}, {"stream", false}, {"options", kLongOptions}}.dump();
  const std::string series = R"(resident_model_requests_total{model="tiny:latest"})";
  int busy = SendRaw(port, RawPost("/api/generate", long_generation));
  ASSERT_TRUE(WaitFor([&] { return ActiveRequests(port) == 1; }, 120s));
  const double requests = Metric(port, series);
  EXPECT_EQ(requests, 1);

  int queued = SendRaw(port, RawPost("/api/generate", long_generation));
  ASSERT_TRUE(WaitFor([&] { return Metric(port, "resident_queued_requests") == 1; }, 120s));
  ::close(queued);
  ASSERT_TRUE(WaitForLog(server, "/api/generate for tiny: the client went away while the request waited", 1, 120s));
  EXPECT_EQ(Metric(port, "resident_queued_requests"), 0);
  EXPECT_EQ(ActiveRequests(port), 1);  // the first one still runs: the queue emptied because its client left
  EXPECT_EQ(Metric(port, series), requests);

  ::close(busy);
  ASSERT_TRUE(WaitForLog(server, "/api/generate for tiny: the client went away; generation cancelled", 1, 120s));
  ASSERT_TRUE(WaitFor([&] { return ActiveRequests(port) == 0; }, 120s));
  EXPECT_EQ(Metric(port, series), requests);  // the queued request never got the model
  auto next = Post(
      port, "/api/generate",
      json{{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}, {"num_ctx", 8192}}}}
          .dump());
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(Metric(port, series), requests + 1);
}

}  // namespace
}  // namespace resident::testing
