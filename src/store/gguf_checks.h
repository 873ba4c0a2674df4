// Checks of a GGUF model's hyperparameters, made before llama.cpp sees the file: on values a
// corrupt or hostile file can hold, llama.cpp aborts its process (GGML_ASSERT: a NaN epsilon, more
// than 512 blocks, a WordPiece tokenizer over byte tokens) or computes NaN for every output (a
// rope base of 1e-45), and a huge block count makes the memory prediction absurd. Used by
// ModelStore::Create (a bad file is refused at create time) and by the footprint predictor that
// runs before every load (a bad file dropped in a models folder fails its request, no runner
// starts).
#pragma once

#include <array>
#include <string_view>

#include "core/status.h"
#include "store/gguf_metadata.h"

namespace resident::store {

// The tokenizer models llama.cpp's vocabulary loader knows (llama-vocab.cpp); any other value of
// tokenizer.ggml.model fails its load.
inline constexpr std::array<std::string_view, 11> kKnownTokenizerModels = {
    "llama", "gpt2", "bert", "t5", "rwkv", "plamo2", "gemma4", "hybriddna", "whitespace", "none", "no_vocab"};

// llama.cpp's LLAMA_MAX_LAYERS: a larger block_count is a GGML_ASSERT.
inline constexpr uint64_t kMaxBlockCount = 512;
// Generous bounds on widths: the largest models have embeddings of tens of thousands.
inline constexpr uint64_t kMaxEmbeddingLength = 1u << 20;
inline constexpr uint64_t kMaxFeedForwardLength = 1u << 22;
inline constexpr uint64_t kMaxHeadCount = 1u << 16;
// llama.cpp's LLAMA_MAX_EXPERTS.
inline constexpr uint64_t kMaxExpertCount = 1024;

// Checks a GGUF's metadata (ReadGgufInfo) for what llama.cpp would abort on or turn into NaN or
// infinite outputs. With A the value of general.architecture (required; "llama" in the examples):
// - every floating-point A.* scalar is finite; an epsilon (a key ending in "epsilon", e.g.
//   A.attention.layer_norm_rms_epsilon) is above 0; a rope base (A.rope.freq_base,
//   A.rope.freq_base_swa) is at least 1 (below 1 the rotation frequencies grow without bound:
//   1e-45 overflows to infinity and every output is NaN); A.rope.scaling.factor is at least 0;
//   A.rope.scaling.type is none, linear, yarn or longrope;
// - A.block_count is present, equals 1 + the largest N of the file's blk.N.* tensors when it has
//   any (else the file is corrupt), and is 1 to kMaxBlockCount; A.nextn_predict_layers is at
//   most A.block_count;
// - A.embedding_length, when present, is 1 to kMaxEmbeddingLength; A.context_length at least 1;
//   A.feed_forward_length (one value or one per layer) at most kMaxFeedForwardLength;
// - A.attention.head_count (one value or one per layer) is at most kMaxHeadCount, and a non-zero
//   A.attention.head_count_kv, in a layer with attention heads, is at most head_count and divides
//   it (0: a layer without attention, as hybrid models have); with no A.attention.key_length, a
//   single head_count divides A.embedding_length;
// - A.expert_count is at most kMaxExpertCount, A.expert_used_count at most A.expert_count, and
//   not 0 when there are experts (0 when there are none);
// - tokenizer.ggml.model, when present, is one of kKnownTokenizerModels, and "bert" (WordPiece)
//   comes with no byte tokens (tokenizer.ggml.token_type 6): llama.cpp aborts on one.
// Returns Ok, or kInvalidArgument naming the first key that fails, its value and the rule, e.g.
//   "llama.attention.layer_norm_rms_epsilon is nan: an epsilon must be a finite number above 0".
// The caller says which model it is.
Status CheckGgufHyperparameters(const GgufInfo& info);

}  // namespace resident::store
