#include "core/gpu_discovery.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_env.h"

namespace resident {
namespace {

// A fake NVML (tests/support/fake_nvml.c), opened here as the discovery opens it: dlopen of the
// same path gives the same handle, so the test steers the very library the discovery calls. The
// fake answers from a file re-read at every call; which file is set through the fake itself (no
// setenv in a process that may run threads).
struct FakeNvml {
  void (*use_file)(const char*) = nullptr;
  int (*init_calls)() = nullptr;
  int (*process_calls)() = nullptr;
};

// The fake at `path`, answering from `state_file` (the test fails if it cannot be opened). Never
// closed: the discovery keeps its own handle for the process's lifetime anyway.
FakeNvml OpenFake(const std::string& path, const std::string& state_file) {
  FakeNvml fake;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  EXPECT_NE(handle, nullptr) << dlerror();
  if (handle == nullptr) return fake;
  fake.use_file = reinterpret_cast<void (*)(const char*)>(dlsym(handle, "fake_nvml_use_file"));
  fake.init_calls = reinterpret_cast<int (*)()>(dlsym(handle, "fake_nvml_init_calls"));
  fake.process_calls = reinterpret_cast<int (*)()>(dlsym(handle, "fake_nvml_process_calls"));
  EXPECT_TRUE(fake.use_file != nullptr && fake.init_calls != nullptr && fake.process_calls != nullptr);
  if (fake.use_file != nullptr) fake.use_file(state_file.c_str());
  return fake;
}

constexpr const char* kTwoGpus =
    "gpu GPU-aaa 24000000000 20000000000 Fake GPU A\n"
    "gpu GPU-bbb 80000000000 79000000000 NVIDIA H100 80GB HBM3\n";

class GpuDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_file_ = testing::TestCaseDir() + "/fake_nvml.txt";
    Write(kTwoGpus);
    fake_ = OpenFake(FAKE_NVML_PATH, state_file_);
  }

  // The fake's GPUs and processes from now on (the format is in fake_nvml.c).
  void Write(const std::string& state) const {
    std::ofstream out(state_file_, std::ios::trunc);
    out << state;
    ASSERT_TRUE(out.good()) << state_file_;
  }

  std::string state_file_;
  FakeNvml fake_;
};

TEST_F(GpuDiscoveryTest, ListsEveryDeviceWithItsFields) {
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_PATH);
  std::vector<GpuDevice> devices = discovery->Devices();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].index, 0);
  EXPECT_EQ(devices[0].id, "GPU-aaa");
  EXPECT_EQ(devices[0].name, "Fake GPU A");
  EXPECT_EQ(devices[0].library, "cuda");
  EXPECT_EQ(devices[0].total_bytes, 24'000'000'000u);
  EXPECT_EQ(devices[0].free_bytes, 20'000'000'000u);
  EXPECT_EQ(devices[1].index, 1);
  EXPECT_EQ(devices[1].id, "GPU-bbb");
  EXPECT_EQ(devices[1].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(devices[1].library, "cuda");
  EXPECT_EQ(devices[1].total_bytes, 80'000'000'000u);
  EXPECT_EQ(devices[1].free_bytes, 79'000'000'000u);
}

TEST_F(GpuDiscoveryTest, ReadsFreeMemoryAtEachCall) {
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_PATH);
  ASSERT_EQ(discovery->Devices().size(), 2u);
  Write("gpu GPU-aaa 24000000000 1000000000 Fake GPU A\n");
  std::vector<GpuDevice> devices = discovery->Devices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].free_bytes, 1'000'000'000u);
  Write("");
  EXPECT_TRUE(discovery->Devices().empty());
}

TEST_F(GpuDiscoveryTest, LeavesOutADeviceWhoseCallsFail) {
  Write("gpu GPU-aaa 24000000000 20000000000 Lost\n"
        "gpu GPU-bbb 24000000000 20000000000 Fine\n"
        "gpu GPU-ccc 24000000000 20000000000 No UUID\n"
        "gpu GPU-ddd 24000000000 20000000000 No handle\n"
        "fail 0 memory\n"
        "fail 2 uuid\n"
        "fail 3 handle\n");
  std::vector<GpuDevice> devices = MakeNvmlDiscovery(FAKE_NVML_PATH)->Devices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].index, 1);  // NVML's index, not the position in the list
  EXPECT_EQ(devices[0].id, "GPU-bbb");
}

TEST_F(GpuDiscoveryTest, SumsOneProcessMemoryPerDevice) {
  Write(std::string(kTwoGpus) +
        "proc 100 0 1000000000\n"
        "proc 200 0 3000000000\n"
        "proc 100 1 2000000000\n"
        "proc 100 1 500000000\n"
        "proc 100 1 na\n"  // NVML_VALUE_NOT_AVAILABLE: not counted
        "proc 300 1 na\n");
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_PATH);
  EXPECT_EQ(discovery->ProcessMemory(100), (std::map<int, uint64_t>{{0, 1'000'000'000}, {1, 2'500'000'000}}));
  EXPECT_EQ(discovery->ProcessMemory(200), (std::map<int, uint64_t>{{0, 3'000'000'000}}));
  EXPECT_TRUE(discovery->ProcessMemory(300).empty());  // holds some, but the driver cannot tell
  EXPECT_TRUE(discovery->ProcessMemory(999).empty());
}

TEST_F(GpuDiscoveryTest, LeavesOutADeviceWhoseProcessListFails) {
  Write(std::string(kTwoGpus) + "proc 100 0 1000\nproc 100 1 2000\nfail 0 processes\n");
  EXPECT_EQ(MakeNvmlDiscovery(FAKE_NVML_PATH)->ProcessMemory(100), (std::map<int, uint64_t>{{1, 2000}}));
}

TEST_F(GpuDiscoveryTest, AsksAgainWithARoomierListWhenTooSmall) {
  // More processes on the device than a first list holds: NVML answers INSUFFICIENT_SIZE with
  // the count it needs, and the discovery asks again.
  std::string state = "gpu GPU-aaa 24000000000 20000000000 Busy\n";
  for (int pid = 1000; pid < 1100; ++pid) state += "proc " + std::to_string(pid) + " 0 1000\n";
  state += "proc 1099 0 234\n";
  Write(state);
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_PATH);
  int calls = fake_.process_calls();
  EXPECT_EQ(discovery->ProcessMemory(1099), (std::map<int, uint64_t>{{0, 1234}}));
  EXPECT_EQ(discovery->ProcessMemory(1000), (std::map<int, uint64_t>{{0, 1000}}));
  EXPECT_GE(fake_.process_calls() - calls, 4);  // two calls each
}

TEST_F(GpuDiscoveryTest, UsesTheUnversionedProcessCallOfOlderDrivers) {
  // The legacy fake has neither _v3 nor _v2: the unversioned call fills a shorter struct, and
  // reading it with the newer layout would shift every entry after the first.
  OpenFake(FAKE_NVML_LEGACY_PATH, state_file_);
  Write(std::string(kTwoGpus) + "proc 100 0 1000\nproc 200 0 2000\nproc 300 0 3000\nproc 300 1 na\n");
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_LEGACY_PATH);
  EXPECT_EQ(discovery->Devices().size(), 2u);
  EXPECT_EQ(discovery->ProcessMemory(200), (std::map<int, uint64_t>{{0, 2000}}));
  EXPECT_EQ(discovery->ProcessMemory(300), (std::map<int, uint64_t>{{0, 3000}}));
}

TEST_F(GpuDiscoveryTest, InitializesNvmlOncePerLibrary) {
  auto first = MakeNvmlDiscovery(FAKE_NVML_PATH);
  auto second = MakeNvmlDiscovery(FAKE_NVML_PATH);
  EXPECT_EQ(first->Devices().size(), 2u);
  EXPECT_EQ(second->Devices().size(), 2u);
  EXPECT_TRUE(second->ProcessMemory(1).empty());
  EXPECT_EQ(fake_.init_calls(), 1);  // whichever test of this process loaded it first
}

TEST_F(GpuDiscoveryTest, FirstCallsFromManyThreadsAgree) {
  auto discovery = MakeNvmlDiscovery(FAKE_NVML_PATH);
  std::vector<size_t> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = discovery->Devices().size(); });
  }
  for (auto& t : threads) t.join();
  for (size_t n : seen) EXPECT_EQ(n, 2u);
}

TEST_F(GpuDiscoveryTest, MissingLibraryHasNoDevices) {
  auto discovery = MakeNvmlDiscovery(testing::TestCaseDir() + "/libnvidia-ml.so.1");
  EXPECT_TRUE(discovery->Devices().empty());
  EXPECT_TRUE(discovery->ProcessMemory(1).empty());
  EXPECT_TRUE(discovery->Devices().empty());  // asked again: still none, no second load
}

TEST_F(GpuDiscoveryTest, NvmlThatDoesNotStartHasNoDevices) {
  // A copy: a library whose NVML has started stays started for the process, so a failing start
  // needs a library of its own (another file: another handle, with its own state). A new name
  // each run (--gtest_repeat): a loaded library must not be overwritten.
  static int runs = 0;
  std::string copy = testing::TestCaseDir() + "/libnvidia-ml-broken-" + std::to_string(++runs) + ".so";
  std::filesystem::copy_file(FAKE_NVML_PATH, copy);
  std::string broken_state = testing::TestCaseDir() + "/broken.txt";
  std::ofstream(broken_state) << kTwoGpus << "init_fail\n";
  FakeNvml broken = OpenFake(copy, broken_state);
  ASSERT_NE(broken.init_calls, nullptr);
  auto discovery = MakeNvmlDiscovery(copy);
  EXPECT_TRUE(discovery->Devices().empty());
  EXPECT_TRUE(discovery->ProcessMemory(1).empty());
  EXPECT_EQ(broken.init_calls(), 1);
  EXPECT_TRUE(MakeNvmlDiscovery(copy)->Devices().empty());
  EXPECT_EQ(broken.init_calls(), 1);  // not retried: NVML that did not start stays so
}

TEST(GpuDiscovery, NoGpuDiscoveryHasNone) {
  auto discovery = MakeNoGpuDiscovery();
  EXPECT_TRUE(discovery->Devices().empty());
  EXPECT_TRUE(discovery->ProcessMemory(1).empty());
}

}  // namespace
}  // namespace resident
