// ReadGgufValues: what /api/show writes in model_info and tensors, arrays read only when asked
// and within a bound on the elements read in all.
#include "store/gguf_values.h"

#include <gtest/gtest.h>

#include <string>

namespace resident::store {
namespace {

const GgufValue* Find(const GgufValues& values, const std::string& key) {
  for (const auto& [k, v] : values.kv) {
    if (k == key) return &v;
  }
  return nullptr;
}

const std::string kVocab = std::string(RESIDENT_VOCAB_DIR) + "/ggml-vocab-llama-spm.gguf";

TEST(GgufValuesTest, ArraysAreReadOnlyWhenAskedAndTypedAsTheFileHasThem) {
  auto brief = ReadGgufValues(kVocab, 0);
  ASSERT_TRUE(brief.ok()) << brief.status().message();
  const GgufValue* tokens = Find(*brief, "tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->kind, GgufValue::Kind::kArray);
  EXPECT_EQ(tokens->size, 32000u);
  EXPECT_TRUE(tokens->items.empty());
  const GgufValue* model = Find(*brief, "tokenizer.ggml.model");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->kind, GgufValue::Kind::kString);
  EXPECT_EQ(model->s, "llama");

  auto full = ReadGgufValues(kVocab, -1);
  ASSERT_TRUE(full.ok());
  tokens = Find(*full, "tokenizer.ggml.tokens");
  ASSERT_EQ(tokens->items.size(), 32000u);
  EXPECT_EQ(tokens->items[1].s, "<s>");
  const GgufValue* scores = Find(*full, "tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  ASSERT_EQ(scores->items.size(), 32000u);
  EXPECT_EQ(scores->items[0].kind, GgufValue::Kind::kFloat);
  const GgufValue* types = Find(*full, "tokenizer.ggml.token_type");
  ASSERT_NE(types, nullptr);
  ASSERT_EQ(types->items.size(), 32000u);
  EXPECT_EQ(types->items[0].kind, GgufValue::Kind::kInt);
}

// 40,000 elements in all: the first 32,000-token array is read, the next ones (which would go
// past the bound) are not.
TEST(GgufValuesTest, ArraysPastTheTotalBoundAreNotRead) {
  auto bounded = ReadGgufValues(kVocab, -1, 40000);
  ASSERT_TRUE(bounded.ok());
  size_t read = 0, unread = 0;
  for (const auto& [k, v] : bounded->kv) {
    if (v.kind != GgufValue::Kind::kArray || v.size != 32000u) continue;
    if (v.items.empty()) ++unread;
    else ++read;
  }
  EXPECT_EQ(read, 1u);
  EXPECT_EQ(unread, 2u);  // of tokens, scores and token types
}

TEST(GgufValuesTest, AMissingFileIsNotFound) {
  auto missing = ReadGgufValues("/nonexistent/model.gguf", -1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace resident::store
