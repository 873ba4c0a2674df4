#include "sched/gpu_split.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "core/bytes.h"
#include "sched/footprint.h"

namespace resident::sched {
namespace {

struct LayerBytes {
  std::vector<uint64_t> blocks;  // weights of blk.N.*
  uint64_t output = 0;           // output.weight and output_norm.* (or the tied token_embd copy)
  uint64_t output_own = 0;       // of which the file's own output tensors (not a copy)
};

LayerBytes WeightsByLayer(const store::GgufInfo& info) {
  LayerBytes l;
  l.blocks.assign(info.n_layer, 0);
  bool has_output = false;
  uint64_t token_embd = 0;
  for (const auto& t : info.tensors) {
    if (t.name.rfind("blk.", 0) == 0) {
      char* end = nullptr;
      unsigned long n = std::strtoul(t.name.c_str() + 4, &end, 10);
      if (end != t.name.c_str() + 4 && *end == '.' && n < l.blocks.size()) l.blocks[n] += t.bytes;
    } else if (t.name == "output.weight" || t.name.rfind("output_norm.", 0) == 0 || t.name == "output.bias") {
      l.output += t.bytes;
      has_output = has_output || t.name == "output.weight";
    } else if (t.name == "token_embd.weight") {
      token_embd = t.bytes;
    }
  }
  // Without its own output matrix the model reuses the input embeddings, which llama.cpp copies
  // to the output layer's device.
  l.output_own = l.output;
  if (!has_output) l.output += token_embd;
  return l;
}

uint64_t KvPerLayer(const store::GgufInfo& info, const runner::LoadRequest& load) {
  const Footprint f = PredictFootprint(info, load);
  return info.n_layer ? f.kv_cache / info.n_layer : 0;
}

}  // namespace

uint64_t PredictVram(const store::GgufInfo& info, const runner::LoadRequest& load, int layers,
                     const GpuSplitOptions& options) {
  if (layers <= 0) return 0;
  const LayerBytes w = WeightsByLayer(info);
  const int n_layer = static_cast<int>(info.n_layer);
  const int blocks = std::min(layers, n_layer);
  uint64_t vram = 0;
  for (int i = n_layer - blocks; i < n_layer; ++i) vram += w.blocks[static_cast<size_t>(i)];
  if (layers > n_layer) vram += w.output;
  vram += KvPerLayer(info, load) * static_cast<uint64_t>(blocks);
  vram += PredictFootprint(info, load).compute + options.backend_bytes;
  return vram;
}

GpuPlacement SplitLayers(const store::GgufInfo& info, const runner::LoadRequest& load, int num_gpu,
                         const std::vector<GpuRoom>& rooms, const GpuSplitOptions& options) {
  GpuPlacement best;
  const int total = static_cast<int>(info.n_layer) + 1;
  best.total_layers = total;
  best.host_bytes = PredictFootprint(info, load).total();
  if (num_gpu == 0 || rooms.empty()) return best;
  uint64_t best_room = 0;
  for (const GpuRoom& room : rooms) {
    const uint64_t usable = room.bytes;
    int layers = 0;
    if (num_gpu > 0) {
      layers = std::min(num_gpu, total);
    } else {
      // VRAM grows with every layer: the most that fit.
      for (int n = total; n > 0; --n) {
        if (PredictVram(info, load, n, options) <= usable) {
          layers = n;
          break;
        }
      }
    }
    if (layers == 0) continue;
    if (best.gpu < 0 || layers > best.layers || (layers == best.layers && room.bytes > best_room)) {
      best_room = room.bytes;
      best.gpu = room.index;
      best.layers = layers;
      best.vram_bytes = PredictVram(info, load, layers, options);
    }
  }
  if (best.gpu < 0) return best;
  // What leaves the host: the offloaded layers' weights and KV cache (the file stays mapped, but
  // llama.cpp reads the offloaded tensors into the device and never touches their pages again).
  const LayerBytes w = WeightsByLayer(info);
  const int n_layer = static_cast<int>(info.n_layer);
  const int blocks = std::min(best.layers, n_layer);
  uint64_t moved = KvPerLayer(info, load) * static_cast<uint64_t>(blocks);
  for (int i = n_layer - blocks; i < n_layer; ++i) moved += w.blocks[static_cast<size_t>(i)];
  if (best.layers > n_layer) moved += w.output_own;
  best.host_bytes -= std::min(best.host_bytes, moved);
  return best;
}

std::string DescribePlacement(const GpuPlacement& p) {
  if (p.gpu < 0 || p.layers == 0) return "CPU only";
  return fmt::format("{}/{} layers on GPU {} ({})", p.layers, p.total_layers, p.gpu, FormatBytes(p.vram_bytes));
}

}  // namespace resident::sched
