// keep_alive "auto" on the live server: preload, explained keep_alive, the learner's state file.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "sched/learner_state.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Waits (without sleeping) until `done` holds; false after 60 s.
template <typename F>
bool Eventually(F done) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

class AutoServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_directories(dir_ + "/models");
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/models/tiny.gguf");
    state_ = dir_ + "/residency-history";
  }
  std::map<std::string, std::string> Env() const {
    return {{"RESIDENT_KEEP_ALIVE", "auto"}, {"RESIDENT_LEARNER_STATE", state_}};
  }
  static json TinyInPs(int port) {
    json ps = Get(port, "/api/ps").json();
    for (const auto& m : ps["models"]) {
      if (m["name"] == "tiny:latest") return m;
    }
    return json();
  }
  static void Generate(int port) {
    json body{{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}};
    ASSERT_EQ(Post(port, "/api/generate", body.dump()).status, 200);
  }
  std::string dir_, state_;
};

TEST_F(AutoServerTest, APreloadedModelLoadsWithoutARequestAndAgainAfterItsRunnerDies) {
  auto env = Env();
  env["RESIDENT_PRELOAD"] = "tiny";
  ServerProcess server(dir_ + "/models", env);
  ASSERT_TRUE(Eventually([&] { return !TinyInPs(server.port()).is_null(); })) << ReadAll(server.log_path());
  json events = Get(server.port(), "/api/events").json()["events"];
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["type"], "load");
  EXPECT_EQ(events[0]["origin"], "preload");

  // Its runner dies: it is loaded again, by nobody's request.
  auto children = server.Children();
  ASSERT_EQ(children.size(), 1u);
  ::kill(children[0], SIGKILL);
  ASSERT_TRUE(Eventually([&] {
    auto now = server.Children();
    return now.size() == 1 && now[0] != children[0] && !TinyInPs(server.port()).is_null();
  })) << ReadAll(server.log_path());
}

TEST_F(AutoServerTest, AutoExplainsItsKeepAliveAndWhatItLearnedSurvivesARestart) {
  {
    ServerProcess server(dir_ + "/models", Env());
    for (int i = 0; i < 6; ++i) Generate(server.port());
    json m = TinyInPs(server.port());
    ASSERT_FALSE(m.is_null());
    EXPECT_EQ(m["keep_alive"], "auto");
    EXPECT_EQ(m["keep_alive_reason"].get<std::string>().rfind("auto: ", 0), 0u) << m.dump();
    ASSERT_EQ(server.Terminate(), 0);
  }
  auto saved = sched::LoadLearnerState(state_);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  ASSERT_EQ(saved->count("tiny:latest"), 1u);
  EXPECT_EQ(saved->at("tiny:latest").requests, 6u);
  EXPECT_EQ(saved->at("tiny:latest").gaps.size(), 5u);

  ServerProcess again(dir_ + "/models", Env());
  Generate(again.port());
  ASSERT_TRUE(Eventually([&] { return ReadAll(again.log_path()).find("residency history of 1 models") != std::string::npos; }));
  ASSERT_EQ(again.Terminate(), 0);
  auto after = sched::LoadLearnerState(state_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->at("tiny:latest").requests, 7u);  // what it knew, and the new request
}

TEST_F(AutoServerTest, ACorruptStateFileIsIgnoredWithALogLineAndReplaced) {
  { std::ofstream(state_) << "resident-learner 1\nmodel tiny:latest 3 x\n\x01\x02garbage"; }
  ServerProcess server(dir_ + "/models", Env());
  Generate(server.port());
  ASSERT_EQ(server.Terminate(), 0);
  std::string log = ReadAll(server.log_path());
  EXPECT_NE(log.find("ignoring the residency history"), std::string::npos) << log;
  auto saved = sched::LoadLearnerState(state_);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_EQ(saved->at("tiny:latest").requests, 1u);
}

}  // namespace
}  // namespace resident::testing
