// The footprint rule of sched/footprint.h, number by number.
#include "sched/footprint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <string>

#include "store/gguf_synth.h"

namespace resident::sched {
namespace {

// A 7B-like llama: 32 layers, 4096 wide, 32 heads of which 8 for K/V (GQA), 32000 tokens.
store::GgufInfo SevenB() {
  store::GgufInfo info;
  info.tensor_bytes = 4'000'000'000;
  info.n_ctx_train = 32768;
  info.n_embd = 4096;
  info.n_layer = 32;
  info.n_head = 32;
  info.n_head_kv = 8;
  info.n_vocab = 32000;
  info.n_ff = 14336;
  return info;
}

TEST(Footprint, WeightsKvCacheComputeAndTheProcess) {
  runner::LoadRequest load;
  load.n_ctx = 2048;
  load.n_batch = 512;
  load.n_parallel = 1;
  Footprint f = PredictFootprint(SevenB(), load);
  EXPECT_EQ(f.weights, 4'000'000'000u);
  // K and V, F16: 2 × 32 layers × 2048 cells × (4096 / 32 × 8 = 1024) × 2 bytes = 256 MiB.
  EXPECT_EQ(f.kv_cache, 2ull * 32 * 2048 * 1024 * 2);
  EXPECT_EQ(f.kv_cache, 256ull << 20);
  // 512 × (4 × 4096 + 14336) × 4 bytes, and 8 outputs' logits of 32000 floats.
  EXPECT_EQ(f.compute, 512ull * (4 * 4096 + 14336) * 4 + 8ull * 32000 * 4);
  EXPECT_EQ(f.process, 24ull << 20);
  EXPECT_EQ(f.total(), f.weights + f.kv_cache + f.compute + f.process);
}

TEST(Footprint, TheKvCacheScalesWithNumCtxAndParallelSlots) {
  runner::LoadRequest load;
  load.n_ctx = 2048;
  load.n_parallel = 1;
  const uint64_t one = PredictFootprint(SevenB(), load).kv_cache;
  load.n_ctx = 8192;
  EXPECT_EQ(PredictFootprint(SevenB(), load).kv_cache, 4 * one);
  load.n_ctx = 2048;
  load.n_parallel = 4;  // num_ctx is per request: four slots hold four contexts
  EXPECT_EQ(PredictFootprint(SevenB(), load).kv_cache, 4 * one);
  load.n_parallel = 0;  // unset counts as one
  EXPECT_EQ(PredictFootprint(SevenB(), load).kv_cache, one);
}

TEST(Footprint, MissingFieldsFallBack) {
  store::GgufInfo info = SevenB();
  info.n_head_kv = 0;  // no GQA: K/V as wide as the embedding
  runner::LoadRequest load;
  load.n_ctx = 1024;
  load.n_parallel = 1;
  EXPECT_EQ(PredictFootprint(info, load).kv_cache, 2ull * 32 * 1024 * 4096 * 2);
  load.n_ctx = 0;  // no num_ctx: the training context, at most 4096
  EXPECT_EQ(PredictFootprint(info, load).kv_cache, 2ull * 32 * 4096 * 4096 * 2);
  info.n_ctx_train = 512;
  EXPECT_EQ(PredictFootprint(info, load).kv_cache, 2ull * 32 * 512 * 4096 * 2);
  load.n_batch = 0;  // at least one token per batch
  EXPECT_EQ(PredictFootprint(info, load).compute, 1ull * (4 * 4096 + 14336) * 4 + 8ull * 32000 * 4);
}

TEST(Footprint, ThePredictorReportsAnUnreadableFile) {
  ModelSpec spec;
  spec.load.model_path = "/nonexistent/model.gguf";
  auto p = MakeGgufPredictor()(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
}

// A file llama.cpp would abort on never reaches a runner: the predictor, asked before every load,
// refuses it naming the model and the key.
TEST(Footprint, ThePredictorRefusesHyperparametersLlamaCppWouldAbortOn) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("resident-footprint-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  SynthOptions o;
  o.out_path = (dir / "eps.gguf").string();
  o.params = 3'000'000;
  o.vocab_dir = RESIDENT_VOCAB_DIR;
  o.threads = 2;
  o.metadata = {{"llama.attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN()}};
  ASSERT_TRUE(WriteSyntheticModel(o).ok());
  ModelSpec spec;
  spec.name = "eps:latest";
  spec.load.model_path = o.out_path;
  auto p = MakeGgufPredictor()(spec);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            "model \"eps:latest\" cannot be loaded: llama.attention.layer_norm_rms_epsilon is nan: an epsilon must "
            "be a finite number above 0");
}

}  // namespace
}  // namespace resident::sched
