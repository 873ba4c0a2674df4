// Same seed, same text: a request with a seed gives the same text whatever the runner did before
// it (README, "Reproducible output"). Each case compares against the text a fresh runner gives.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class ReproducibilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
    fs::create_symlink(SynthModel("20M", 2), dir_ + "/other.gguf");
  }

  // num_batch 8: a prompt of a few dozen tokens is several chunks, so that reusing cached chunks
  // is part of what is checked. A high temperature makes sampling sensitive to the last bits of
  // the logits.
  static json Options(int seed) {
    return {{"num_predict", 40}, {"seed", seed}, {"temperature", 1.5}, {"top_k", 0}, {"num_batch", 8}};
  }
  static std::string Generate(int port, const std::string& model, const std::string& prompt, int seed = 1234) {
    json body{{"model", model}, {"prompt", prompt}, {"stream", false}, {"options", Options(seed)}};
    auto r = Post(port, "/api/generate", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("response", std::string());
  }
  static void Unload(int port, const std::string& model) {
    ASSERT_EQ(Post(port, "/api/generate", json{{"model", model}, {"keep_alive", 0}}.dump()).status, 200);
  }
  std::string dir_;
};

const std::string kShort = "The weather today";
// About 45 tokens: 5 chunks of 8 and a partial one.
const std::string kLong =
    "In the small harbour town the fishing boats came back at dawn, and the market filled with voices, "
    "nets, gulls and the smell of salt while the";
const std::string kLonger = kLong + " old lighthouse keeper counted the boats one by one";
// Over 256 tokens: llama.cpp splits the attention of a decoded token over the KV cache by thread
// count once the cache holds more than 256 cells.
std::string VeryLong() {
  std::string s;
  for (int i = 0; i < 7; ++i) s += kLong + " ";
  return s;
}

TEST_F(ReproducibilityTest, ASeededRequestGivesTheTextOfAFreshRunnerWhateverRanBefore) {
  ServerProcess server(dir_);
  const int port = server.port();

  // What a fresh runner gives for each prompt.
  std::string fresh_very_long = Generate(port, "tiny", VeryLong());
  Unload(port, "tiny");
  std::string fresh_short = Generate(port, "tiny", kShort);
  Unload(port, "tiny");
  std::string fresh_long = Generate(port, "tiny", kLong);
  Unload(port, "tiny");
  std::string fresh_longer = Generate(port, "tiny", kLonger);
  ASSERT_FALSE(fresh_short.empty());
  ASSERT_NE(fresh_long, fresh_longer);

  // Warm: the same prompt again reuses its cached chunks; a longer one shares the first chunks.
  EXPECT_EQ(Generate(port, "tiny", kLonger), fresh_longer) << "the same prompt twice";
  EXPECT_EQ(Generate(port, "tiny", kLong), fresh_long) << "a prefix of the cached prompt";
  EXPECT_EQ(Generate(port, "tiny", kLonger), fresh_longer) << "an extension of the cached prompt";
  EXPECT_EQ(Generate(port, "tiny", kShort), fresh_short) << "another prompt";
  EXPECT_EQ(Generate(port, "tiny", kLong), fresh_long) << "after another prompt";

  // Unseeded requests in between (they reuse whatever is cached, generated tokens included).
  json unseeded{{"model", "tiny"}, {"prompt", kLong}, {"stream", false}, {"options", {{"num_predict", 8}, {"num_batch", 8}}}};
  ASSERT_EQ(Post(port, "/api/generate", unseeded.dump()).status, 200);
  EXPECT_EQ(Generate(port, "tiny", kLong), fresh_long) << "after an unseeded request on the same prompt";

  // Another model in between, and another model generating at the same time (the runners share
  // the cores: a seeded request keeps its own thread count).
  Generate(port, "other", kLong);
  EXPECT_EQ(Generate(port, "tiny", kLonger), fresh_longer) << "after another model";
  std::atomic<bool> streaming{false}, done{false};
  std::thread other([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(120, 0);
    httplib::Request r;
    r.method = "POST";
    r.path = "/api/generate";
    r.body = json{{"model", "other"}, {"prompt", kShort}, {"options", {{"num_predict", 100000}, {"num_ctx", 4096}}}}.dump();
    r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      streaming = true;
      return !done.load();  // generates until the seeded request is answered
    };
    client.send(r);
    streaming = true;
  });
  while (!streaming) std::this_thread::yield();
  std::string during = Generate(port, "tiny", kLong);
  std::string during_very_long = Generate(port, "tiny", VeryLong());
  done = true;
  other.join();
  EXPECT_EQ(during, fresh_long) << "while another model generated";
  EXPECT_EQ(during_very_long, fresh_very_long) << "while another model generated";

  // Cold again, in a new runner.
  Unload(port, "tiny");
  EXPECT_EQ(Generate(port, "tiny", kLong), fresh_long) << "after a reload";

  // The seed matters.
  EXPECT_NE(Generate(port, "tiny", kLong, 99), fresh_long);
}

TEST_F(ReproducibilityTest, ASeededChatGivesTheSameReplyWarmAndCold) {
  ServerProcess server(dir_);
  const int port = server.port();
  auto chat = [&](const json& messages) {
    json body{{"model", "tiny"}, {"messages", messages}, {"stream", false}, {"options", Options(7)}};
    auto r = Post(port, "/api/chat", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json()["message"].value("content", std::string());
  };
  json turn1 = json::array({{{"role", "system"}, {"content", kLong}}, {{"role", "user"}, {"content", "hi"}}});
  std::string first = chat(turn1);
  json turn2 = turn1;
  turn2.push_back({{"role", "assistant"}, {"content", first}});
  turn2.push_back({{"role", "user"}, {"content", "and then?"}});
  std::string second_warm = chat(turn2);  // reuses the first turn's chunks
  EXPECT_EQ(chat(turn1), first);
  Unload(port, "tiny");
  EXPECT_EQ(chat(turn2), second_warm) << "the second turn in a fresh runner";
  EXPECT_EQ(chat(turn1), first);
}

}  // namespace
}  // namespace resident::testing
