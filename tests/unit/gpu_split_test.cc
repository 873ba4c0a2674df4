// Placing a model's layers on a GPU before it loads (sched/gpu_split.h), on GGUF metadata built by
// hand: which layers, what they cost in VRAM, what stays in host memory.
#include "sched/gpu_split.h"

#include <gtest/gtest.h>

#include "sched/footprint.h"

namespace resident::sched {
namespace {

constexpr uint64_t kMB = 1'000'000;

// Four blocks of 100 MB, an output matrix of 50 MB (unless tied to the input embeddings), the
// input embeddings of 50 MB, an output norm of 1 MB.
store::GgufInfo Model(bool tied = false) {
  store::GgufInfo info;
  info.architecture = "llama";
  info.n_layer = 4;
  info.n_embd = 512;
  info.n_head = 8;
  info.n_head_kv = 8;
  info.n_ff = 1024;
  info.n_vocab = 1000;
  info.n_ctx_train = 2048;
  for (int i = 0; i < 4; ++i) {
    info.tensors.push_back({"blk." + std::to_string(i) + ".attn_q.weight", "f16", 60 * kMB});
    info.tensors.push_back({"blk." + std::to_string(i) + ".ffn_up.weight", "f16", 40 * kMB});
  }
  info.tensors.push_back({"token_embd.weight", "f16", 50 * kMB});
  info.tensors.push_back({"output_norm.weight", "f32", 1 * kMB});
  if (!tied) info.tensors.push_back({"output.weight", "f16", 50 * kMB});
  for (const auto& t : info.tensors) info.tensor_bytes += t.bytes;
  return info;
}

runner::LoadRequest Load() {
  runner::LoadRequest l;
  l.n_ctx = 1024;
  l.n_batch = 512;
  return l;
}

TEST(GpuSplit, VramGrowsByBlockThenOutput) {
  const auto info = Model();
  const auto load = Load();
  const Footprint f = PredictFootprint(info, load);
  const uint64_t kv_layer = f.kv_cache / 4;
  const uint64_t fixed = f.compute + GpuSplitOptions{}.backend_bytes;
  EXPECT_EQ(PredictVram(info, load, 0), 0u);
  EXPECT_EQ(PredictVram(info, load, 1), 100 * kMB + kv_layer + fixed);
  EXPECT_EQ(PredictVram(info, load, 4), 400 * kMB + 4 * kv_layer + fixed);
  EXPECT_EQ(PredictVram(info, load, 5), 451 * kMB + 4 * kv_layer + fixed);  // + output and its norm
  EXPECT_EQ(PredictVram(info, load, 99), PredictVram(info, load, 5));
}

TEST(GpuSplit, AsManyLayersAsFitTheRoom) {
  const auto info = Model();
  const auto load = Load();
  const uint64_t cpu_total = PredictFootprint(info, load).total();
  const uint64_t kv_layer = PredictFootprint(info, load).kv_cache / 4;

  GpuPlacement all = SplitLayers(info, load, -1, {{0, 100'000 * kMB}});
  EXPECT_EQ(all.gpu, 0);
  EXPECT_EQ(all.layers, 5);
  EXPECT_EQ(all.total_layers, 5);
  EXPECT_EQ(all.vram_bytes, PredictVram(info, load, 5));
  // Left on the host: the input embeddings, compute buffers and the process.
  EXPECT_EQ(all.host_bytes, cpu_total - 451 * kMB - 4 * kv_layer);

  // Room for two layers and a little: two.
  const uint64_t two = PredictVram(info, load, 2);
  GpuPlacement some = SplitLayers(info, load, -1, {{0, two + 1}});
  EXPECT_EQ(some.layers, 2);
  EXPECT_EQ(some.vram_bytes, two);
  EXPECT_EQ(some.host_bytes, cpu_total - 200 * kMB - 2 * kv_layer);
  EXPECT_EQ(SplitLayers(info, load, -1, {{0, two - 1}}).layers, 1);

  // No room for even one: CPU only, as much as the CPU prediction.
  GpuPlacement none = SplitLayers(info, load, -1, {{0, 10 * kMB}});
  EXPECT_EQ(none.gpu, -1);
  EXPECT_EQ(none.layers, 0);
  EXPECT_EQ(none.vram_bytes, 0u);
  EXPECT_EQ(none.host_bytes, cpu_total);
}

TEST(GpuSplit, NumGpuZeroIsCpuOnlyAndAPositiveOneIsHonoured) {
  const auto info = Model();
  const auto load = Load();
  EXPECT_EQ(SplitLayers(info, load, 0, {{0, 100'000 * kMB}}).gpu, -1);
  EXPECT_EQ(SplitLayers(info, load, -1, {}).gpu, -1);  // no device
  GpuPlacement three = SplitLayers(info, load, 3, {{0, 1}});  // the user asked, whatever the room
  EXPECT_EQ(three.gpu, 0);
  EXPECT_EQ(three.layers, 3);
  EXPECT_EQ(three.vram_bytes, PredictVram(info, load, 3));
  EXPECT_EQ(SplitLayers(info, load, 40, {{0, 1}}).layers, 5);  // at most every layer
}

TEST(GpuSplit, TheDeviceWhereMostLayersFitThenTheMostRoom) {
  const auto info = Model();
  const auto load = Load();
  const uint64_t two = PredictVram(info, load, 2), four = PredictVram(info, load, 4);
  EXPECT_EQ(SplitLayers(info, load, -1, {{0, two}, {1, four}}).gpu, 1);
  EXPECT_EQ(SplitLayers(info, load, -1, {{0, four}, {1, two}}).gpu, 0);
  EXPECT_EQ(SplitLayers(info, load, -1, {{0, 100'000 * kMB}, {1, 200'000 * kMB}}).gpu, 1);
}

TEST(GpuSplit, TiedEmbeddingsAreCopiedToTheDeviceAndStayOnTheHost) {
  const auto info = Model(/*tied=*/true);
  const auto load = Load();
  const uint64_t kv_layer = PredictFootprint(info, load).kv_cache / 4;
  EXPECT_EQ(PredictVram(info, load, 5) - PredictVram(info, load, 4), 51 * kMB);  // norm + the copy
  GpuPlacement all = SplitLayers(info, load, -1, {{0, 100'000 * kMB}});
  EXPECT_EQ(all.host_bytes, PredictFootprint(info, load).total() - 401 * kMB - 4 * kv_layer);
}

TEST(GpuSplit, Describe) {
  EXPECT_EQ(DescribePlacement({}), "CPU only");
  GpuPlacement p;
  p.gpu = 1;
  p.layers = 28;
  p.total_layers = 33;
  p.vram_bytes = 5'000'000'000;
  EXPECT_EQ(DescribePlacement(p), "28/33 layers on GPU 1 (5.0 GB)");
}

}  // namespace
}  // namespace resident::sched
