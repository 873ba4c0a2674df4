#include "runner/engine.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>

#include "core/system_info.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "runner/chat_template.h"
#include "runner/cpu_share.h"
#include "runner/engine_slot.h"

namespace resident::runner {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NanosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

// Set from the moment AbortCallback stops a decode for a cancelled request until llama_decode
// returns (ret 2). llama.cpp reports that abort as four errors ("graph_compute: ... failed",
// "process_ubatch: failed to compute graph", "decode: removing memory module entries",
// "llama_decode: failed to decode, ret = 2"), but a cancellation is normal: the server logs it
// once, in its own words, and LogCallback drops llama.cpp's lines meanwhile.
std::atomic<bool> g_aborting{false};

// llama.cpp's own log goes to the runner's stderr (the server's log); chatter below WARN is
// dropped unless RESIDENT_DEBUG is set, and so is the noise of an aborted decode (above).
void LogCallback(ggml_log_level level, const char* text, void*) {
  static const bool debug = std::getenv("RESIDENT_DEBUG") != nullptr;
  if (debug || (level >= GGML_LOG_LEVEL_WARN && !g_aborting.load(std::memory_order_relaxed))) std::fputs(text, stderr);
}

// The prebuilt libraries carry no backend: load the CPU (and any GPU) backends that lie beside
// libllama, wherever the dynamic linker found it.
std::atomic<bool> g_backends_started{false};

void InitBackendsOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_backends_started = true;
    llama_log_set(LogCallback, nullptr);
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&llama_backend_init), &info) && info.dli_fname) {
      std::string dir = std::filesystem::path(info.dli_fname).parent_path().string();
      ggml_backend_load_all_from_path(dir.c_str());
    } else {
      ggml_backend_load_all();
    }
    llama_backend_init();
  });
}

// A function of the loaded CPU backend library that its registry does not hand out: looked up in
// the library that holds `known` (one of its functions). nullptr if not found.
template <typename Fn>
Fn* CpuBackendFunction(void* known, const char* name) {
  Dl_info info{};
  if (dladdr(known, &info) == 0 || info.dli_fname == nullptr) return nullptr;
  void* lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);  // already loaded: only a handle
  if (lib == nullptr) return nullptr;
  return reinterpret_cast<Fn*>(dlsym(lib, name));
}

// llama_decode, and the end of an abort's quiet log (g_aborting) once it returns.
int Decode(llama_context* ctx, const llama_batch& batch) {
  int rc = llama_decode(ctx, batch);
  g_aborting.store(false, std::memory_order_relaxed);
  return rc;
}

std::string MetaString(const llama_model* model, const char* key) {
  char buf[256];
  int n = llama_model_meta_val_str(model, key, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf);
}

// `shown`: how messages name the model ("model \"m:latest\""), never by its file's path: a store's
// blob path (sha256-...) means nothing to users; the server's log says which file it is.
Status CheckGgufFile(const std::string& path, const std::string& shown) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::NotFound("the file of " + shown + " does not exist");
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("the file of " + shown + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4) || std::string_view(magic, 4) != "GGUF") {
    return Status::InvalidArgument("the file of " + shown + " is not a GGUF model file");
  }
  return Status::Ok();
}

}  // namespace

bool HasNonFinite(const float* values, size_t n, bool allow_minus_infinity) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float low = allow_minus_infinity ? -kInf : std::numeric_limits<float>::lowest();
  bool bad = false;
  // No early exit: the loop stays branch-free and vectorizes (a vocabulary is 32k-256k logits).
  // A NaN fails both comparisons.
  for (size_t i = 0; i < n; ++i) bad |= !(values[i] >= low && values[i] < kInf);
  return bad;
}

size_t CompleteUtf8Prefix(std::string_view text) {
  size_t n = text.size();
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back >= need ? n : n - back;
  }
  return n;  // only continuation bytes: invalid anyway, let them through
}

std::pair<size_t, bool> StopScan(std::string_view held, const std::vector<std::string>& stop) {
  size_t first = std::string_view::npos;
  for (const std::string& s : stop) {
    if (s.empty()) continue;
    size_t pos = held.find(s);
    if (pos != std::string_view::npos) first = std::min(first, pos);
  }
  if (first != std::string_view::npos) return {first, true};
  size_t keep = 0;  // longest suffix of held that is a proper prefix of some stop string
  for (const std::string& s : stop) {
    for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), held.size()); len > keep; --len) {
      if (held.substr(held.size() - len) == std::string_view(s).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  return {held.size() - keep, false};
}

TokenLogprobIds LogSoftmaxAt(const float* logits, size_t n, int32_t token, int top) {
  TokenLogprobIds out;
  if (n == 0) return out;
  float max = logits[0];
  for (size_t i = 1; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double lse = max + std::log(sum);
  if (token >= 0 && static_cast<size_t>(token) < n) out.logprob = static_cast<float>(logits[token] - lse);
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(0, top)), n);
  if (k == 0) return out;
  // The k largest, by a min-heap of k (a vocabulary is 32k-256k logits, k at most 20).
  auto greater = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::vector<int32_t> heap;
  heap.reserve(k + 1);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (heap.size() < k) {
      heap.push_back(id);
      std::push_heap(heap.begin(), heap.end(), greater);
    } else if (greater(id, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), greater);
      heap.back() = id;
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  }
  std::sort(heap.begin(), heap.end(), greater);
  for (int32_t id : heap) out.top.emplace_back(id, static_cast<float>(logits[id] - lse));
  return out;
}

size_t ReusablePrefix(const std::vector<int32_t>& cached, size_t canonical, const std::vector<int32_t>& prompt,
                      size_t n_batch, bool reproducible) {
  if (prompt.empty()) return 0;
  size_t common = 0;
  while (common < cached.size() && common < prompt.size() && cached[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  if (!reproducible) return common;
  n_batch = std::max<size_t>(1, n_batch);
  const size_t last_chunk = (prompt.size() - 1) / n_batch * n_batch;  // where a fresh context's last chunk starts
  const size_t keep = std::min({common, canonical, last_chunk});
  return keep / n_batch * n_batch;
}

void Engine::PrepareBackends() { InitBackendsOnce(); }

bool Engine::HasGpuBackend() {
  InitBackendsOnce();
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    enum ggml_backend_dev_type t = ggml_backend_dev_type(ggml_backend_dev_get(i));
    if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
  }
  return false;
}

void Engine::Beat() {
  if (heartbeat_ != nullptr) {
    heartbeat_->store(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(),
                      std::memory_order_relaxed);
  }
}

bool Engine::AbortCheck(void* engine) {
  auto* e = static_cast<Engine*>(engine);
  e->Beat();  // called between graph nodes: the decode is moving
  for (const std::atomic<bool>* flag : e->batch_cancel_) {
    if (flag != nullptr && flag->load(std::memory_order_relaxed)) {
      g_aborting.store(true, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

Result<std::unique_ptr<Engine>> Engine::Load(const LoadRequest& request,
                                             const std::function<bool(float)>& progress) {
  const std::string name =
      request.model_name.empty() ? std::filesystem::path(request.model_path).filename().string() : request.model_name;
  const std::string shown = "model \"" + name + "\"";
  RESIDENT_RETURN_IF_ERROR(CheckGgufFile(request.model_path, shown));
  // The device the scheduler chose is the only one this runner's CUDA sees ("-1": none, a model
  // placed on the CPU): set before the backends start (a runner loads one model, once; with a GPU
  // in use runner_main does not start them early).
  if (!request.gpu_id.empty()) {
    if (g_backends_started) {
      std::fprintf(stderr, "runner: the backends started before the device was chosen: %s may use another GPU\n",
                   shown.c_str());
    }
    ::setenv("CUDA_VISIBLE_DEVICES", request.gpu_id.c_str(), 1);
    if (request.gpu_id != "-1") std::fprintf(stderr, "runner: %s sees only %s\n", shown.c_str(), request.gpu_id.c_str());
  }
  InitBackendsOnce();
  const bool gpu_backend = HasGpuBackend();
  // VRAM in use on the first GPU before the load: what the load adds is this model's.
  ggml_backend_dev_t first_gpu = nullptr;
  for (size_t i = 0; i < ggml_backend_dev_count() && first_gpu == nullptr; ++i) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU) first_gpu = d;
  }
  size_t gpu_free_before = 0, gpu_total = 0;
  if (first_gpu != nullptr) ggml_backend_dev_memory(first_gpu, &gpu_free_before, &gpu_total);
  auto start = Clock::now();
  std::unique_ptr<Engine> engine(new Engine());
  engine->name_ = name;

  llama_model_params mparams = llama_model_default_params();
  mparams.load_mode = request.use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
  mparams.n_gpu_layers = request.n_gpu_layers;
  const bool on_gpu = !request.gpu_id.empty() && request.gpu_id != "-1";
  if (on_gpu && gpu_backend) {
    mparams.split_mode = LLAMA_SPLIT_MODE_NONE;
    mparams.main_gpu = 0;  // the only device it sees
  } else if (on_gpu) {
    std::fprintf(stderr, "runner: %s was placed on %s, but this runner has no GPU backend (llama.cpp's CUDA build "
                         "or its runtime is missing): it runs on the CPU\n", shown.c_str(), request.gpu_id.c_str());
  }
  struct ProgressData { const std::function<bool(float)>* fn; };
  ProgressData pd{&progress};
  if (progress) {
    mparams.progress_callback = [](float p, void* data) -> bool {
      return (*static_cast<ProgressData*>(data)->fn)(p);
    };
    mparams.progress_callback_user_data = &pd;
  }
  engine->model_ = llama_model_load_from_file(request.model_path.c_str(), mparams);
  if (engine->model_ == nullptr) {
    return Status::InvalidArgument("llama.cpp could not load " + shown +
                                   ": its file is truncated, corrupt or of an unsupported architecture");
  }
  engine->vocab_ = llama_model_get_vocab(engine->model_);

  int threads = request.n_threads > 0 ? request.n_threads : PhysicalCores();
  llama_context_params cparams = llama_context_default_params();
  int32_t n_ctx_train = llama_model_n_ctx_train(engine->model_);
  // num_ctx is per request, as Ollama's: n_parallel sequences of n_ctx tokens each, every one in
  // its own KV stream (kv_unified off: the sequences rarely share a prefix).
  const uint32_t n_seq = static_cast<uint32_t>(std::max(1, request.n_parallel));
  const uint32_t n_ctx = static_cast<uint32_t>(request.n_ctx > 0 ? request.n_ctx : std::min(n_ctx_train, 4096));
  cparams.n_ctx = n_ctx * n_seq;
  // A step holds one token of every slot at least.
  cparams.n_batch = cparams.n_ubatch = std::max(static_cast<uint32_t>(std::max(1, request.n_batch)), n_seq);
  cparams.n_seq_max = n_seq;
  cparams.kv_unified = false;
  cparams.n_threads = cparams.n_threads_batch = threads;
  cparams.no_perf = true;
  cparams.abort_callback = AbortCheck;
  cparams.abort_callback_data = engine.get();
  // With a GPU in use the context lives (partly) in device memory, which a sleep must free.
  bool gpu = false;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
    gpu = gpu || type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
  }
  engine->may_sleep_ = request.may_sleep && !(gpu && request.n_gpu_layers != 0);
  if (engine->may_sleep_) {
    // Notes the buffers each graph uses, to sleep in place (Sleep). It never asks for a node's
    // data, so the scheduler still computes each graph whole.
    cparams.cb_eval = NoteGraphBuffers;
    cparams.cb_eval_user_data = engine.get();
  }
  // Meanwhile the prompt cache's folder is read, and its most recently used entry checked
  // (engine_prompt_cache.cc); joined below, or on any return before.
  std::jthread prompt_cache;
  if (!request.prompt_cache_dir.empty() && request.prompt_cache_max_bytes > 0) {
    prompt_cache = std::jthread([e = engine.get(), &request, cparams, backend = BackendIdentity()] {
      e->OpenPromptCache(request, cparams, backend);
    });
  }
  engine->ctx_ = llama_init_from_model(engine->model_, cparams);
  if (engine->ctx_ == nullptr) {
    return Status::ResourceExhausted("could not create a context of " + std::to_string(n_seq) + " x " +
                                     std::to_string(n_ctx) + " tokens for " + shown + " (out of memory?)");
  }
  engine->cparams_ = cparams;
  engine->n_batch_ = static_cast<int32_t>(cparams.n_batch);
  engine->batch_ = llama_batch_init(engine->n_batch_, 0, 1);
  engine->auto_threads_ = request.n_threads <= 0;
  engine->cores_ = threads;
  engine->threads_now_ = threads;
  // One thread pool for the context's life. Without it the prebuilt CPU backend (built without
  // OpenMP) starts and joins its worker threads for every decode, i.e. every token.
  if (ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    auto* tp_new = reinterpret_cast<decltype(ggml_threadpool_new)*>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    auto* tp_free = reinterpret_cast<decltype(ggml_threadpool_free)*>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (tp_new != nullptr && tp_free != nullptr) {
      ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
      // Its workers spin for a while (about 0.2 s here) waiting for the next graph before they
      // sleep: good between the tokens of a generation, a waste of a core after the last one, and
      // a theft from the other runners' decodes. So the pool starts paused (the first decode
      // resumes it) and is paused again whenever the runner runs out of work (Idle()).
      tpp.paused = true;
      engine->threadpool_ = tp_new(&tpp);
      if (engine->threadpool_ != nullptr) {
        engine->threadpool_free_ = tp_free;
        engine->threadpool_pause_ = CpuBackendFunction<decltype(ggml_threadpool_pause)>(
            reinterpret_cast<void*>(tp_new), "ggml_threadpool_pause");
        llama_attach_threadpool(engine->ctx_, engine->threadpool_, nullptr);
      }
    }
  }
  for (uint32_t i = 0; i < n_seq; ++i) engine->slots_.push_back(std::make_unique<Slot>(static_cast<int32_t>(i)));

  ModelFacts& f = engine->facts_;
  f.size_bytes = llama_model_size(engine->model_);
  f.n_params = llama_model_n_params(engine->model_);
  f.n_ctx = static_cast<int32_t>(llama_n_ctx_seq(engine->ctx_));
  f.n_ctx_train = n_ctx_train;
  f.n_embd = llama_model_n_embd(engine->model_);
  f.n_threads = threads;
  f.architecture = MetaString(engine->model_, "general.architecture");
  f.n_vocab = llama_vocab_n_tokens(engine->vocab_);
  for (int32_t t = 0; t < f.n_vocab; ++t) {
    engine->max_token_bytes_ = std::max<uint64_t>(engine->max_token_bytes_, engine->TokenText(t, true).size());
  }
  f.n_batch = engine->n_batch_;
  if (!request.chat_template.empty()) f.chat_template = request.chat_template;
  else if (const char* tmpl = llama_model_chat_template(engine->model_, nullptr)) f.chat_template = tmpl;
  ChatTemplateSource& ct = engine->chat_template_;
  // As llama.cpp's common_chat_templates_init picks it: the default template, else the tool-use
  // one, else its ChatML fallback.
  ct.overridden = !request.chat_template.empty();
  ct.text = f.chat_template;
  if (ct.text.empty()) {
    const char* tool_use = llama_model_chat_template(engine->model_, "tool_use");
    ct.text = tool_use != nullptr ? tool_use : "chatml";
  }
  auto special_text = [&](llama_token t) {
    return t == LLAMA_TOKEN_NULL ? std::string() : engine->TokenText(t, /*special=*/true);
  };
  ct.bos = special_text(llama_vocab_bos(engine->vocab_));
  ct.eos = special_text(llama_vocab_eos(engine->vocab_));
  ct.add_bos = llama_vocab_get_add_bos(engine->vocab_);
  ct.add_eos = llama_vocab_get_add_eos(engine->vocab_);
  f.fim = llama_vocab_fim_pre(engine->vocab_) != LLAMA_TOKEN_NULL &&
          llama_vocab_fim_suf(engine->vocab_) != LLAMA_TOKEN_NULL &&
          llama_vocab_fim_mid(engine->vocab_) != LLAMA_TOKEN_NULL;
  if (prompt_cache.joinable()) prompt_cache.join();
  f.rss_bytes = ProcessRssBytes(getpid());
  if (gpu_backend && request.n_gpu_layers != 0) {
    const int32_t all = llama_model_n_layer(engine->model_) + 1;
    f.gpu_layers = request.n_gpu_layers < 0 ? all : std::min(request.n_gpu_layers, all);
    size_t free_after = 0, total = 0;
    if (first_gpu != nullptr) ggml_backend_dev_memory(first_gpu, &free_after, &total);
    f.vram_bytes = gpu_free_before > free_after ? gpu_free_before - free_after : 0;
  }
  f.load_ns = NanosSince(start);
  return engine;
}

bool Engine::NoteGraphBuffers(ggml_tensor* t, bool ask, void* engine) {
  if (!ask) return true;
  auto* e = static_cast<Engine*>(engine);
  e->NoteBuffer(t->buffer);
  for (ggml_tensor* src : t->src) {
    if (src != nullptr) e->NoteBuffer(src->view_src != nullptr ? src->view_src->buffer : src->buffer);
  }
  return false;  // its data is not wanted: the graph is computed whole
}

void Engine::NoteBuffer(ggml_backend_buffer_t buffer) {
  // A graph has a few thousand nodes and a context a handful of buffers: the last one noted is
  // the likeliest, then a short scan.
  if (buffer == nullptr || (!graph_buffers_.empty() && graph_buffers_.back() == buffer)) return;
  if (std::find(graph_buffers_.begin(), graph_buffers_.end(), buffer) != graph_buffers_.end()) return;
  if (ggml_backend_buffer_get_usage(buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS) return;
  // Only the CPU backend's own buffers (plain host memory) are handed back page by page; a
  // device's buffer, or a GPU backend's pinned host buffer, makes the context one that is freed to
  // sleep, for its whole life.
  if (std::string_view(ggml_backend_buft_name(ggml_backend_buffer_get_type(buffer))) != "CPU") sleep_frees_ = true;
  graph_buffers_.push_back(buffer);
}

int Engine::DecodeBatch(const llama_batch& batch) {
  graph_buffers_.clear();
  return Decode(ctx_, batch);
}

void Engine::Sleep() {
  if (asleep_) return;
  for (auto& slot : slots_) {
    slot->cached.clear();
    slot->canonical = 0;
  }
  asleep_ = true;
  if (may_sleep_ && !graph_buffers_.empty() && !sleep_frees_ && ctx_ != nullptr) {
    // In place: the KV cache's cells are emptied (its data need not be: the pages given back read
    // as zeros, which is what a new context's cleared cache holds), then every page that lies
    // wholly inside a noted buffer goes back to the kernel. The pages at a buffer's two ends stay:
    // they may hold the allocator's bookkeeping of a neighbour.
    llama_memory_clear(llama_get_memory(ctx_), /*data=*/false);
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    bool given_back = true;
    for (ggml_backend_buffer_t buffer : graph_buffers_) {
      const auto base = reinterpret_cast<uintptr_t>(ggml_backend_buffer_get_base(buffer));
      const uintptr_t begin = (base + page - 1) / page * page;
      const uintptr_t end = (base + ggml_backend_buffer_get_size(buffer)) / page * page;
      if (end > begin && ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) != 0) given_back = false;
    }
    if (given_back) return;
    sleep_frees_ = true;  // not memory madvise takes: never again, freed now
  }
  llama_free(ctx_);  // the KV cache, the compute buffers and the outputs; the thread pool stays
  ctx_ = nullptr;
  graph_buffers_.clear();
}

Status Engine::Wake() {
  if (!asleep_) return Status::Ok();
  if (ctx_ != nullptr) {  // slept in place: nothing to do, the pages come back as they are touched
    asleep_ = false;
    return Status::Ok();
  }
  ctx_ = llama_init_from_model(model_, cparams_);
  if (ctx_ == nullptr) {
    return Status::ResourceExhausted("could not create the context of model \"" + name_ + "\" again (out of memory?)");
  }
  if (threadpool_ != nullptr) llama_attach_threadpool(ctx_, threadpool_, nullptr);
  threads_now_ = cores_;  // cparams_' thread count
  asleep_ = false;
  return Status::Ok();
}

Engine::~Engine() {
  if (ctx_) llama_free(ctx_);
  if (threadpool_) threadpool_free_(threadpool_);
  if (batch_.token != nullptr) llama_batch_free(batch_);
  if (model_) llama_model_free(model_);
}

Result<std::vector<int32_t>> Engine::Tokenize(std::string_view text, bool add_special) const {
  std::vector<int32_t> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                             static_cast<int32_t>(tokens.size()), add_special, /*parse_special=*/true);
  if (n < 0) {
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                       static_cast<int32_t>(tokens.size()), add_special, true);
  }
  if (n < 0) return Status::InvalidArgument("the text cannot be tokenized");
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::string Engine::TokenText(int32_t token, bool special) const {
  char buf[256];
  int n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, special);
  if (n >= 0) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(-n), '\0');
  n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0, special);
  return n < 0 ? std::string() : big.substr(0, static_cast<size_t>(n));
}

std::string Engine::SlotTokenText(const Slot& slot, int32_t token) const {
  return TokenText(token, std::binary_search(slot.preserved.begin(), slot.preserved.end(), token));
}

Engine::Engine() = default;

void Engine::PickThreads(bool fixed) {
  if (!auto_threads_ || share_ == nullptr) return;
  int t = fixed ? cores_ : CpuShare::ThreadsFor(cores_, share_->BusyCount());
  if (t != threads_now_) {
    llama_set_n_threads(ctx_, t, t);
    threads_now_ = t;
  }
}

int Engine::FreeSlots() const {
  int n = 0;
  for (const auto& s : slots_) n += s->busy ? 0 : 1;
  return n;
}

Status Engine::CheckFits(uint64_t bytes, std::string_view what) const {
  if (bytes <= MaxFittingBytes()) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " is " + std::to_string(bytes) +
                                 " bytes, more than the context of " + std::to_string(facts_.n_ctx) +
                                 " tokens can hold (no token of this model stands for more than " +
                                 std::to_string(max_token_bytes_) + " bytes; raise num_ctx or shorten the prompt)");
}

Result<std::vector<int32_t>> Engine::PromptTokens(const GenerateRequest& request) {
  if (!request.messages.empty()) return Status::Internal("chat messages must be rendered before they reach the engine");
  const std::string& prompt = request.prompt;
  // Before any tokenizing, which takes seconds for megabytes: a text that cannot fit is refused.
  RESIDENT_RETURN_IF_ERROR(CheckFits(prompt.size() + request.suffix.size(), "the prompt"));
  std::vector<int32_t> tokens = request.context;
  if (!request.suffix.empty()) {
    // Fill-in-the-middle: [BOS] <fim_pre> prompt <fim_suf> suffix <fim_mid>, as llama-server lays it out.
    if (!facts_.fim) return Status::InvalidArgument("this model does not support insert (it has no fill-in-the-middle tokens)");
    auto pre = Tokenize(request.prompt, false);
    auto suf = Tokenize(request.suffix, false);
    if (!pre.ok()) return pre.status();
    if (!suf.ok()) return suf.status();
    if (request.add_special && request.context.empty() && llama_vocab_get_add_bos(vocab_)) {
      tokens.push_back(llama_vocab_bos(vocab_));
    }
    tokens.push_back(llama_vocab_fim_pre(vocab_));
    tokens.insert(tokens.end(), pre->begin(), pre->end());
    tokens.push_back(llama_vocab_fim_suf(vocab_));
    tokens.insert(tokens.end(), suf->begin(), suf->end());
    tokens.push_back(llama_vocab_fim_mid(vocab_));
  } else {
    auto prompt_tokens = Tokenize(prompt, request.add_special && request.context.empty());
    if (!prompt_tokens.ok()) return prompt_tokens.status();
    tokens.insert(tokens.end(), prompt_tokens->begin(), prompt_tokens->end());
  }
  if (tokens.empty()) return Status::InvalidArgument("the prompt is empty");
  if (static_cast<int32_t>(tokens.size()) >= facts_.n_ctx) {
    return Status::InvalidArgument("the prompt is " + std::to_string(tokens.size()) +
                                   " tokens, more than the context of " + std::to_string(facts_.n_ctx) +
                                   " tokens can hold (raise num_ctx or shorten the prompt)");
  }
  return tokens;
}

Result<llama_sampler*> Engine::ChatGrammar(const RenderedChat& chat) const {
  const char* kRoot = "root";
  try {
    if (chat.grammar_lazy) {
      std::vector<const char*> patterns;
      for (const std::string& p : chat.trigger_patterns) patterns.push_back(p.c_str());
      llama_sampler* g = llama_sampler_init_grammar_lazy_patterns(vocab_, chat.grammar.c_str(), kRoot, patterns.data(),
                                                                  patterns.size(), nullptr, 0);
      if (g == nullptr) return Status::InvalidArgument("the chat template's tool-call grammar is invalid");
      return g;
    }
    llama_sampler* g = llama_sampler_init_grammar(vocab_, chat.grammar.c_str(), kRoot);
    if (g == nullptr) return Status::InvalidArgument("the chat template's tool-call grammar is invalid");
    // The grammar begins with the generation prompt, which the prompt already ends with: it is
    // fed the prompt's tokens of it first, as llama.cpp's sampler does (a leading space a
    // tokenizer adds before the first special token is skipped).
    const std::string& prefill = chat.parse.generation_prompt;
    auto tokens = Tokenize(prefill, /*add_special=*/false);
    if (!tokens.ok()) {
      llama_sampler_free(g);
      return tokens.status();
    }
    for (size_t i = 0; i < tokens->size(); ++i) {
      const std::string piece = TokenText((*tokens)[i], /*special=*/true);
      if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) &&
          !std::isspace(static_cast<unsigned char>(prefill[0]))) {
        continue;
      }
      llama_sampler_accept(g, (*tokens)[i]);
    }
    return g;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("the chat template's tool-call grammar cannot be used: ") + e.what());
  }
}

Result<std::unique_ptr<llama_sampler, void (*)(llama_sampler*)>> Engine::MakeSampler(
    const GenerateRequest& request, const RenderedChat* chat) const {
  const SamplingOptions& so = request.sampling;
  std::unique_ptr<llama_sampler, void (*)(llama_sampler*)> chain(
      llama_sampler_chain_init(llama_sampler_chain_default_params()), llama_sampler_free);
  if (!request.grammar.empty()) {
    llama_sampler* g = llama_sampler_init_grammar(vocab_, request.grammar.c_str(), "root");
    if (g == nullptr) return Status::InvalidArgument("the output format's grammar is invalid");
    llama_sampler_chain_add(chain.get(), g);
  } else if (chat != nullptr && !chat->grammar.empty()) {
    auto g = ChatGrammar(*chat);
    if (!g.ok()) return g.status();
    llama_sampler_chain_add(chain.get(), *g);
  }
  if (so.repeat_penalty != 1.0f || so.frequency_penalty != 0.0f || so.presence_penalty != 0.0f) {
    // -1 is the whole context, and so is anything longer (the sampler allocates its window).
    int32_t last_n = so.repeat_last_n < 0 ? facts_.n_ctx : std::min(so.repeat_last_n, facts_.n_ctx);
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(llama_vocab_n_tokens(vocab_), last_n, so.repeat_penalty,
                                                                      so.frequency_penalty, so.presence_penalty));
  }
  if (so.temperature <= 0.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
  } else {
    if (so.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(so.top_k));
    if (so.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(so.top_p, 1));
    if (so.min_p > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(so.min_p, 1));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(so.temperature));
    uint32_t seed = so.seed < 0 ? LLAMA_DEFAULT_SEED : static_cast<uint32_t>(so.seed);
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(seed));
  }
  return chain;
}

Status Engine::Start(const GenerateRequest& request, const RenderedChat* chat,
                     std::shared_ptr<const std::atomic<bool>> cancel, TextSink on_text, DoneSink on_done) {
  RESIDENT_RETURN_IF_ERROR(Wake());
  auto tokens = PromptTokens(request);
  if (!tokens.ok()) return tokens.status();
  auto sampler = MakeSampler(request, chat);
  if (!sampler.ok()) return sampler.status();

  // A request with a seed gives the same text however warm the context is (ReusablePrefix).
  const bool reproducible = request.sampling.seed >= 0;
  // The free slot that can keep the most of its cached tokens for this prompt.
  Slot* slot = nullptr;
  size_t keep = 0;
  for (auto& s : slots_) {
    if (s->busy) continue;
    size_t n = ReusablePrefix(s->cached, s->canonical, *tokens, static_cast<size_t>(n_batch_), reproducible);
    if (slot == nullptr || n > keep) {
      slot = s.get();
      keep = n;
    }
  }
  if (slot == nullptr) return Status::Internal("no free slot");
  keep = RestorePromptPrefix(*slot, keep, *tokens, reproducible);
  llama_memory_t mem = llama_get_memory(ctx_);
  if (!llama_memory_seq_rm(mem, slot->seq, static_cast<llama_pos>(keep), -1)) {
    llama_memory_seq_rm(mem, slot->seq, -1, -1);
    keep = 0;
  }
  slot->cached.resize(keep);
  // Whole chunks stay canonical; a cut inside one leaves only the chunks before it.
  slot->canonical = std::min(slot->canonical, keep) / static_cast<size_t>(n_batch_) * static_cast<size_t>(n_batch_);
  slot->reproducible = reproducible;

  slot->busy = true;
  slot->num_predict = request.num_predict;
  slot->stop = request.stop;
  slot->return_context = request.return_context;
  slot->cancel = std::move(cancel);
  slot->on_text = std::move(on_text);
  slot->on_done = std::move(on_done);
  slot->sampler = std::move(sampler).value();
  slot->prompt = std::move(tokens).value();
  slot->prompt_done = keep;
  slot->generating = false;
  slot->next = LLAMA_TOKEN_NULL;
  slot->held.clear();
  slot->generated.clear();
  slot->logprobs = request.logprobs;
  slot->top_logprobs = std::clamp(request.top_logprobs, 0, kMaxTopLogprobs);
  slot->pending_logprobs.clear();
  slot->preserved.clear();
  if (chat != nullptr) {
    for (const std::string& text : chat->preserved_tokens) {
      auto ids = Tokenize(text, /*add_special=*/false);
      if (ids.ok() && ids->size() == 1) slot->preserved.push_back(ids->front());
    }
    std::sort(slot->preserved.begin(), slot->preserved.end());
  }
  slot->done = DoneEvent{};
  slot->done.id = request.id;
  slot->done.prompt_cached_count = static_cast<int32_t>(keep);
  slot->done.done_reason = "stop";
  slot->started = Clock::now();
  return Status::Ok();
}

void Engine::Finish(Slot& slot, Result<DoneEvent> result) {
  DoneSink on_done = std::move(slot.on_done);
  slot.busy = false;
  slot.sampler.reset();
  slot.cancel.reset();
  slot.on_text = nullptr;
  slot.on_done = nullptr;
  slot.prompt.clear();
  slot.generated.clear();
  slot.held.clear();
  slot.pending_logprobs.clear();
  on_done(std::move(result));
}

void Engine::Accept(Slot& slot, int32_t token) {
  DoneEvent& done = slot.done;
  auto finish = [&] {
    done.eval_ns = NanosSince(slot.generating_since);
    if (slot.return_context) {
      done.context = slot.prompt;
      done.context.insert(done.context.end(), slot.generated.begin(), slot.generated.end());
    }
    Finish(slot, std::move(done));
  };
  // Text goes out with the log-probabilities of the tokens it came from.
  auto emit_text = [&](std::string_view text) { return slot.on_text(text, std::exchange(slot.pending_logprobs, {})); };
  if (llama_vocab_is_eog(vocab_, token)) {
    if (!slot.held.empty()) emit_text(slot.held);  // the tail, even if it was a partial stop
    return finish();
  }
  slot.generated.push_back(token);
  ++done.eval_count;
  const std::string piece = SlotTokenText(slot, token);
  if (slot.logprobs) {
    const float* logits = llama_get_logits_ith(ctx_, slot.logits_at);
    TokenLogprobIds lp = LogSoftmaxAt(logits, static_cast<size_t>(facts_.n_vocab), token, slot.top_logprobs);
    TokenLogprob& out = slot.pending_logprobs.emplace_back();
    out.token = piece;
    out.logprob = lp.logprob;
    for (const auto& [id, logprob] : lp.top) out.top.push_back(TopLogprob{SlotTokenText(slot, id), logprob});
  }
  slot.held += piece;
  auto [emit, hit] = StopScan(slot.held, slot.stop);
  if (hit) slot.held.resize(emit);
  size_t ready = hit ? slot.held.size() : CompleteUtf8Prefix(slot.held.substr(0, emit));
  bool whole = false;  // the sink says the answer is complete
  if (ready > 0) {
    whole = !emit_text(std::string_view(slot.held).substr(0, ready));
    slot.held.erase(0, ready);
  }
  if (hit || whole) return finish();
  bool length = (slot.num_predict >= 0 && done.eval_count >= slot.num_predict) ||
                static_cast<int32_t>(slot.cached.size()) + 1 >= facts_.n_ctx;
  if (length) {
    done.done_reason = "length";
    if (!slot.held.empty()) emit_text(slot.held);
    return finish();
  }
  slot.next = token;
}

void Engine::Idle() {
  if (threadpool_ != nullptr && threadpool_pause_ != nullptr) threadpool_pause_(threadpool_);
}

void Engine::Step() {
  // Requests cancelled since the last step leave first.
  for (auto& s : slots_) {
    if (s->busy && s->cancel && s->cancel->load()) Finish(*s, Status::Cancelled("request cancelled"));
  }
  if (!Busy()) return;

  // The batch: the next token of every generating slot, then prompt chunks while there is room.
  llama_batch& batch = batch_;
  batch.n_tokens = 0;
  batch_cancel_.clear();
  auto add = [&](Slot& s, int32_t token, bool logits) {
    int32_t i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = static_cast<llama_pos>(s.cached.size()) + s.n_in_batch;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = s.seq;
    batch.logits[i] = logits ? 1 : 0;
    ++s.n_in_batch;
    if (logits) s.logits_at = i;
  };
  for (auto& s : slots_) {
    s->n_in_batch = 0;
    s->logits_at = -1;
    if (s->busy && s->generating) add(*s, s->next, true);
  }
  for (auto& s : slots_) {
    if (!s->busy || s->generating) continue;
    // A reproducible prompt goes in the chunks a fresh context uses: [k·n_batch, (k+1)·n_batch).
    const size_t chunk = static_cast<size_t>(n_batch_);
    const size_t end = s->reproducible ? std::min(s->prompt.size(), (s->prompt_done / chunk + 1) * chunk) : s->prompt.size();
    while (s->prompt_done + static_cast<size_t>(s->n_in_batch) < end && batch.n_tokens < n_batch_) {
      size_t i = s->prompt_done + static_cast<size_t>(s->n_in_batch);
      add(*s, s->prompt[i], i + 1 == s->prompt.size());
    }
  }
  int slots_in_batch = 0;
  bool fixed_threads = false;
  for (auto& s : slots_) {
    if (s->n_in_batch == 0) continue;
    batch_cancel_.push_back(s->cancel.get());
    ++slots_in_batch;
    fixed_threads |= s->reproducible;
  }

  PickThreads(fixed_threads);
  int rc = DecodeBatch(batch);
  Beat();
  batch_cancel_.clear();
  if (rc != 0) {
    // Aborted (a request in the batch was cancelled) or failed: what the batch put in the
    // memory goes, so every slot is where it was before this step.
    llama_memory_t mem = llama_get_memory(ctx_);
    for (auto& s : slots_) {
      if (s->n_in_batch == 0) continue;
      if (rc == 2) {
        llama_memory_seq_rm(mem, s->seq, static_cast<llama_pos>(s->cached.size()), -1);
      } else {
        llama_memory_seq_rm(mem, s->seq, -1, -1);
        s->cached.clear();
        s->canonical = 0;
        Finish(*s, Status::Internal("llama_decode failed with code " + std::to_string(rc)));
      }
    }
    return;  // cancelled requests leave at the next step; the others decode again
  }

  for (auto& s : slots_) {
    if (s->n_in_batch == 0) continue;
    if (s->generating) {
      s->cached.push_back(s->next);
    } else {
      // A whole aligned chunk, alone in its batch, right after the canonical prefix, at the engine's
      // own thread count, extends it: a fresh context would have decoded exactly this.
      if (slots_in_batch == 1 && s->n_in_batch == n_batch_ && s->canonical == s->cached.size() &&
          s->cached.size() % static_cast<size_t>(n_batch_) == 0 && threads_now_ == cores_) {
        s->canonical += static_cast<size_t>(n_batch_);
      }
      s->cached.insert(s->cached.end(), s->prompt.begin() + static_cast<long>(s->prompt_done),
                       s->prompt.begin() + static_cast<long>(s->prompt_done) + s->n_in_batch);
      s->prompt_done += static_cast<size_t>(s->n_in_batch);
    }
    if (s->logits_at < 0) continue;
    if (!s->generating) {
      s->generating = true;
      s->done.prompt_eval_count = static_cast<int32_t>(s->prompt.size());
      s->done.prompt_eval_ns = NanosSince(s->started);
      s->generating_since = Clock::now();
    }
    if (s->cancel && s->cancel->load()) {
      Finish(*s, Status::Cancelled("request cancelled"));
      continue;
    }
    // Broken weights give NaN logits, from which every sampler picks the same token forever:
    // an error, never text. What the batch put in this sequence's memory goes with it.
    const float* logits = llama_get_logits_ith(ctx_, s->logits_at);
    const size_t n_logits = static_cast<size_t>(facts_.n_vocab);
    if (logits == nullptr || HasNonFinite(logits, n_logits, /*allow_minus_infinity=*/true)) {
      llama_memory_seq_rm(llama_get_memory(ctx_), s->seq, -1, -1);
      s->cached.clear();
      s->canonical = 0;
      Finish(*s, Status::Internal("model \"" + name_ +
                                  "\" computed NaN or infinite logits: its weights or hyperparameters are broken"));
      continue;
    }
    Accept(*s, llama_sampler_sample(s->sampler.get(), ctx_, s->logits_at));
    Beat();
  }
}

Result<EmbedResult> Engine::Embed(const EmbedRequest& request, const std::atomic<bool>& cancel) {
  RESIDENT_RETURN_IF_ERROR(Wake());
  EmbedResult result;
  result.id = request.id;
  const int32_t n_embd = facts_.n_embd;
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_set_embeddings(ctx_, true);
  struct Restore {
    Engine* e;
    ~Restore() {
      llama_set_embeddings(e->ctx_, false);
      llama_memory_clear(llama_get_memory(e->ctx_), true);
      for (auto& slot : e->slots_) {
        slot->cached.clear();
        slot->canonical = 0;
      }
      e->batch_cancel_.clear();
    }
  } restore{this};
  batch_cancel_.assign(1, &cancel);
  llama_batch& batch = batch_;

  for (const std::string& whole : request.inputs) {
    // An input longer than the context can hold is refused, or (truncate) cut before it is
    // tokenized: twice the bytes the context's tokens can stand for, at a character boundary,
    // keeps every token that the truncation below keeps.
    std::string_view input = whole;
    if (!request.truncate) {
      RESIDENT_RETURN_IF_ERROR(CheckFits(input.size(), "the input"));
    } else if (input.size() > 2 * MaxFittingBytes()) {
      input = input.substr(0, CompleteUtf8Prefix(input.substr(0, 2 * MaxFittingBytes())));
    }
    auto tokens = Tokenize(input, true);
    if (!tokens.ok()) return tokens.status();
    if (tokens->empty()) return Status::InvalidArgument("cannot embed an empty input");
    if (static_cast<int32_t>(tokens->size()) > facts_.n_ctx) {
      if (!request.truncate) {
        return Status::InvalidArgument("the input is " + std::to_string(tokens->size()) +
                                       " tokens, longer than the context of " + std::to_string(facts_.n_ctx));
      }
      tokens->resize(static_cast<size_t>(facts_.n_ctx));
    }
    llama_memory_clear(mem, true);
    std::vector<double> sum(static_cast<size_t>(n_embd), 0.0);
    for (size_t i = 0; i < tokens->size(); i += static_cast<size_t>(n_batch_)) {
      if (cancel.load()) return Status::Cancelled("request cancelled");
      int32_t n = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(n_batch_), tokens->size() - i));
      batch.n_tokens = n;
      for (int32_t j = 0; j < n; ++j) {
        batch.token[j] = (*tokens)[i + static_cast<size_t>(j)];
        batch.pos[j] = static_cast<llama_pos>(i) + j;
        batch.n_seq_id[j] = 1;
        batch.seq_id[j][0] = 0;
        batch.logits[j] = 1;
      }
      PickThreads();
      int rc = DecodeBatch(batch);
      if (rc == 2) return Status::Cancelled("request cancelled");
      if (rc != 0) return Status::Internal("llama_decode failed with code " + std::to_string(rc));
      for (int32_t j = 0; j < n; ++j) {
        const float* e = llama_get_embeddings_ith(ctx_, j);
        if (e == nullptr) return Status::Internal("the model returned no embeddings");
        for (int32_t k = 0; k < n_embd; ++k) sum[static_cast<size_t>(k)] += e[k];
      }
    }
    std::vector<float> out(static_cast<size_t>(n_embd));
    double norm = 0;
    for (int32_t k = 0; k < n_embd; ++k) {
      out[static_cast<size_t>(k)] = static_cast<float>(sum[static_cast<size_t>(k)] / static_cast<double>(tokens->size()));
      norm += static_cast<double>(out[static_cast<size_t>(k)]) * out[static_cast<size_t>(k)];
    }
    // JSON has no NaN: it would reach the client as null, in a 200.
    if (HasNonFinite(out.data(), out.size())) {
      return Status::Internal("model \"" + name_ +
                              "\" computed an embedding with NaN or infinite values: its weights or hyperparameters are "
                              "broken");
    }
    if (request.normalize && norm > 0) {
      float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (float& v : out) v *= inv;
    }
    result.embeddings.push_back(std::move(out));
    result.prompt_eval_count += static_cast<int32_t>(tokens->size());
  }
  return result;
}

}  // namespace resident::runner
