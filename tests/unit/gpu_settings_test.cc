// Which GPUs `resident serve` uses (cli/gpu_settings.h): CUDA_VISIBLE_DEVICES as Ollama reads it.
#include "cli/gpu_settings.h"

#include <gtest/gtest.h>

namespace resident::cli {
namespace {

std::vector<GpuDevice> Three() {
  std::vector<GpuDevice> d(3);
  for (int i = 0; i < 3; ++i) {
    d[static_cast<size_t>(i)].index = i;
    d[static_cast<size_t>(i)].id = "GPU-" + std::string(1, static_cast<char>('a' + i)) + "bc-" + std::to_string(i);
  }
  return d;
}

std::string Indices(const std::vector<GpuDevice>& d) {
  std::string out;
  for (const GpuDevice& g : d) out += std::to_string(g.index);
  return out;
}

TEST(VisibleDevices, AsCudaVisibleDevicesSays) {
  EXPECT_EQ(Indices(VisibleDevices(Three(), std::nullopt)), "012");  // unset: all
  EXPECT_EQ(Indices(VisibleDevices(Three(), "")), "");               // set and empty: none
  EXPECT_EQ(Indices(VisibleDevices(Three(), "-1")), "");             // Ollama's way to force the CPU
  EXPECT_EQ(Indices(VisibleDevices(Three(), "2,0")), "02");
  EXPECT_EQ(Indices(VisibleDevices(Three(), " 1 ")), "1");
  EXPECT_EQ(Indices(VisibleDevices(Three(), "GPU-bbc-1")), "1");     // a UUID
  EXPECT_EQ(Indices(VisibleDevices(Three(), "GPU-c")), "2");         // its first characters
  EXPECT_EQ(Indices(VisibleDevices(Three(), "7")), "");
}

}  // namespace
}  // namespace resident::cli
