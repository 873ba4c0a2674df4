#include "store/gguf_metadata.h"

#include <gguf.h>
#include <ggml.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>

namespace resident::store {
namespace {

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

std::string ScalarText(const gguf_context* ctx, int64_t id, gguf_type type) {
  switch (type) {
    case GGUF_TYPE_UINT8: return std::to_string(gguf_get_val_u8(ctx, id));
    case GGUF_TYPE_INT8: return std::to_string(gguf_get_val_i8(ctx, id));
    case GGUF_TYPE_UINT16: return std::to_string(gguf_get_val_u16(ctx, id));
    case GGUF_TYPE_INT16: return std::to_string(gguf_get_val_i16(ctx, id));
    case GGUF_TYPE_UINT32: return std::to_string(gguf_get_val_u32(ctx, id));
    case GGUF_TYPE_INT32: return std::to_string(gguf_get_val_i32(ctx, id));
    case GGUF_TYPE_UINT64: return std::to_string(gguf_get_val_u64(ctx, id));
    case GGUF_TYPE_INT64: return std::to_string(gguf_get_val_i64(ctx, id));
    case GGUF_TYPE_FLOAT32: return fmt::format("{}", gguf_get_val_f32(ctx, id));
    case GGUF_TYPE_FLOAT64: return fmt::format("{}", gguf_get_val_f64(ctx, id));
    case GGUF_TYPE_BOOL: return gguf_get_val_bool(ctx, id) ? "true" : "false";
    case GGUF_TYPE_STRING: return gguf_get_val_str(ctx, id);
    default: return "";
  }
}

// A numeric value (of a scalar key, or element k of an array key's data) as a double; nullopt for
// strings, booleans and arrays.
std::optional<double> Number(gguf_type type, const void* data, size_t k) {
  switch (type) {
    case GGUF_TYPE_UINT8: return static_cast<const uint8_t*>(data)[k];
    case GGUF_TYPE_INT8: return static_cast<const int8_t*>(data)[k];
    case GGUF_TYPE_UINT16: return static_cast<const uint16_t*>(data)[k];
    case GGUF_TYPE_INT16: return static_cast<const int16_t*>(data)[k];
    case GGUF_TYPE_UINT32: return static_cast<const uint32_t*>(data)[k];
    case GGUF_TYPE_INT32: return static_cast<const int32_t*>(data)[k];
    case GGUF_TYPE_UINT64: return static_cast<double>(static_cast<const uint64_t*>(data)[k]);
    case GGUF_TYPE_INT64: return static_cast<double>(static_cast<const int64_t*>(data)[k]);
    case GGUF_TYPE_FLOAT32: return static_cast<const float*>(data)[k];
    case GGUF_TYPE_FLOAT64: return static_cast<const double*>(data)[k];
    default: return std::nullopt;
  }
}

// N of a tensor named "blk.N.<anything>"; nullopt for any other name.
std::optional<uint64_t> BlockIndex(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  size_t i = kPrefix.size();
  uint64_t n = 0;
  size_t digits = 0;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i, ++digits) {
    if (n > (UINT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (digits == 0 || i >= name.size() || name[i] != '.') return std::nullopt;
  return n;
}

uint32_t U32(const gguf_context* ctx, const std::string& key, uint32_t fallback = 0) {
  int64_t id = gguf_find_key(ctx, key.c_str());
  if (id < 0) return fallback;
  switch (gguf_get_kv_type(ctx, id)) {
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx, id);
    case GGUF_TYPE_INT32: return static_cast<uint32_t>(gguf_get_val_i32(ctx, id));
    case GGUF_TYPE_UINT64: return static_cast<uint32_t>(gguf_get_val_u64(ctx, id));
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(ctx, id);
    default: return fallback;
  }
}

// The tensors' data lies within the file: a file cut short (a download or copy that stopped)
// has a whole header, so ggml's reader takes it, and only the load would find it out.
Status CheckTensorData(const gguf_context* c, uint64_t file_size, const std::string& name) {
  const int64_t n = gguf_get_n_tensors(c);
  uint64_t end = 0;
  for (int64_t i = 0; i < n; ++i) {
    end = std::max<uint64_t>(end, gguf_get_tensor_offset(c, i) + gguf_get_tensor_size(c, i));
  }
  if (n == 0) return Status::Ok();
  end += gguf_get_data_offset(c);
  if (end > file_size) {
    return Status::InvalidArgument(name + " is truncated: its tensors end at byte " + std::to_string(end) +
                                   " but the file has " + std::to_string(file_size) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

std::string GgufFileTypeName(uint32_t file_type) {
  // llama_ftype values (llama.h).
  switch (file_type) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 19: return "IQ2_XXS";
    case 20: return "IQ2_XS";
    case 21: return "Q2_K_S";
    case 22: return "IQ3_XS";
    case 23: return "IQ3_XXS";
    case 24: return "IQ1_S";
    case 25: return "IQ4_NL";
    case 26: return "IQ3_S";
    case 27: return "IQ3_M";
    case 28: return "IQ2_S";
    case 29: return "IQ2_M";
    case 30: return "IQ4_XS";
    case 31: return "IQ1_M";
    case 32: return "BF16";
    case 36: return "TQ1_0";
    case 37: return "TQ2_0";
    case 38: return "MXFP4";
    default: return "unknown";
  }
}

namespace {

// What resident reads of a parsed header; the part of the reader that is resident's own code.
GgufInfo InfoFromContext(const gguf_context* c) {
  GgufInfo info;
  const int64_t n_kv = gguf_get_n_kv(c);
  for (int64_t i = 0; i < n_kv; ++i) {
    std::string key = gguf_get_key(c, i);
    gguf_type type = gguf_get_kv_type(c, i);
    if (type == GGUF_TYPE_ARRAY) {
      size_t n = gguf_get_arr_n(c, i);
      gguf_type at = gguf_get_arr_type(c, i);
      if (key == "tokenizer.ggml.tokens") info.n_vocab = static_cast<uint32_t>(n);
      if (at != GGUF_TYPE_STRING && at != GGUF_TYPE_ARRAY && at != GGUF_TYPE_BOOL) {
        const void* data = gguf_get_arr_data(c, i);
        if (key == "tokenizer.ggml.token_type") {
          for (size_t k = 0; k < n; ++k) info.n_byte_tokens += Number(at, data, k) == 6.0;  // LLAMA_TOKEN_TYPE_BYTE
        }
        if (n <= kMaxCheckedArray) {
          std::vector<double>& values = info.number_arrays[key];
          for (size_t k = 0; k < n; ++k) values.push_back(Number(at, data, k).value_or(0));
        }
      }
      if (n <= 8 && at == GGUF_TYPE_STRING) {
        std::string s = "[";
        for (size_t k = 0; k < n; ++k) s += (k ? ", " : "") + std::string(gguf_get_arr_str(c, i, k));
        info.kv[key] = s + "]";
      } else {
        info.kv[key] = fmt::format("[{} items]", n);
      }
      continue;
    }
    info.kv[key] = ScalarText(c, i, type);
    if (type != GGUF_TYPE_STRING && type != GGUF_TYPE_BOOL) {
      if (auto v = Number(type, gguf_get_val_data(c, i), 0)) info.numbers[key] = *v;
    }
  }
  auto str = [&](const char* key) {
    auto it = info.kv.find(key);
    return it == info.kv.end() ? std::string() : it->second;
  };
  info.architecture = str("general.architecture");
  info.name = str("general.name");
  info.chat_template = str("tokenizer.chat_template");
  info.file_type = U32(c, "general.file_type", 0);
  info.file_type_name = gguf_find_key(c, "general.file_type") >= 0 ? GgufFileTypeName(info.file_type) : "unknown";
  const std::string& a = info.architecture;
  info.n_ctx_train = U32(c, a + ".context_length");
  info.n_embd = U32(c, a + ".embedding_length");
  info.n_layer = U32(c, a + ".block_count");
  info.n_head = U32(c, a + ".attention.head_count");
  info.n_head_kv = U32(c, a + ".attention.head_count_kv", info.n_head);
  info.n_ff = U32(c, a + ".feed_forward_length");

  const int64_t n_tensors = gguf_get_n_tensors(c);
  info.tensors.reserve(static_cast<size_t>(n_tensors));
  for (int64_t i = 0; i < n_tensors; ++i) {
    ggml_type t = gguf_get_tensor_type(c, i);
    uint64_t bytes = gguf_get_tensor_size(c, i);
    size_t type_size = ggml_type_size(t);
    if (type_size > 0) info.n_params += bytes / type_size * static_cast<uint64_t>(ggml_blck_size(t));
    info.tensor_bytes += bytes;
    info.tensors.push_back({gguf_get_tensor_name(c, i), ggml_type_name(t), bytes});
    if (auto block = BlockIndex(info.tensors.back().name)) {
      info.n_blocks_present = std::max(info.n_blocks_present, *block == UINT64_MAX ? *block : *block + 1);
    }
  }
  return info;
}

Result<GgufInfo> ReadGgufInfoUncached(const std::string& path) {
  if (Status st = CheckModelFile(path, path); !st.ok()) {
    if (st.code() == StatusCode::kNotFound) return Status::NotFound("model file " + path + " does not exist");
    return st;
  }
  {
    // Check the magic first: ggml's reader logs noisily on non-GGUF input.
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    if (!in.read(magic, 4) || std::string_view(magic, 4) != "GGUF") {
      return Status::InvalidArgument(path + " is not a GGUF file (bad magic)");
    }
  }
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) return Status::InvalidArgument(path + " is not a readable GGUF file (truncated or corrupt header)");
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return Status::InvalidArgument(path + " cannot be read: " + ec.message());
  RESIDENT_RETURN_IF_ERROR(CheckTensorData(ctx.get(), size, path));
  return InfoFromContext(ctx.get());
}

}  // namespace

Status CheckModelFile(const std::string& path, const std::string& shown) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::NotFound(shown + ": no such file");
    return Status::InvalidArgument(shown + " cannot be read: " + std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return Status::Ok();
  if (S_ISDIR(st.st_mode)) return Status::InvalidArgument(shown + " is a directory, not a model file");
  const char* kind = S_ISFIFO(st.st_mode)   ? "a FIFO (named pipe)"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a file";
  return Status::InvalidArgument(shown + " is " + kind + ", not a regular file");
}

Result<GgufInfo> ReadGgufInfoFromBuffer(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 4 || bytes.substr(0, 4) != "GGUF") {
    return Status::InvalidArgument(name + " is not a GGUF file (bad magic)");
  }
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_buffer(bytes.data(), bytes.size(), params));
  if (!ctx) return Status::InvalidArgument(name + " is not a readable GGUF file (truncated or corrupt header)");
  RESIDENT_RETURN_IF_ERROR(CheckTensorData(ctx.get(), bytes.size(), name));
  return InfoFromContext(ctx.get());
}

Result<GgufInfo> ReadGgufInfo(const std::string& path) {
  // Reading a header costs milliseconds (a vocabulary is tens of thousands of strings) and model
  // lookups happen on every request: keep what was read, keyed by path, size and mtime.
  struct Cached {
    uintmax_t size;
    std::filesystem::file_time_type mtime;
    GgufInfo info;
  };
  static std::mutex mu;
  static std::map<std::string, Cached> cache;
  std::error_code ec1, ec2;
  auto size = std::filesystem::file_size(path, ec1);
  auto mtime = std::filesystem::last_write_time(path, ec2);
  if (!ec1 && !ec2) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(path);
    if (it != cache.end() && it->second.size == size && it->second.mtime == mtime) return it->second.info;
  }
  auto info = ReadGgufInfoUncached(path);
  if (info.ok() && !ec1 && !ec2) {
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() > 1024) cache.clear();  // bounded: a long-running server with churn
    cache[path] = Cached{size, mtime, *info};
  }
  return info;
}

}  // namespace resident::store
