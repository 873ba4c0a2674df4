#include "sched/footprint.h"

#include <filesystem>
#include <map>
#include <mutex>

namespace resident::sched {

Footprint PredictFootprint(const store::GgufInfo& info, const runner::LoadRequest& load) {
  Footprint f;
  f.weights = info.tensor_bytes;
  uint64_t n_ctx = static_cast<uint64_t>(load.n_ctx > 0 ? load.n_ctx : std::min<uint32_t>(info.n_ctx_train, 4096));
  uint64_t head_kv = info.n_head_kv ? info.n_head_kv : info.n_head;
  uint64_t n_embd_kv = info.n_head ? info.n_embd / info.n_head * head_kv : info.n_embd;
  f.kv_cache = 2ull * info.n_layer * n_ctx * n_embd_kv * 2ull;
  uint64_t n_batch = static_cast<uint64_t>(std::max(1, load.n_batch));
  // The graph's intermediate tensors for one batch, and logits for a few outputs (a generation
  // asks for the last token's only; the full-batch logits buffer is reserved but never touched).
  f.compute = n_batch * (4ull * info.n_embd + info.n_ff) * 4ull + 8ull * info.n_vocab * 4ull;
  f.process = 24ull << 20;
  return f;
}

FootprintPredictor MakeGgufPredictor() {
  struct Cached {
    uintmax_t size;
    std::filesystem::file_time_type mtime;
    store::GgufInfo info;
  };
  // Shared by copies of the predictor (std::function copies its target).
  auto cache = std::make_shared<std::pair<std::mutex, std::map<std::string, Cached>>>();
  return [cache](const ModelSpec& spec) -> Result<uint64_t> {
    const std::string& path = spec.load.model_path;
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    auto mtime = std::filesystem::last_write_time(path, ec);
    {
      std::lock_guard<std::mutex> lock(cache->first);
      auto it = cache->second.find(path);
      if (!ec && it != cache->second.end() && it->second.size == size && it->second.mtime == mtime) {
        return PredictFootprint(it->second.info, spec.load).total();
      }
    }
    auto info = store::ReadGgufInfo(path);
    if (!info.ok()) return info.status();
    uint64_t total = PredictFootprint(*info, spec.load).total();
    std::lock_guard<std::mutex> lock(cache->first);
    cache->second[path] = Cached{size, mtime, std::move(info).value()};
    return total;
  };
}

}  // namespace resident::sched
