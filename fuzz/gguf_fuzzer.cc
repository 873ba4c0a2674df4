// GGUF headers as the server reads them before a load and for /api/show (ReadGgufInfo: ggml's
// gguf parser, then resident's reading of its keys and tensors), from bytes in memory.
#include <cstdint>
#include <string_view>

#include <ggml.h>

#include "fuzz_check.h"
#include "store/gguf_metadata.h"

using namespace resident;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // ggml logs every rejected header; the noise would slow the fuzzer down.
  ggml_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Result<store::GgufInfo> info = store::ReadGgufInfoFromBuffer(bytes, "fuzz.gguf");
  if (!info.ok()) {
    FUZZ_CHECK(info.status().code() == StatusCode::kInvalidArgument, "unexpected error code");
    return 0;
  }
  FUZZ_CHECK(!info->file_type_name.empty(), "no file type name");
  uint64_t sum = 0;
  for (const store::GgufTensorInfo& t : info->tensors) sum += t.bytes;
  FUZZ_CHECK(sum == info->tensor_bytes, "tensor bytes do not add up");
  return 0;
}
