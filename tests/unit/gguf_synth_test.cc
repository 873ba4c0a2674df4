#include "store/gguf_synth.h"

#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace resident {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr uint32_t kSpmVocab = 32000;  // ggml-vocab-llama-spm.gguf

struct GgufCloser {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
using Gguf = std::unique_ptr<gguf_context, GgufCloser>;

Gguf ReadGguf(const fs::path& path) {
  return Gguf(gguf_init_from_file(path.c_str(), gguf_init_params{true, nullptr}));
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uint32_t GetU32(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  EXPECT_GE(id, 0) << key;
  return id < 0 ? 0 : gguf_get_val_u32(g, id);
}

std::string GetStr(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  return id < 0 ? "<missing>" : gguf_get_val_str(g, id);
}

// ---- shape rule -------------------------------------------------------------------------------

TEST(SynthShapeTest, WithinTenPercentOfTargetFrom3MTo2G) {
  for (uint32_t n_vocab : {kSpmVocab, 50257u, 128256u}) {
    const uint64_t min = SynthParamCount(n_vocab, 32, 1, 128);
    for (double target = 3e6; target <= 2e9; target *= 1.07) {
      const auto params = static_cast<uint64_t>(target);
      if (params < min) continue;
      Result<SynthShape> s = ChooseSynthShape(params, n_vocab);
      ASSERT_TRUE(s.ok()) << params << ": " << s.status().message();
      EXPECT_NEAR(static_cast<double>(s->n_params) / target, 1.0, 0.10)
          << "vocab " << n_vocab << " target " << params << " → E " << s->n_embd << " L "
          << s->n_layer << " F " << s->n_ff;
      EXPECT_EQ(s->n_params, SynthParamCount(n_vocab, s->n_embd, s->n_layer, s->n_ff));
      EXPECT_EQ(s->n_embd % 32, 0u);
      EXPECT_EQ(s->n_ff % 64, 0u);
      EXPECT_GE(s->n_layer, 1u);
      EXPECT_EQ(s->n_head_kv, s->n_head);
      EXPECT_EQ(s->n_embd % s->n_head, 0u);
      EXPECT_EQ(s->n_embd / s->n_head, s->n_embd >= 64 ? 64u : s->n_embd);
    }
  }
}

TEST(SynthShapeTest, ReferenceShapes) {
  Result<SynthShape> big = ChooseSynthShape(800'000'000, kSpmVocab);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->n_embd, 2048u);
  EXPECT_EQ(big->n_layer, 10u);
  EXPECT_EQ(big->n_ff, 8192u);
  EXPECT_EQ(big->n_head, 32u);
  EXPECT_EQ(big->n_ctx_train, 4096u);
  EXPECT_EQ(big->n_vocab, kSpmVocab);

  Result<SynthShape> small = ChooseSynthShape(20'000'000, kSpmVocab);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->n_embd, 256u);
  EXPECT_EQ(small->n_head, 4u);
  EXPECT_NEAR(static_cast<double>(small->n_params), 20e6, 1e6);

  // About 2.5M parameters (5 MB at F16) is possible with a 32k vocab.
  Result<SynthShape> tiny = ChooseSynthShape(2'500'000, kSpmVocab);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->n_embd, 32u);
  EXPECT_EQ(tiny->n_head, 1u);
}

TEST(SynthShapeTest, TooSmallSaysTheMinimum) {
  const uint64_t min = SynthParamCount(kSpmVocab, 32, 1, 128);
  EXPECT_TRUE(ChooseSynthShape(min, kSpmVocab).ok());
  Result<SynthShape> s = ChooseSynthShape(min - 1, kSpmVocab);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr(std::to_string(min)));
  EXPECT_FALSE(ChooseSynthShape(1'000'000, 0).ok());
}

// ---- writing ----------------------------------------------------------------------------------

class SynthWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("resident-synth-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  SynthOptions Options(const std::string& name, uint64_t params = 3'000'000) const {
    SynthOptions o;
    o.out_path = (dir_ / name).string();
    o.params = params;
    o.vocab_dir = RESIDENT_VOCAB_DIR;
    o.threads = 2;
    return o;
  }

  fs::path dir_;
};

TEST_F(SynthWriteTest, WritesALlamaGgufThatGgufReadsBack) {
  SynthOptions o = Options("m.gguf");
  std::atomic<uint64_t> last_done{0}, last_total{0};
  bool monotonic = true;
  o.progress = [&](uint64_t done, uint64_t total) {
    if (done < last_done) monotonic = false;
    last_done = done;
    last_total = total;
  };
  Result<SynthShape> shape = WriteSyntheticModel(o);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  EXPECT_FALSE(fs::exists(o.out_path + ".tmp"));
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(last_done.load(), fs::file_size(o.out_path));
  EXPECT_EQ(last_total.load(), fs::file_size(o.out_path));
  EXPECT_NEAR(static_cast<double>(shape->n_params), 3e6, 0.3e6);

  Gguf g = ReadGguf(o.out_path);
  ASSERT_TRUE(g) << "gguf_init_from_file failed";
  EXPECT_EQ(GetStr(g.get(), "general.architecture"), "llama");
  EXPECT_EQ(GetStr(g.get(), "general.name"), "resident-synth-3M");
  EXPECT_EQ(GetU32(g.get(), "general.file_type"), 1u);
  EXPECT_EQ(GetU32(g.get(), "llama.embedding_length"), shape->n_embd);
  EXPECT_EQ(GetU32(g.get(), "llama.block_count"), shape->n_layer);
  EXPECT_EQ(GetU32(g.get(), "llama.feed_forward_length"), shape->n_ff);
  EXPECT_EQ(GetU32(g.get(), "llama.attention.head_count"), shape->n_head);
  EXPECT_EQ(GetU32(g.get(), "llama.attention.head_count_kv"), shape->n_head_kv);
  EXPECT_EQ(GetU32(g.get(), "llama.rope.dimension_count"), shape->n_embd / shape->n_head);
  EXPECT_EQ(GetU32(g.get(), "llama.context_length"), 4096u);
  // The vocab's keys came along.
  EXPECT_EQ(GetStr(g.get(), "tokenizer.ggml.model"), "llama");
  const int64_t tokens = gguf_find_key(g.get(), "tokenizer.ggml.tokens");
  ASSERT_GE(tokens, 0);
  EXPECT_EQ(gguf_get_arr_n(g.get(), tokens), kSpmVocab);
  // llama-spm has no template of its own: the Llama 2 one was added.
  EXPECT_THAT(GetStr(g.get(), "tokenizer.chat_template"), HasSubstr("[INST]"));
  EXPECT_THAT(GetStr(g.get(), "tokenizer.chat_template"), HasSubstr("<<SYS>>"));

  ASSERT_EQ(gguf_get_n_tensors(g.get()), 3 + 9 * static_cast<int64_t>(shape->n_layer));
  uint64_t elements = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    const std::string name = gguf_get_tensor_name(g.get(), i);
    const int64_t* ne = gguf_get_tensor_ne(g.get(), i);
    elements += static_cast<uint64_t>(ne[0] * ne[1] * ne[2] * ne[3]);
    const bool norm = name.find("norm") != std::string::npos;
    EXPECT_EQ(gguf_get_tensor_type(g.get(), i), norm ? GGML_TYPE_F32 : GGML_TYPE_F16) << name;
  }
  EXPECT_EQ(elements, shape->n_params);
  const int64_t embd = gguf_find_tensor(g.get(), "token_embd.weight");
  ASSERT_GE(embd, 0);
  EXPECT_EQ(gguf_get_tensor_ne(g.get(), embd)[0], shape->n_embd);
  EXPECT_EQ(gguf_get_tensor_ne(g.get(), embd)[1], kSpmVocab);
  const int64_t down = gguf_find_tensor(g.get(), "blk.0.ffn_down.weight");
  ASSERT_GE(down, 0);
  EXPECT_EQ(gguf_get_tensor_ne(g.get(), down)[0], shape->n_ff);
  EXPECT_EQ(gguf_get_tensor_ne(g.get(), down)[1], shape->n_embd);
  // The file ends right after the last (padded) tensor.
  const int64_t last = gguf_get_n_tensors(g.get()) - 1;
  const uint64_t end = gguf_get_data_offset(g.get()) + gguf_get_tensor_offset(g.get(), last) +
                       gguf_get_tensor_size(g.get(), last);
  EXPECT_EQ(fs::file_size(o.out_path), (end + 31) / 32 * 32);
}

TEST_F(SynthWriteTest, WeightsLookRandomAndNormsAreOne) {
  SynthOptions o = Options("m.gguf");
  o.type = SynthOptions::Type::kF16;
  ASSERT_TRUE(WriteSyntheticModel(o).ok());
  ggml_context* data_ctx = nullptr;
  Gguf g(gguf_init_from_file(o.out_path.c_str(), gguf_init_params{false, &data_ctx}));
  ASSERT_TRUE(g);
  ggml_tensor* norm = ggml_get_tensor(data_ctx, "blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  ASSERT_EQ(norm->type, GGML_TYPE_F32);
  const auto* ones = static_cast<const float*>(norm->data);
  for (int64_t i = 0; i < ggml_nelements(norm); ++i) EXPECT_EQ(ones[i], 1.0f) << i;
  ggml_tensor* q = ggml_get_tensor(data_ctx, "blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  double sum = 0, sum2 = 0;
  const int64_t n = ggml_nelements(q);
  const auto* h = static_cast<const ggml_fp16_t*>(q->data);
  std::vector<float> f(n);
  ggml_fp16_to_fp32_row(h, f.data(), n);
  for (float x : f) {
    sum += x;
    sum2 += double{x} * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.002);
  EXPECT_NEAR(std::sqrt(sum2 / n), 0.02, 0.002);
  ggml_free(data_ctx);
}

TEST_F(SynthWriteTest, SameSeedSameBytesWhateverTheThreadCount) {
  SynthOptions a = Options("a.gguf", 5'000'000), b = Options("b.gguf", 5'000'000),
               c = Options("c.gguf", 5'000'000);
  a.threads = 1;
  b.threads = 2;
  c.threads = 3;
  ASSERT_TRUE(WriteSyntheticModel(a).ok());
  ASSERT_TRUE(WriteSyntheticModel(b).ok());
  ASSERT_TRUE(WriteSyntheticModel(c).ok());
  const std::string bytes = ReadFile(a.out_path);
  EXPECT_GT(bytes.size(), 8'000'000u);
  EXPECT_TRUE(bytes == ReadFile(b.out_path)) << "threads=1 and threads=2 differ";
  EXPECT_TRUE(bytes == ReadFile(c.out_path)) << "threads=1 and threads=3 differ";
}

TEST_F(SynthWriteTest, DifferentSeedDifferentWeights) {
  SynthOptions a = Options("a.gguf"), b = Options("b.gguf");
  b.seed = a.seed + 1;
  ASSERT_TRUE(WriteSyntheticModel(a).ok());
  ASSERT_TRUE(WriteSyntheticModel(b).ok());
  const std::string x = ReadFile(a.out_path), y = ReadFile(b.out_path);
  ASSERT_EQ(x.size(), y.size());  // same shape and metadata
  size_t same = 0;
  for (size_t i = x.size() / 2; i < x.size() / 2 + 100'000; ++i) same += x[i] == y[i];
  EXPECT_LT(same, 20'000u);
}

TEST_F(SynthWriteTest, Q8_0) {
  SynthOptions q = Options("q.gguf", 10'000'000), f = Options("f.gguf", 10'000'000);
  q.type = SynthOptions::Type::kQ8_0;
  Result<SynthShape> shape = WriteSyntheticModel(q);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  ASSERT_TRUE(WriteSyntheticModel(f).ok());
  Gguf g = ReadGguf(q.out_path);
  ASSERT_TRUE(g);
  EXPECT_EQ(GetU32(g.get(), "general.file_type"), 7u);
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    const std::string name = gguf_get_tensor_name(g.get(), i);
    const bool norm = name.find("norm") != std::string::npos;
    EXPECT_EQ(gguf_get_tensor_type(g.get(), i), norm ? GGML_TYPE_F32 : GGML_TYPE_Q8_0) << name;
  }
  // 8.5 bits against 16 per weight.
  EXPECT_NEAR(static_cast<double>(fs::file_size(q.out_path)) / fs::file_size(f.out_path),
              8.5 / 16, 0.05);
}

TEST_F(SynthWriteTest, VocabByPath) {
  SynthOptions o = Options("m.gguf");
  o.vocab = (fs::path(RESIDENT_VOCAB_DIR) / "ggml-vocab-llama-spm.gguf").string();
  o.vocab_dir.clear();
  Result<SynthShape> shape = WriteSyntheticModel(o);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  EXPECT_EQ(shape->n_vocab, kSpmVocab);
}

TEST_F(SynthWriteTest, UnknownVocabListsTheAvailableOnes) {
  SynthOptions o = Options("m.gguf");
  o.vocab = "no-such-vocab";
  Result<SynthShape> r = WriteSyntheticModel(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("no-such-vocab"));
  EXPECT_THAT(r.status().message(), HasSubstr("llama-spm"));
  EXPECT_THAT(r.status().message(), HasSubstr("qwen2"));
  EXPECT_FALSE(fs::exists(o.out_path));

  EXPECT_THAT(ListSynthVocabs(RESIDENT_VOCAB_DIR), ::testing::Contains("llama-spm"));
}

TEST_F(SynthWriteTest, UnreadableVocabFile) {
  SynthOptions o = Options("m.gguf");
  o.vocab = (dir_ / "missing.gguf").string();
  Result<SynthShape> r = WriteSyntheticModel(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("missing.gguf"));

  const fs::path junk = dir_ / "junk.gguf";
  std::ofstream(junk) << "this is not a gguf file";
  o.vocab = junk.string();
  r = WriteSyntheticModel(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("junk.gguf"));
}

TEST_F(SynthWriteTest, TooFewParamsForTheVocabSaysTheMinimum) {
  SynthOptions o = Options("m.gguf", 1'000'000);
  Result<SynthShape> r = WriteSyntheticModel(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(std::to_string(SynthParamCount(kSpmVocab, 32, 1, 128))));
}

TEST_F(SynthWriteTest, UnwritableOutput) {
  SynthOptions o = Options("m.gguf");
  o.out_path = (dir_ / "no-such-dir" / "m.gguf").string();
  Result<SynthShape> r = WriteSyntheticModel(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no-such-dir"));
}

TEST_F(SynthWriteTest, ChatTemplateOptions) {
  SynthOptions none = Options("none.gguf");
  none.chat_template = "none";
  ASSERT_TRUE(WriteSyntheticModel(none).ok());
  EXPECT_LT(gguf_find_key(ReadGguf(none.out_path).get(), "tokenizer.chat_template"), 0);

  SynthOptions text = Options("text.gguf");
  text.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  ASSERT_TRUE(WriteSyntheticModel(text).ok());
  EXPECT_EQ(GetStr(ReadGguf(text.out_path).get(), "tokenizer.chat_template"), text.chat_template);

  SynthOptions file = Options("file.gguf");
  file.chat_template = (dir_ / "t.jinja").string();
  std::ofstream(file.chat_template) << "{{ messages[0]['content'] }}";
  ASSERT_TRUE(WriteSyntheticModel(file).ok());
  EXPECT_EQ(GetStr(ReadGguf(file.out_path).get(), "tokenizer.chat_template"),
            "{{ messages[0]['content'] }}");

  SynthOptions chatml = Options("chatml.gguf");
  chatml.chat_template = "chatml";
  ASSERT_TRUE(WriteSyntheticModel(chatml).ok());
  EXPECT_THAT(GetStr(ReadGguf(chatml.out_path).get(), "tokenizer.chat_template"),
              HasSubstr("<|im_start|>"));

  SynthOptions missing = Options("missing.gguf");
  missing.chat_template = (dir_ / "missing.jinja").string();
  Result<SynthShape> r = WriteSyntheticModel(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("missing.jinja"));
}

TEST_F(SynthWriteTest, KeepsTheVocabsOwnTemplate) {
  // qwen2 has a ChatML template of its own and 151,936 tokens (at least 9.7M parameters).
  SynthOptions o = Options("qwen.gguf", 10'000'000);
  o.vocab = "qwen2";
  Result<SynthShape> shape = WriteSyntheticModel(o);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  Gguf g = ReadGguf(o.out_path);
  Gguf vocab = ReadGguf(fs::path(RESIDENT_VOCAB_DIR) / "ggml-vocab-qwen2.gguf");
  ASSERT_TRUE(g && vocab);
  EXPECT_EQ(GetStr(g.get(), "tokenizer.chat_template"), GetStr(vocab.get(), "tokenizer.chat_template"));
  EXPECT_EQ(GetStr(g.get(), "general.architecture"), "llama");
  // The vocab's own architecture keys are gone.
  EXPECT_LT(gguf_find_key(g.get(), "qwen2.context_length"), 0);
}

// ---- llama.cpp loads and runs it --------------------------------------------------------------

// The folder of the llama.cpp libraries this test runs with (the CPU backends are there).
std::string LlamaLibDir() {
  Dl_info info{};
  // A string of libggml-base.so's own: its address lies in that library.
  if (dladdr(static_cast<const void*>(ggml_type_name(GGML_TYPE_F32)), &info) != 0 && info.dli_fname) {
    return fs::path(info.dli_fname).parent_path().string();
  }
  return (fs::path(RESIDENT_VOCAB_DIR) / ".." / ".." / "lib").string();
}

void QuietLog(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

class SynthLlamaTest : public SynthWriteTest {
 protected:
  static void SetUpTestSuite() {
    llama_log_set(QuietLog, nullptr);
    ggml_backend_load_all_from_path(LlamaLibDir().c_str());
    llama_backend_init();
  }
  static void TearDownTestSuite() { llama_log_set(nullptr, nullptr); }

  // Loads the model, decodes a prompt and greedily generates a few tokens.
  void LoadAndDecode(const std::string& path, const SynthShape& shape) {
    ASSERT_GT(ggml_backend_dev_count(), 0u) << "no ggml backend loaded from " << LlamaLibDir();
    llama_model_params mp = llama_model_default_params();
    llama_model* model = llama_model_load_from_file(path.c_str(), mp);
    ASSERT_NE(model, nullptr) << "llama.cpp cannot load " << path;
    EXPECT_EQ(llama_model_n_params(model), shape.n_params);
    EXPECT_EQ(static_cast<uint32_t>(llama_model_n_embd(model)), shape.n_embd);
    EXPECT_EQ(static_cast<uint32_t>(llama_model_n_layer(model)), shape.n_layer);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 128;
    cp.n_batch = 128;
    // One thread: these models are tiny, and on a busy machine spinning ggml threads wait for
    // each other (seconds instead of milliseconds).
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    llama_context* ctx = llama_init_from_model(model, cp);
    ASSERT_NE(ctx, nullptr);
    const llama_vocab* vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    EXPECT_EQ(static_cast<uint32_t>(n_vocab), shape.n_vocab);

    const std::string prompt = "Hello, synthetic world";
    std::vector<llama_token> tokens(64);
    const int n = llama_tokenize(vocab, prompt.c_str(), static_cast<int32_t>(prompt.size()),
                                 tokens.data(), static_cast<int32_t>(tokens.size()), true, true);
    ASSERT_GT(n, 1);
    tokens.resize(n);
    ASSERT_EQ(llama_decode(ctx, llama_batch_get_one(tokens.data(), n)), 0);

    llama_sampler* sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
    for (int i = 0; i < 4; ++i) {
      const float* logits = llama_get_logits_ith(ctx, -1);
      ASSERT_NE(logits, nullptr);
      for (int t = 0; t < n_vocab; t += 97) ASSERT_TRUE(std::isfinite(logits[t])) << t;
      llama_token next = llama_sampler_sample(sampler, ctx, -1);
      ASSERT_GE(next, 0);
      ASSERT_LT(next, n_vocab);
      ASSERT_EQ(llama_decode(ctx, llama_batch_get_one(&next, 1)), 0);
    }

    // The template written is one llama.cpp recognises.
    const char* tmpl = llama_model_chat_template(model, nullptr);
    ASSERT_NE(tmpl, nullptr);
    llama_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
    std::vector<char> buf(1024);
    const int32_t len = llama_chat_apply_template(tmpl, msgs, 2, true, buf.data(), static_cast<int32_t>(buf.size()));
    ASSERT_GT(len, 0);
    EXPECT_THAT(std::string(buf.data(), len), HasSubstr("[INST]"));
    EXPECT_THAT(std::string(buf.data(), len), HasSubstr("Be brief."));

    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
  }
};

TEST_F(SynthLlamaTest, LoadsAndDecodesF16) {
  SynthOptions o = Options("f16.gguf");
  Result<SynthShape> shape = WriteSyntheticModel(o);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  LoadAndDecode(o.out_path, *shape);
}

TEST_F(SynthLlamaTest, LoadsAndDecodesQ8_0) {
  SynthOptions o = Options("q8.gguf", 10'000'000);
  o.type = SynthOptions::Type::kQ8_0;
  Result<SynthShape> shape = WriteSyntheticModel(o);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  LoadAndDecode(o.out_path, *shape);
}

}  // namespace
}  // namespace resident
