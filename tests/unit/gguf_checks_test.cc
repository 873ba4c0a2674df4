// CheckGgufHyperparameters: the values llama.cpp aborts on or computes NaN from are refused with
// a message naming the key and its value; real models' values pass. First on metadata built by
// hand (one rule at a time), then on files the synthesizer writes with hostile keys (what the
// reader collects for the checks), then on every vocabulary llama.cpp ships (no false alarm).
#include "store/gguf_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "store/gguf_metadata.h"
#include "store/gguf_synth.h"

namespace resident::store {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The metadata of a small llama as ReadGgufInfo reads it: 3 blocks, 4 heads, an SPM vocabulary.
GgufInfo Llama() {
  GgufInfo info;
  info.architecture = "llama";
  info.numbers = {{"llama.block_count", 3},
                  {"llama.context_length", 4096},
                  {"llama.embedding_length", 256},
                  {"llama.feed_forward_length", 1024},
                  {"llama.attention.head_count", 4},
                  {"llama.attention.head_count_kv", 4},
                  {"llama.rope.dimension_count", 64},
                  {"llama.rope.freq_base", 10000},
                  {"llama.attention.layer_norm_rms_epsilon", 1e-5},
                  {"general.file_type", 1}};
  info.kv = {{"general.architecture", "llama"}, {"tokenizer.ggml.model", "llama"}};
  for (const auto& [k, v] : info.numbers) info.kv[k] = std::to_string(v);
  info.n_blocks_present = 3;
  info.n_byte_tokens = 256;
  return info;
}

struct Case {
  std::string what;
  std::function<void(GgufInfo&)> change;
  std::string message;  // what the error says (the key, its value, the rule)
};

TEST(GgufChecksTest, AHealthyModelPasses) {
  EXPECT_TRUE(CheckGgufHyperparameters(Llama()).ok()) << CheckGgufHyperparameters(Llama()).message();
}

TEST(GgufChecksTest, EachRuleNamesTheKeyAndItsValue) {
  const std::vector<Case> cases = {
      // GGML_ASSERT(eps >= 0) in every norm: NaN aborted the runner on every request.
      {"NaN epsilon", [](GgufInfo& i) { i.numbers["llama.attention.layer_norm_rms_epsilon"] = kNaN; },
       "llama.attention.layer_norm_rms_epsilon is nan: an epsilon must be a finite number above 0"},
      {"zero epsilon", [](GgufInfo& i) { i.numbers["llama.attention.layer_norm_rms_epsilon"] = 0; },
       "llama.attention.layer_norm_rms_epsilon is 0: an epsilon must be"},
      {"negative epsilon", [](GgufInfo& i) { i.numbers["llama.attention.layer_norm_epsilon"] = -1; },
       "llama.attention.layer_norm_epsilon is -1: an epsilon must be"},
      {"infinite epsilon", [](GgufInfo& i) { i.numbers["llama.attention.layer_norm_rms_epsilon"] = kInf; },
       "llama.attention.layer_norm_rms_epsilon is inf: an epsilon must be"},
      // A base of 1e-45 gave HTTP 200 with every embedding null and one token repeated.
      {"tiny rope base", [](GgufInfo& i) { i.numbers["llama.rope.freq_base"] = 1e-30; },
       "llama.rope.freq_base is 1e-30: a rope base must be a finite number of at least 1"},
      {"rope base below 1", [](GgufInfo& i) { i.numbers["llama.rope.freq_base"] = 0.5; },
       "llama.rope.freq_base is 0.5: a rope base must be"},
      {"NaN rope base", [](GgufInfo& i) { i.numbers["llama.rope.freq_base"] = kNaN; },
       "llama.rope.freq_base is nan: a rope base must be"},
      {"sliding-window rope base", [](GgufInfo& i) { i.numbers["llama.rope.freq_base_swa"] = 0; },
       "llama.rope.freq_base_swa is 0: a rope base must be"},
      {"negative rope scaling", [](GgufInfo& i) { i.numbers["llama.rope.scaling.factor"] = -2; },
       "llama.rope.scaling.factor is -2: a rope scaling factor must be"},
      {"any other float not finite", [](GgufInfo& i) { i.numbers["llama.rope.scaling.attn_factor"] = -kInf; },
       "llama.rope.scaling.attn_factor is -inf: a hyperparameter must be a finite number"},
      {"unknown rope scaling type", [](GgufInfo& i) { i.kv["llama.rope.scaling.type"] = "cubic"; },
       "llama.rope.scaling.type is \"cubic\": the rope scaling types are none, linear, yarn and longrope"},
      // block_count 2^31 on a 40 MB file was predicted to need 4504 TB.
      {"huge block count", [](GgufInfo& i) { i.numbers["llama.block_count"] = 2147483648.0; },
       "llama.block_count is 2147483648: the file holds tensors for 3 blocks (blk.0 to blk.2): it is corrupt"},
      {"huge block count, blocks named otherwise", [](GgufInfo& i) {
         i.numbers["llama.block_count"] = 2147483648.0;
         i.n_blocks_present = 0;
       },
       "llama.block_count is 2147483648: a model has 1 to 512 blocks"},
      {"more blocks than llama.cpp takes", [](GgufInfo& i) {
         i.numbers["llama.block_count"] = 513;
         i.n_blocks_present = 513;
       },
       "llama.block_count is 513: a model has 1 to 512 blocks"},
      {"no blocks", [](GgufInfo& i) {
         i.numbers["llama.block_count"] = 0;
         i.n_blocks_present = 0;
       },
       "llama.block_count is 0: a model has"},
      {"block count beside the tensors", [](GgufInfo& i) { i.numbers["llama.block_count"] = 4; },
       "llama.block_count is 4: the file holds tensors for 3 blocks (blk.0 to blk.2): it is corrupt"},
      {"block count missing", [](GgufInfo& i) { i.numbers.erase("llama.block_count"); },
       "llama.block_count is missing"},
      {"more prediction layers than blocks", [](GgufInfo& i) { i.numbers["llama.nextn_predict_layers"] = 4; },
       "llama.nextn_predict_layers is 4: it must be at most llama.block_count"},
      {"zero embedding", [](GgufInfo& i) { i.numbers["llama.embedding_length"] = 0; },
       "llama.embedding_length is 0: an embedding length is 1 to 1048576"},
      {"huge embedding", [](GgufInfo& i) { i.numbers["llama.embedding_length"] = 4294967295.0; },
       "llama.embedding_length is 4294967295"},
      {"no context", [](GgufInfo& i) { i.numbers["llama.context_length"] = 0; },
       "llama.context_length is 0: a training context is at least 1 token"},
      {"huge feed-forward", [](GgufInfo& i) { i.numbers["llama.feed_forward_length"] = 1e12; },
       "llama.feed_forward_length is 1000000000000: a feed-forward length is at most 4194304"},
      {"huge head count", [](GgufInfo& i) { i.numbers["llama.attention.head_count"] = 1e6; },
       "llama.attention.head_count is 1000000: a head count is at most 65536"},
      {"more K/V heads than heads", [](GgufInfo& i) { i.numbers["llama.attention.head_count_kv"] = 8; },
       "llama.attention.head_count_kv is 8: a layer has at most llama.attention.head_count (4) K/V heads"},
      {"K/V heads that do not divide", [](GgufInfo& i) { i.numbers["llama.attention.head_count_kv"] = 3; },
       "llama.attention.head_count_kv is 3: llama.attention.head_count (4) must be a multiple of it"},
      {"one layer's K/V heads",
       [](GgufInfo& i) {
         i.numbers.erase("llama.attention.head_count_kv");
         i.number_arrays["llama.attention.head_count_kv"] = {4, 3, 4};
       },
       "llama.attention.head_count_kv is 3 (layer 1): llama.attention.head_count (4) must be a multiple of it"},
      {"heads that do not divide the embedding", [](GgufInfo& i) {
         i.numbers["llama.attention.head_count"] = 3;
         i.numbers["llama.attention.head_count_kv"] = 3;
       },
       "llama.attention.head_count is 3: llama.embedding_length (256) must be a multiple of it"},
      {"too many experts", [](GgufInfo& i) { i.numbers["llama.expert_count"] = 2000; },
       "llama.expert_count is 2000: a model has at most 1024 experts"},
      {"more experts used than there are", [](GgufInfo& i) {
         i.numbers["llama.expert_count"] = 2;
         i.numbers["llama.expert_used_count"] = 3;
       },
       "llama.expert_used_count is 3: it must be at most llama.expert_count (2)"},
      {"experts used without experts", [](GgufInfo& i) { i.numbers["llama.expert_used_count"] = 1; },
       "llama.expert_used_count is 1: it must be at most llama.expert_count (0)"},
      {"experts none of which is used", [](GgufInfo& i) { i.numbers["llama.expert_count"] = 8; },
       "llama.expert_used_count is missing"},
      // "bert\0" reads as "bert" (llama.cpp reads a C string): WordPiece over byte tokens aborted
      // the load.
      {"WordPiece over byte tokens", [](GgufInfo& i) { i.kv["tokenizer.ggml.model"] = "bert"; },
       "tokenizer.ggml.model is \"bert\": a WordPiece (\"bert\") vocabulary has no byte tokens, and this one has 256"},
      {"unknown tokenizer", [](GgufInfo& i) { i.kv["tokenizer.ggml.model"] = "gpt3"; },
       "tokenizer.ggml.model is \"gpt3\": not a tokenizer llama.cpp knows (llama, gpt2, bert,"},
      {"control bytes in a tokenizer name", [](GgufInfo& i) { i.kv["tokenizer.ggml.model"] = "l\nlama"; },
       "tokenizer.ggml.model is \"l\\x0alama\""},
      {"no architecture", [](GgufInfo& i) { i.architecture.clear(); }, "general.architecture is missing"},
  };
  for (const Case& c : cases) {
    GgufInfo info = Llama();
    c.change(info);
    Status st = CheckGgufHyperparameters(info);
    ASSERT_FALSE(st.ok()) << c.what;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(GgufChecksTest, WhatRealModelsDoPasses) {
  const std::vector<Case> cases = {
      {"WordPiece without byte tokens", [](GgufInfo& i) {
         i.kv["tokenizer.ggml.model"] = "bert";
         i.n_byte_tokens = 0;
       }},
      {"no tokenizer key (llama.cpp says so itself)", [](GgufInfo& i) { i.kv.erase("tokenizer.ggml.model"); }},
      {"layers without attention", [](GgufInfo& i) {
         i.numbers.erase("llama.attention.head_count");
         i.numbers.erase("llama.attention.head_count_kv");
         i.number_arrays["llama.attention.head_count"] = {4, 0, 4};
         i.number_arrays["llama.attention.head_count_kv"] = {2, 0, 1};
       }},
      {"K/V heads only in the attention layers of a hybrid", [](GgufInfo& i) {
         i.numbers.erase("llama.attention.head_count_kv");
         i.number_arrays["llama.attention.head_count_kv"] = {0, 4, 0};
       }},
      {"heads of their own width", [](GgufInfo& i) {
         i.numbers["llama.attention.head_count"] = 3;
         i.numbers["llama.attention.head_count_kv"] = 1;
         i.kv["llama.attention.key_length"] = "128";
       }},
      {"blocks with other names (an encoder-decoder)", [](GgufInfo& i) { i.n_blocks_present = 0; }},
      {"a rope base of 1", [](GgufInfo& i) { i.numbers["llama.rope.freq_base"] = 1; }},
      {"no rope scaling", [](GgufInfo& i) { i.numbers["llama.rope.scaling.factor"] = 0; }},
      {"yarn", [](GgufInfo& i) { i.kv["llama.rope.scaling.type"] = "yarn"; }},
      {"experts", [](GgufInfo& i) {
         i.numbers["llama.expert_count"] = 8;
         i.numbers["llama.expert_used_count"] = 2;
       }},
      {"another architecture's keys are not llama's", [](GgufInfo& i) { i.numbers["gpt2.rope.freq_base"] = kNaN; }},
  };
  for (const Case& c : cases) {
    GgufInfo info = Llama();
    c.change(info);
    Status st = CheckGgufHyperparameters(info);
    EXPECT_TRUE(st.ok()) << c.what << ": " << st.message();
  }
}

// ---- on files -------------------------------------------------------------------------------------

class GgufChecksFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("resident-gguf-checks-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device()()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // The smallest llama on the 32k SPM vocabulary (3 blocks), with these keys set.
  std::string Write(const std::string& name, const decltype(SynthOptions::metadata)& metadata) {
    SynthOptions o;
    o.out_path = (dir_ / (name + ".gguf")).string();
    o.params = 3'000'000;
    o.vocab_dir = RESIDENT_VOCAB_DIR;
    o.threads = 2;
    o.metadata = metadata;
    auto shape = WriteSyntheticModel(o);
    EXPECT_TRUE(shape.ok()) << shape.status().message();
    return o.out_path;
  }
  static Status Check(const std::string& path) {
    auto info = ReadGgufInfo(path);
    if (!info.ok()) return info.status();
    return CheckGgufHyperparameters(*info);
  }

  fs::path dir_;
};

TEST_F(GgufChecksFileTest, TheReaderCollectsWhatTheChecksNeed) {
  auto info = ReadGgufInfo(Write("plain", {}));
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->n_blocks_present, info->n_layer);
  EXPECT_GT(info->n_blocks_present, 0u);
  EXPECT_GT(info->n_byte_tokens, 0u);  // <0x00>...<0xFF>
  EXPECT_EQ(info->numbers.at("llama.block_count"), info->n_layer);
  EXPECT_TRUE(info->numbers.count("llama.attention.layer_norm_rms_epsilon"));
  EXPECT_TRUE(CheckGgufHyperparameters(*info).ok()) << CheckGgufHyperparameters(*info).message();
}

TEST_F(GgufChecksFileTest, TheReproductionsOfTheIssueAreRefused) {
  const std::vector<std::pair<std::string, decltype(SynthOptions::metadata)>> files = {
      {"eps-nan", {{"llama.attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN()}}},
      {"rope-tiny", {{"llama.rope.freq_base", 1e-45f}}},
      {"blocks-huge", {{"llama.block_count", 2147483648u}}},
      {"tokenizer-bert", {{"tokenizer.ggml.model", std::string("bert")}}},
      {"tokenizer-unknown", {{"tokenizer.ggml.model", std::string("gpt3")}}},
  };
  const std::vector<std::string> messages = {
      "llama.attention.layer_norm_rms_epsilon is nan: an epsilon must be",
      "a rope base must be a finite number of at least 1",
      "llama.block_count is 2147483648: the file holds tensors for ",
      "tokenizer.ggml.model is \"bert\": a WordPiece",
      "tokenizer.ggml.model is \"gpt3\": not a tokenizer llama.cpp knows",
  };
  for (size_t i = 0; i < files.size(); ++i) {
    Status st = Check(Write(files[i].first, files[i].second));
    ASSERT_FALSE(st.ok()) << files[i].first;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr(messages[i])) << files[i].first;
  }

  // "bert\0": a NUL inside the string. The synthesizer writes C strings, so the file is patched.
  const std::string path = Write("tokenizer-bert-nul", {{"tokenizer.ggml.model", std::string("bertX")}});
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = bytes.find("bertX");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4] = '\0';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  Status st = Check(path);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("tokenizer.ggml.model is \"bert\": a WordPiece"));
}

// No false alarm: every vocabulary in llama.cpp's tree (WordPiece, SPM, BPE, UGM...) passes every
// check once it has the block_count a vocab-only file lacks.
TEST(GgufChecksVocabTest, EveryShippedVocabularyPasses) {
  const std::vector<std::string> vocabs = ListSynthVocabs(RESIDENT_VOCAB_DIR);
  ASSERT_FALSE(vocabs.empty());
  std::set<std::string> tokenizers;
  for (const std::string& v : vocabs) {
    const std::string path = std::string(RESIDENT_VOCAB_DIR) + "/ggml-vocab-" + v + ".gguf";
    auto info = ReadGgufInfo(path);
    ASSERT_TRUE(info.ok()) << path << ": " << info.status().message();
    info->numbers.emplace(info->architecture + ".block_count", 1);
    Status st = CheckGgufHyperparameters(*info);
    EXPECT_TRUE(st.ok()) << v << ": " << st.message();
    tokenizers.insert(info->kv["tokenizer.ggml.model"]);
  }
  EXPECT_TRUE(tokenizers.count("bert") && tokenizers.count("llama") && tokenizers.count("gpt2"))
      << ::testing::PrintToString(tokenizers);
}

}  // namespace
}  // namespace resident::store
