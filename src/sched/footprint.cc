#include "sched/footprint.h"

#include <algorithm>
#include <string>

#include "store/gguf_checks.h"

namespace resident::sched {

Footprint PredictFootprint(const store::GgufInfo& info, const runner::LoadRequest& load) {
  Footprint f;
  f.weights = info.tensor_bytes;
  uint64_t n_ctx = static_cast<uint64_t>(load.n_ctx > 0 ? load.n_ctx : std::min<uint32_t>(info.n_ctx_train, 4096));
  uint64_t head_kv = info.n_head_kv ? info.n_head_kv : info.n_head;
  uint64_t n_embd_kv = info.n_head ? info.n_embd / info.n_head * head_kv : info.n_embd;
  uint64_t n_seq = static_cast<uint64_t>(std::max(1, load.n_parallel));  // num_ctx is per request
  f.kv_cache = 2ull * info.n_layer * n_ctx * n_seq * n_embd_kv * 2ull;
  uint64_t n_batch = static_cast<uint64_t>(std::max(1, load.n_batch));
  // The graph's intermediate tensors for one batch, and logits for a few outputs (a generation
  // asks for the last token's only; the full-batch logits buffer is reserved but never touched).
  f.compute = n_batch * (4ull * info.n_embd + info.n_ff) * 4ull + 8ull * info.n_vocab * 4ull;
  f.process = 24ull << 20;
  return f;
}

namespace {

// The file's metadata, checked before any runner starts: llama.cpp would abort on bad values, or
// compute NaN from them.
Result<store::GgufInfo> CheckedInfo(const ModelSpec& spec) {
  const std::string who = "model \"" + spec.name + "\" cannot be loaded: ";
  auto info = store::ReadGgufInfo(spec.load.model_path);  // cached by path, size and mtime
  if (!info.ok()) return Status(info.status().code(), who + info.status().message());
  if (Status st = store::CheckGgufHyperparameters(*info); !st.ok()) return Status(st.code(), who + st.message());
  return info;
}

}  // namespace

FootprintPredictor MakeGgufPredictor() {
  return [](const ModelSpec& spec) -> Result<uint64_t> {
    auto info = CheckedInfo(spec);
    if (!info.ok()) return info.status();
    return PredictFootprint(*info, spec.load).total();
  };
}

GpuPlanner MakeGgufGpuPlanner() {
  return [](const ModelSpec& spec, const std::vector<GpuRoom>& rooms) -> Result<GpuPlacement> {
    auto info = CheckedInfo(spec);
    if (!info.ok()) return info.status();
    return SplitLayers(*info, spec.load, spec.load.n_gpu_layers, rooms);
  };
}

}  // namespace resident::sched
