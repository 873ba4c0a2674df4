// ReadGgufInfoFromBuffer (what the gguf fuzzer drives) reads what ReadGgufInfo reads from a file.
#include "store/gguf_metadata.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

namespace resident::store {
namespace {

TEST(GgufMetadataTest, ABufferReadsLikeTheFileItCameFrom) {
  const std::string path = std::string(RESIDENT_VOCAB_DIR) + "/ggml-vocab-llama-spm.gguf";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto from_file = ReadGgufInfo(path);
  auto from_buffer = ReadGgufInfoFromBuffer(bytes, "vocab.gguf");
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  ASSERT_TRUE(from_buffer.ok()) << from_buffer.status().message();
  EXPECT_EQ(from_buffer->architecture, from_file->architecture);
  EXPECT_EQ(from_buffer->n_vocab, from_file->n_vocab);
  EXPECT_GT(from_buffer->n_vocab, 0u);
  EXPECT_EQ(from_buffer->kv, from_file->kv);
  EXPECT_EQ(from_buffer->tensors.size(), from_file->tensors.size());

  for (const std::string& bad : {std::string(), std::string("GGU"), std::string("NOPE") + bytes.substr(4),
                                 bytes.substr(0, bytes.size() / 2)}) {
    auto r = ReadGgufInfoFromBuffer(bad, "bad.gguf");
    ASSERT_FALSE(r.ok()) << bad.size();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("bad.gguf"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace resident::store
