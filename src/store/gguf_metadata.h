// Reading a GGUF file's metadata without loading its weights (ggml's gguf reader, no_alloc):
// for the memory prediction before a load and for /api/show's model_info.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace resident::store {

struct GgufTensorInfo {
  std::string name;
  std::string type;  // "f16", "q8_0"...
  uint64_t bytes = 0;
};

struct GgufInfo {
  std::string architecture;           // general.architecture
  std::string name;                   // general.name
  uint32_t file_type = 0;             // general.file_type (1 = F16, 7 = Q8_0...)
  std::string file_type_name;         // "F16", "Q8_0", "Q4_K_M"...
  uint64_t n_params = 0;              // sum of tensor elements
  uint64_t tensor_bytes = 0;          // sum of tensor data sizes (the weights)
  uint32_t n_ctx_train = 0;           // <arch>.context_length
  uint32_t n_embd = 0;                // <arch>.embedding_length
  uint32_t n_layer = 0;               // <arch>.block_count
  uint32_t n_head = 0;                // <arch>.attention.head_count
  uint32_t n_head_kv = 0;             // <arch>.attention.head_count_kv (n_head when absent)
  uint32_t n_vocab = 0;               // tokenizer.ggml.tokens length
  uint32_t n_ff = 0;                  // <arch>.feed_forward_length
  std::string chat_template;          // tokenizer.chat_template
  // Every scalar key as text (strings as they are, numbers formatted, arrays summarized by
  // their length as "[N items]" except for short ones), for model_info.
  std::map<std::string, std::string> kv;
  std::vector<GgufTensorInfo> tensors;

  // For the checks of gguf_checks.h. Every numeric scalar key as a double (NaN and infinities as
  // they are; integers exact up to 2^53), and the elements of every numeric array key of at most
  // kMaxCheckedArray elements (per-layer head counts...).
  std::map<std::string, double> numbers;
  std::map<std::string, std::vector<double>> number_arrays;
  uint64_t n_blocks_present = 0;  // 1 + the largest N of the tensors named blk.N.* (0: none)
  uint64_t n_byte_tokens = 0;     // tokens of type BYTE (6) in tokenizer.ggml.token_type
};

inline constexpr size_t kMaxCheckedArray = 4096;

// Whether `path` (symlinks followed) is a regular file, the only kind a model can be read from:
// a FIFO would block the reader, a device never ends. `shown` names it in messages. Errors:
// kNotFound "<shown>: no such file"; kInvalidArgument "<shown> is a directory, not a model file",
// "<shown> is a FIFO (named pipe), not a regular file" (or a character device, a block device, a
// socket), "<shown> cannot be read: <reason>".
Status CheckModelFile(const std::string& path, const std::string& shown);

// The result is cached per path while the file's size and modification time stay the same.
// Errors: kNotFound when the file does not exist, kInvalidArgument when it is not a regular file
// (CheckModelFile) or not a readable GGUF file (bad magic, truncated header, absurd counts,
// tensor data past the end of the file) —
// the message names the file.
Result<GgufInfo> ReadGgufInfo(const std::string& path);

// The same from a GGUF file's bytes in memory, uncached (tests, the fuzzer). `name` stands for
// the file in messages. Errors: kInvalidArgument as for ReadGgufInfo.
Result<GgufInfo> ReadGgufInfoFromBuffer(std::string_view bytes, const std::string& name);

// Name of a general.file_type value ("F16", "Q4_K_M", ...); "unknown" otherwise.
std::string GgufFileTypeName(uint32_t file_type);

}  // namespace resident::store
