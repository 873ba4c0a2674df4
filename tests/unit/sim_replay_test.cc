// `resident bench replay` against the real server, and the simulator's verdict on the same trace:
// both must count the same cold starts.
#include <gtest/gtest.h>

#include <filesystem>

#include "sim/replay.h"
#include "sim/simulator.h"
#include "sim/svg_plot.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(SimReplayTest, SimulatorAndLiveServerAgreeOnColdStarts) {
  const std::string dir = TestDir() + "/sim_replay";
  fs::create_directories(dir);
  fs::create_symlink(SynthModel("20M", 1), dir + "/m1.gguf");
  fs::create_symlink(SynthModel("20M", 2), dir + "/m2.gguf");
  // The simulator serves every request on arrival (num_parallel unlimited): so does the server
  // here, or a request that arrives while the first one of its model still runs (a busy machine)
  // waits for the slot and counts as cold.
  ServerProcess server(dir, {{"RESIDENT_KEEP_ALIVE", "6s"}, {"RESIDENT_NUM_PARALLEL", "4"}});

  // keep_alive 6 s. Every gap is either well inside it or well beyond it, with seconds to spare
  // for a machine so busy (a TSan build beside other tests) that a 2-token request takes 2 s and a
  // load 1.5 s: in one such CI run b's warm request at 4.5 ended at 6.5, and with a 3 s keep_alive
  // its model was still loaded when the request at 9.5 came.
  // A warm request comes 5 s after its model's cold one, so the load (1.5 s there) is over.
  //   a: 0 cold, 5 warm, 23 cold (idle since ~5..8, expired by ~14)
  //   b: 6 cold, 11 warm, 24 cold (idle since ~11..14, expired by ~20)
  auto trace = sim::ParseTrace("timestamp_s,model,prompt_tokens,output_tokens\n"
                               "0,a,4,2\n5,a,4,2\n6,b,4,2\n11,b,4,2\n23,a,4,2\n24,b,4,2\n",
                               "agree.csv");
  ASSERT_TRUE(trace.ok()) << trace.status().message();

  sim::SetupDefaults d;
  d.load_s = 0.5;
  d.default_bytes = 80'000'000;
  sim::SimSetup setup = sim::MakeSetup(*trace, d);
  auto simulated = sim::Simulate(*trace, setup, sim::SimPolicy{"6s", KeepAlive::Of(6s), std::nullopt});
  ASSERT_TRUE(simulated.ok()) << simulated.status().message();
  EXPECT_EQ(simulated->cold, 4);

  auto models = sim::ServerModels("127.0.0.1", server.port());
  ASSERT_TRUE(models.ok()) << models.status().message();
  auto map = sim::MapModels(trace->models, "a=m1", *models);
  ASSERT_TRUE(map.ok());
  EXPECT_EQ((*map)["a"], "m1");
  EXPECT_EQ((*map)["b"], "m1:latest");  // round-robin over /api/tags, which lists m1:latest first
  (*map)["b"] = "m2";
  sim::ReplayOptions o;
  o.port = server.port();
  o.model_map = *map;
  auto live = sim::Replay(*trace, o);
  ASSERT_TRUE(live.ok()) << live.status().message();
  EXPECT_EQ(live->failed, 0) << sim::ReplayToJson(*live, o).dump();
  EXPECT_EQ(live->cold, simulated->cold) << sim::ReplayToJson(*live, o)["requests"].dump();
  std::map<std::string, int> live_by_model;
  for (const auto& r : live->requests) live_by_model[r.model] += r.cold;
  EXPECT_EQ(live_by_model["m1"], simulated->cold_by_model["a"]);
  EXPECT_EQ(live_by_model["m2"], simulated->cold_by_model["b"]);

  // What the replay measured: memory was resident, partly idle, both models were seen loading.
  EXPECT_GT(live->resident_gbs, 0);
  EXPECT_GT(live->idle_gbs, 0);
  EXPECT_LT(live->idle_gbs, live->resident_gbs);
  EXPECT_GT(live->peak_bytes, 0u);
  int loads = 0, unloads = 0;
  for (const auto& m : live->marks) (m.load ? loads : unloads)++;
  // As the 100 ms samples saw them (a busy machine can blur them): both loads, an expiry.
  EXPECT_GE(loads, 2);
  EXPECT_GE(unloads, 1);
  std::string svg = sim::ResidentMemorySvg(live->samples, live->marks, "agree");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("m1:latest"), std::string::npos);
}

}  // namespace
}  // namespace resident::testing
