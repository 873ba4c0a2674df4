// RESIDENT_NUM_PARALLEL with real runners: requests for one model are served at once (continuous
// batching in one runner), each keeps its own options and statistics, and one leaving does not
// disturb the others.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class ParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

// A streamed generate of `num_predict` greedy tokens; calls on_line for every NDJSON line and
// stops reading when it returns false. Returns the last line (the statistics when complete).
json Stream(int port, const std::string& prompt, int num_predict, const std::function<bool(const json&)>& on_line) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::minutes(2));
  httplib::Request r;
  r.method = "POST";
  r.path = "/api/generate";
  r.body = json{{"model", "tiny"},
                {"prompt", prompt},
                {"options", {{"num_predict", num_predict}, {"temperature", 0}}}}
               .dump();
  std::string pending;
  json last;
  r.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      last = json::parse(pending.substr(0, nl), nullptr, false);
      pending.erase(0, nl + 1);
      if (!on_line(last)) return false;
    }
    return true;
  };
  client.send(r);
  return last;
}

TEST_F(ParallelTest, TwoRequestsForOneModelAreServedAtOnce) {
  ServerProcess server(dir_, {{"RESIDENT_NUM_PARALLEL", "2"}});
  // Alone first: the text each prompt produces with greedy sampling.
  json body{{"model", "tiny"}, {"stream", false}, {"options", {{"num_predict", 24}, {"temperature", 0}}}};
  body["prompt"] = "alpha";
  auto alone_a = Post(server.port(), "/api/generate", body.dump());
  body["prompt"] = "omega";
  auto alone_b = Post(server.port(), "/api/generate", body.dump());
  ASSERT_EQ(alone_a.status, 200) << alone_a.body;
  ASSERT_EQ(alone_b.status, 200) << alone_b.body;

  // A long generation; once it streams, a short one for the same model. With one slot the short
  // one would wait for all 600 tokens; with two it is done while the long one still runs.
  std::atomic<bool> short_done{false};
  std::atomic<bool> long_running_when_short_done{false};
  json short_last;
  std::thread short_request;
  json long_last = Stream(server.port(), "alpha", 600, [&](const json& line) {
    if (!short_request.joinable() && line.value("response", "") != "") {
      short_request = std::thread([&] {
        short_last = Stream(server.port(), "omega", 24, [](const json&) { return true; });
        short_done = true;
      });
    }
    if (short_done && !line.value("done", false)) long_running_when_short_done = true;
    return true;
  });
  if (short_request.joinable()) short_request.join();
  ASSERT_TRUE(short_done);
  EXPECT_TRUE(long_running_when_short_done) << "the second request waited for the first";
  EXPECT_EQ(long_last.value("eval_count", 0), 600) << long_last.dump();
  EXPECT_EQ(short_last.value("eval_count", 0), 24) << short_last.dump();
  EXPECT_EQ(short_last.value("prompt_eval_count", 0), alone_b.json().value("prompt_eval_count", -1));

  // Each request kept its own sequence: the same prompts alone and together give the same text.
  body["prompt"] = "alpha";
  body["options"]["num_predict"] = 24;
  json pair[2];
  std::thread other([&] {
    json b = body;
    b["prompt"] = "omega";
    pair[1] = Post(server.port(), "/api/generate", b.dump()).json();
  });
  pair[0] = Post(server.port(), "/api/generate", body.dump()).json();
  other.join();
  EXPECT_EQ(pair[0]["response"], alone_a.json()["response"]);
  EXPECT_EQ(pair[1]["response"], alone_b.json()["response"]);
  std::ifstream log(server.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(server.Children().size(), 1u) << "one runner serves both\n" << text;
}

TEST_F(ParallelTest, AClientThatLeavesDoesNotDisturbTheOtherSlot) {
  ServerProcess server(dir_, {{"RESIDENT_NUM_PARALLEL", "2"}});
  json steady_last;
  std::thread steady([&] {
    steady_last = Stream(server.port(), "steady", 200, [](const json&) { return true; });
  });
  // This one leaves after a few lines, while the steady one runs.
  int lines = 0;
  Stream(server.port(), "leaving", 100000, [&](const json&) { return ++lines < 5; });
  steady.join();
  EXPECT_EQ(steady_last.value("eval_count", 0), 200) << steady_last.dump();
  EXPECT_TRUE(steady_last.value("done", false));
  // Both slots are free again.
  json body{{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 3}}}};
  auto next = Post(server.port(), "/api/generate", body.dump());
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(next.json()["eval_count"], 3);
}

TEST_F(ParallelTest, TheContextIsPerRequestAndThePredictionCountsEverySlot) {
  ServerProcess one(dir_);
  json body{{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 1}, {"num_ctx", 4096}}}};
  ASSERT_EQ(Post(one.port(), "/api/generate", body.dump()).status, 200);
  json ps1 = Get(one.port(), "/api/ps").json()["models"][0];

  ServerProcess four(dir_, {{"RESIDENT_NUM_PARALLEL", "4"}});
  ASSERT_EQ(Post(four.port(), "/api/generate", body.dump()).status, 200);
  json ps4 = Get(four.port(), "/api/ps").json()["models"][0];
  // num_ctx is what one request may use, as Ollama's: the same with four slots.
  EXPECT_EQ(ps1["context_length"], 4096) << ps1.dump();
  EXPECT_EQ(ps4["context_length"], 4096) << ps4.dump();
  // Four sequences of 4096 tokens: three more KV caches (about 12.6 MB each for the 20M
  // synthetic model: 2 x layers x 4096 x n_embd_kv x 2 bytes), predicted and measured.
  double predicted_more = ps4["size_predicted"].get<double>() - ps1["size_predicted"].get<double>();
  double measured_more = ps4["size_measured"].get<double>() - ps1["size_measured"].get<double>();
  EXPECT_GT(predicted_more, 30e6) << ps1.dump() << "\n" << ps4.dump();
  EXPECT_GT(measured_more, 0.8 * predicted_more) << ps1.dump() << "\n" << ps4.dump();
  EXPECT_LT(measured_more, 1.5 * predicted_more) << ps1.dump() << "\n" << ps4.dump();
}

}  // namespace
}  // namespace resident::testing
