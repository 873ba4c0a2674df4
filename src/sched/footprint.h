// Predicting a model's memory before loading it, from its GGUF metadata.
#pragma once

#include <cstdint>

#include "runner/protocol.h"
#include "sched/scheduler.h"
#include "store/gguf_metadata.h"

namespace resident::sched {

struct Footprint {
  uint64_t weights = 0;   // tensor data (mmap'd; resident once touched)
  uint64_t kv_cache = 0;  // 2 (K, V) × layers × n_ctx × n_parallel × n_embd_kv × 2 bytes (F16)
  uint64_t compute = 0;   // graph buffers for one n_batch step, logits included
  uint64_t process = 0;   // the runner process itself (code, libraries, allocator)
  uint64_t total() const { return weights + kv_cache + compute + process; }
};

// The rule, documented for users: weights + KV cache for num_ctx (the parallel slots share it)
// + n_batch × (4 × n_embd + n_ff) × 4 bytes of compute buffers + logits for 8 outputs + 24 MiB
// for the process itself. It counts resident memory (what the kernel must find), not address
// space. The measured figure replaces it once the model is loaded.
Footprint PredictFootprint(const store::GgufInfo& info, const runner::LoadRequest& load);

// A predictor for the scheduler from each file's metadata (ReadGgufInfo caches it), which the
// scheduler asks before every load. Errors, with messages that start `model "<name>" cannot be
// loaded: `: the metadata reader's (missing file, not GGUF), and CheckGgufHyperparameters's
// (kInvalidArgument naming the key: no runner is started for a file llama.cpp would abort on).
FootprintPredictor MakeGgufPredictor();

// The same for a machine with GPUs: places each model (gpu_split.h, num_gpu from its load
// options) and predicts what stays in host memory. Errors as MakeGgufPredictor's.
GpuPlanner MakeGgufGpuPlanner();

}  // namespace resident::sched
