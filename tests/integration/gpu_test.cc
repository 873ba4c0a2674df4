// GPUs with the real server and real runners, on a machine without one: a fake NVML library
// (tests/support/fake_nvml.c) shows a GPU, and a folder that stands in for llama.cpp's CUDA build
// (the CPU build's libraries, and a libggml-cuda.so that is not a library) is what runners load.
// The server places the model on the GPU and tells the runner which one; the runner, without a
// GPU backend, loads on the CPU and says so; /api/ps, `resident ps` and /metrics show it; and
// CUDA_VISIBLE_DEVICES=-1 or a missing CUDA build leave every model on the CPU, as before.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_directories(dir_ + "/models");
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/models/m1.gguf");
    std::ofstream(dir_ + "/nvml.txt") << "gpu GPU-fake-0 24000000000 20000000000 Fake GPU\n";
    cuda_ = dir_ + "/cuda";
    fs::create_directories(cuda_);
    for (const auto& f : fs::directory_iterator(LLAMA_LIB_DIR)) {
      if (f.path().extension() == ".so") fs::create_symlink(f.path(), cuda_ + "/" + f.path().filename().string());
    }
    std::ofstream(cuda_ + "/libggml-cuda.so") << "not a library\n";
  }
  std::map<std::string, std::string> Env() const {
    return {{"RESIDENT_NVML_LIBRARY", FAKE_NVML_PATH},
            {"FAKE_NVML_FILE", dir_ + "/nvml.txt"},
            {"RESIDENT_LLAMA_CUDA_DIR", cuda_}};
  }
  static std::string Environment(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : env) c = c == '\0' ? '\n' : c;
    return env;
  }
  static void Generate(int port) {
    auto r = Post(port, "/api/generate", R"({"model":"m1","prompt":"hi","stream":false,"options":{"num_predict":2}})");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string dir_, cuda_;
};

TEST_F(GpuTest, PlacedOnTheGpuARunnerWithoutItsBackendRunsOnTheCpuAndSaysSo) {
  ServerProcess server(dir_ + "/models", Env());
  Generate(server.port());
  std::string log = ReadAll(server.log_path());
  EXPECT_NE(log.find("GPU 0 Fake GPU (24.0 GB, 20.0 GB free); runners load llama.cpp's CUDA build from " + cuda_),
            std::string::npos) << log;
  EXPECT_NE(log.find("loading m1:latest"), std::string::npos);
  EXPECT_NE(log.find("layers on GPU 0"), std::string::npos) << log;       // the scheduler placed it
  EXPECT_NE(log.find("runner: model \"m1:latest\" sees only GPU-fake-0"), std::string::npos) << log;
  EXPECT_EQ(log.find("backends started before the device was chosen"), std::string::npos) << log;
  EXPECT_NE(log.find("but this runner has no GPU backend"), std::string::npos) << log;  // the runner's words
  EXPECT_NE(log.find("but its runner has no GPU backend"), std::string::npos) << log;   // the scheduler's
  // The runner was started with the CUDA build's folder first, and loaded on the CPU.
  ASSERT_EQ(server.Children().size(), 1u);
  const std::string env = Environment(server.Children()[0]);
  EXPECT_NE(env.find("LD_LIBRARY_PATH=" + cuda_), std::string::npos);
  EXPECT_NE(env.find("RESIDENT_RUNNER_DEFER_BACKENDS=1"), std::string::npos);  // CUDA starts after the choice
  json ps = Get(server.port(), "/api/ps").json();
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["size_vram"], 0);
  EXPECT_FALSE(ps["models"][0].contains("gpu"));
  CliRun cli = RunCli(server.port(), "ps");
  EXPECT_NE(cli.out.find("100% CPU"), std::string::npos) << cli.out;
  // /metrics shows the device.
  std::string metrics = Get(server.port(), "/metrics").body;
  EXPECT_NE(metrics.find("resident_gpu_memory_total_bytes{gpu=\"0\",id=\"GPU-fake-0\",name=\"Fake GPU\"} 24000000000"),
            std::string::npos) << metrics;
  EXPECT_NE(metrics.find("resident_gpu_memory_free_bytes{gpu=\"0\",id=\"GPU-fake-0\",name=\"Fake GPU\"} 20000000000"),
            std::string::npos);
  EXPECT_NE(metrics.find("resident_gpu_models_bytes{gpu=\"0\",id=\"GPU-fake-0\",name=\"Fake GPU\"} 0"),
            std::string::npos);
}

TEST_F(GpuTest, CudaVisibleDevicesMinusOneHidesEveryGpu) {
  auto env = Env();
  env["CUDA_VISIBLE_DEVICES"] = "-1";
  ServerProcess server(dir_ + "/models", env);
  Generate(server.port());
  std::string log = ReadAll(server.log_path());
  EXPECT_NE(log.find("no GPU: models run on the CPU"), std::string::npos) << log;
  EXPECT_EQ(log.find("layers on GPU"), std::string::npos);
  ASSERT_EQ(server.Children().size(), 1u);
  EXPECT_EQ(Environment(server.Children()[0]).find("LD_LIBRARY_PATH=" + cuda_), std::string::npos);
  EXPECT_EQ(Get(server.port(), "/metrics").body.find("resident_gpu_memory_total_bytes"), std::string::npos);
}

TEST_F(GpuTest, WithoutTheCudaBuildModelsStayOnTheCpuAndTheLogSaysWhy) {
  auto env = Env();
  env["RESIDENT_LLAMA_CUDA_DIR"] = dir_ + "/nowhere";
  ServerProcess server(dir_ + "/models", env);
  Generate(server.port());
  std::string log = ReadAll(server.log_path());
  EXPECT_NE(log.find("llama.cpp's CUDA build is not in " + dir_ + "/nowhere"), std::string::npos) << log;
  EXPECT_EQ(log.find("layers on GPU"), std::string::npos);
  // The device is still shown.
  EXPECT_NE(Get(server.port(), "/metrics").body.find("resident_gpu_memory_total_bytes{gpu=\"0\""), std::string::npos);
}

}  // namespace
}  // namespace resident::testing
