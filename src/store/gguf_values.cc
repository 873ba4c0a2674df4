#include "store/gguf_values.h"

#include <gguf.h>
#include <ggml.h>

#include <cctype>
#include <memory>

#include "store/gguf_metadata.h"

namespace resident::store {
namespace {

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

// Element k of a numeric or boolean array (or the scalar, k = 0, at `data`).
GgufValue Element(gguf_type type, const void* data, size_t k) {
  GgufValue v;
  switch (type) {
    case GGUF_TYPE_UINT8: v.kind = GgufValue::Kind::kUint; v.u = static_cast<const uint8_t*>(data)[k]; break;
    case GGUF_TYPE_UINT16: v.kind = GgufValue::Kind::kUint; v.u = static_cast<const uint16_t*>(data)[k]; break;
    case GGUF_TYPE_UINT32: v.kind = GgufValue::Kind::kUint; v.u = static_cast<const uint32_t*>(data)[k]; break;
    case GGUF_TYPE_UINT64: v.kind = GgufValue::Kind::kUint; v.u = static_cast<const uint64_t*>(data)[k]; break;
    case GGUF_TYPE_INT8: v.kind = GgufValue::Kind::kInt; v.i = static_cast<const int8_t*>(data)[k]; break;
    case GGUF_TYPE_INT16: v.kind = GgufValue::Kind::kInt; v.i = static_cast<const int16_t*>(data)[k]; break;
    case GGUF_TYPE_INT32: v.kind = GgufValue::Kind::kInt; v.i = static_cast<const int32_t*>(data)[k]; break;
    case GGUF_TYPE_INT64: v.kind = GgufValue::Kind::kInt; v.i = static_cast<const int64_t*>(data)[k]; break;
    case GGUF_TYPE_FLOAT32: v.kind = GgufValue::Kind::kFloat; v.f = static_cast<const float*>(data)[k]; break;
    case GGUF_TYPE_FLOAT64: v.kind = GgufValue::Kind::kFloat; v.f = static_cast<const double*>(data)[k]; break;
    case GGUF_TYPE_BOOL: v.kind = GgufValue::Kind::kBool; v.b = static_cast<const int8_t*>(data)[k] != 0; break;
    default: break;
  }
  return v;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<GgufValues> ReadGgufValues(const std::string& path, int64_t max_array_items, uint64_t max_total_items) {
  // The same checks as every model lookup (a regular file, GGUF, tensors within the file).
  auto checked = ReadGgufInfo(path);
  if (!checked.ok()) return checked.status();
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) return Status::InvalidArgument(path + " is not a readable GGUF file (truncated or corrupt header)");
  const gguf_context* c = ctx.get();
  GgufValues out;
  const int64_t n_kv = gguf_get_n_kv(c);
  out.kv.reserve(static_cast<size_t>(n_kv));
  uint64_t items_read = 0;
  for (int64_t id = 0; id < n_kv; ++id) {
    GgufValue v;
    const gguf_type type = gguf_get_kv_type(c, id);
    if (type == GGUF_TYPE_STRING) {
      v.kind = GgufValue::Kind::kString;
      v.s = gguf_get_val_str(c, id);
    } else if (type == GGUF_TYPE_ARRAY) {
      v.kind = GgufValue::Kind::kArray;
      const size_t n = gguf_get_arr_n(c, id);
      const gguf_type at = gguf_get_arr_type(c, id);
      v.size = n;
      const bool wanted = max_array_items < 0 || n <= static_cast<uint64_t>(max_array_items);
      if (wanted && n <= max_total_items - items_read) {
        items_read += n;
        v.items.reserve(n);
        if (at == GGUF_TYPE_STRING) {
          for (size_t k = 0; k < n; ++k) {
            GgufValue& e = v.items.emplace_back();
            e.kind = GgufValue::Kind::kString;
            e.s = gguf_get_arr_str(c, id, k);
          }
        } else if (at != GGUF_TYPE_ARRAY) {
          const void* data = gguf_get_arr_data(c, id);
          for (size_t k = 0; k < n; ++k) v.items.push_back(Element(at, data, k));
        }
      }
    } else {
      v = Element(type, gguf_get_val_data(c, id), 0);
    }
    out.kv.emplace_back(gguf_get_key(c, id), std::move(v));
  }
  const int64_t n_tensors = gguf_get_n_tensors(c);
  out.tensors.reserve(static_cast<size_t>(n_tensors));
  for (int64_t i = 0; i < n_tensors; ++i) {
    GgufTensorShape t;
    t.name = gguf_get_tensor_name(c, i);
    t.type = Upper(ggml_type_name(gguf_get_tensor_type(c, i)));
    const int64_t* ne = gguf_get_tensor_ne(c, i);
    int dims = 1;
    for (int d = 1; d < GGML_MAX_DIMS; ++d) {
      if (ne[d] != 1) dims = d + 1;
    }
    for (int d = 0; d < dims; ++d) t.shape.push_back(static_cast<uint64_t>(ne[d]));
    out.tensors.push_back(std::move(t));
  }
  return out;
}

}  // namespace resident::store
