// The engine's side of the prompt cache (prompt_cache.h): the key of a context, restoring a saved
// prefix into a slot at the start of a generation, and saving the slots' prefixes before an
// unload.
//
// When to restore: lazily, at the first request whose prompt shares a prefix with an entry (at
// least kMinPromptCacheTokens of it), rather than the newest entry at load. A model may have
// several saved prefixes (one per system prompt or conversation), and only the prompt says which
// one it extends; a request that shares nothing reads nothing. What load does ahead is the
// checking: while the context is created it reads the folder's headers and checks the most
// recently used entry's payload against its checksum on the core the context's creation leaves
// idle, so that the first request, when it extends that entry, only has llama.cpp read it.
//
// Why a restored state keeps the "same seed, same text" guarantee: its bytes are exactly the bytes
// that were saved, which the saving runner computed with the same model file, context settings,
// thread count and llama.cpp build (all in the key). Its first `canonical` tokens were decoded as a
// fresh context decodes them, so a seeded request reuses only those whole chunks, as it would have
// in the runner that saved them (ReusablePrefix); requests without a seed reuse every token.
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/bytes.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"
#include "runner/engine.h"
#include "runner/engine_slot.h"
#include "runner/prompt_cache.h"

namespace resident::runner {
namespace {

using Clock = std::chrono::steady_clock;

std::string Seconds(Clock::time_point since) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", std::chrono::duration<double>(Clock::now() - since).count());
  return buf;
}

std::string FileName(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// The file of the library that holds `symbol`: its name, size and modification time ("unknown"
// when the dynamic linker cannot say).
std::string LibraryIdentity(const void* symbol) {
  Dl_info info{};
  if (::dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "unknown";
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(info.dli_fname, ec);
  if (ec) real = info.dli_fname;
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) return real.filename().string();
  return real.filename().string() + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec);
}

}  // namespace

std::string BackendIdentity() {
  std::string id = "llama=" + LibraryIdentity(reinterpret_cast<const void*>(&llama_backend_init));
  if (ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    if (void* fn = ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new")) id += ";cpu=" + LibraryIdentity(fn);
  }
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    id += ";device=" + std::string(ggml_backend_dev_name(dev)) + "/" + ggml_backend_dev_description(dev);
  }
  return id;
}

namespace {

bool StartsWith(const std::vector<int32_t>& longer, const std::vector<int32_t>& prefix) {
  return longer.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), longer.begin());
}

}  // namespace

void Engine::OpenPromptCache(const LoadRequest& request, const llama_context_params& cparams, std::string backend) {
  auto model = ModelFileIdentity(request.model_path);
  if (!model.ok()) {
    prompt_report_.warnings.push_back("off for this load: " + model.status().message());
    return;
  }
  const uint32_t n_seq = std::max<uint32_t>(1, cparams.n_seq_max);
  const std::string key =
      "format=" + std::to_string(kPromptCacheVersion) + ";model=" + *model + ";n_ctx=" + std::to_string(cparams.n_ctx / n_seq) +
      ";n_seq=" + std::to_string(n_seq) + ";n_batch=" + std::to_string(cparams.n_batch) +
      ";n_ubatch=" + std::to_string(cparams.n_ubatch) + ";type_k=" + ggml_type_name(cparams.type_k) +
      ";type_v=" + ggml_type_name(cparams.type_v) + ";flash_attn=" + std::to_string(static_cast<int>(cparams.flash_attn_type)) +
      ";kv_unified=" + std::to_string(cparams.kv_unified) + ";swa_full=" + std::to_string(cparams.swa_full) +
      ";offload_kqv=" + std::to_string(cparams.offload_kqv) + ";n_gpu_layers=" + std::to_string(request.n_gpu_layers) +
      ";threads=" + std::to_string(cparams.n_threads) + ";" + backend;
  prompt_folder_.emplace(request.prompt_cache_dir, request.prompt_cache_max_bytes, key);
  std::vector<std::string> dropped;
  prompt_entries_ = prompt_folder_->Scan(&dropped);
  for (const std::string& why : dropped) {
    ++prompt_report_.dropped;
    prompt_report_.warnings.push_back("ignored the entry " + why);
  }
  if (prompt_entries_.empty()) return;
  prompt_report_.notes.push_back(std::to_string(prompt_entries_.size()) + " saved prefix(es) for this model and context in " +
                                 request.prompt_cache_dir);
  // The most recently used entry is checked now, while the context is created, unless it is so
  // large that reading it could outlast the context's creation (a request that extends it checks
  // it then).
  if (prompt_entries_.front().payload_bytes > kPromptCacheCheckAtLoadMaxBytes) return;
  auto checked = prompt_folder_->Verify(prompt_entries_.front());
  if (checked.ok()) {
    prompt_checked_ = std::move(checked).value();
  } else if (checked.status().code() == StatusCode::kInvalidArgument) {
    ++prompt_report_.dropped;
    prompt_report_.warnings.push_back("ignored the entry " + prompt_entries_.front().path + ": " + checked.status().message() +
                                      "; removed");
    prompt_entries_.erase(prompt_entries_.begin());
  }
}

size_t Engine::RestorePromptPrefix(Slot& slot, size_t keep, const std::vector<int32_t>& prompt, bool reproducible) {
  if (!prompt_folder_) return keep;
  // What was checked at load serves this request or none: its file is not kept open longer.
  std::optional<VerifiedPromptEntry> checked_at_load = std::exchange(prompt_checked_, std::nullopt);
  while (!prompt_entries_.empty()) {
    // The entry that lets this prompt keep the most of its tokens, if that is kMinPromptCacheTokens
    // more than the slot keeps: reading a whole entry to spare a few tokens (a BOS token that
    // every prompt shares) would cost more than it saves.
    size_t best = prompt_entries_.size();
    size_t best_keep = keep;
    for (size_t i = 0; i < prompt_entries_.size(); ++i) {
      const PromptCacheEntry& e = prompt_entries_[i];
      if (e.tokens.size() >= static_cast<size_t>(facts_.n_ctx)) continue;
      const size_t n = ReusablePrefix(e.tokens, e.canonical, prompt, static_cast<size_t>(n_batch_), reproducible);
      if (n > best_keep && n >= keep + kMinPromptCacheTokens) {
        best = i;
        best_keep = n;
      }
    }
    if (best == prompt_entries_.size()) return keep;
    const PromptCacheEntry entry = prompt_entries_[best];
    const auto forget = [&] { prompt_entries_.erase(prompt_entries_.begin() + static_cast<long>(best)); };
    const auto start = Clock::now();
    VerifiedPromptEntry file;
    if (checked_at_load && checked_at_load->entry().path == entry.path) {
      file = std::move(*checked_at_load);
    } else {
      auto checked = prompt_folder_->Verify(entry, [this] { Beat(); });
      if (!checked.ok()) {
        forget();
        if (checked.status().code() == StatusCode::kInvalidArgument) {
          ++prompt_report_.dropped;
          prompt_report_.warnings.push_back("ignored the entry " + entry.path + ": " + checked.status().message() + "; removed");
        } else if (checked.status().code() != StatusCode::kNotFound) {
          prompt_report_.warnings.push_back("did not restore " + entry.path + ": " + checked.status().message());
        }
        continue;
      }
      file = std::move(checked).value();
    }
    // The file's own header, as checked: an entry this runner saved itself is known by its path
    // and tokens only (its payload size is read back here).
    const PromptCacheEntry& checked = file.entry();
    Beat();
    std::vector<llama_token> tokens(static_cast<size_t>(facts_.n_ctx));
    size_t n_tokens = 0;
    const size_t read = llama_state_seq_load_file(ctx_, file.path().c_str(), slot.seq, tokens.data(), tokens.size(), &n_tokens);
    Beat();
    tokens.resize(std::min(n_tokens, tokens.size()));
    if (read != checked.payload_bytes || tokens != checked.tokens) {
      // llama.cpp refused the state, or it holds other tokens than its header says: the slot
      // starts over.
      llama_memory_seq_rm(llama_get_memory(ctx_), slot.seq, -1, -1);
      slot.cached.clear();
      slot.canonical = 0;
      keep = 0;
      prompt_folder_->Remove(entry);
      forget();
      ++prompt_report_.dropped;
      prompt_report_.warnings.push_back("ignored the entry " + entry.path +
                                        ": llama.cpp could not load the state it holds; removed");
      continue;
    }
    slot.cached = checked.tokens;
    slot.canonical = checked.canonical;
    prompt_entries_[best] = checked;
    prompt_folder_->Touch(checked);
    std::rotate(prompt_entries_.begin(), prompt_entries_.begin() + static_cast<long>(best),
                prompt_entries_.begin() + static_cast<long>(best) + 1);  // most recently used first
    ++prompt_report_.hits;
    prompt_report_.restored_tokens += best_keep;
    prompt_report_.restored_bytes += checked.payload_bytes;
    prompt_report_.notes.push_back("restored " + std::to_string(entry.tokens.size()) + " tokens (" +
                                   FormatBytes(checked.payload_bytes) + ") from " + FileName(entry.path) + " in " +
                                   Seconds(start) + ": the prompt keeps " + std::to_string(best_keep) + " of its " +
                                   std::to_string(prompt.size()) + " tokens" +
                                   (reproducible ? " (whole canonical chunks: it has a seed)" : ""));
    return best_keep;
  }
  return keep;
}

PromptCacheReport Engine::SavePromptCache() {
  PromptCacheReport report = TakePromptCacheReport();
  if (!prompt_folder_) return report;
  // The idle slots worth saving, less those whose tokens (and canonical chunks) another's include.
  std::vector<Slot*> chosen;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    if (s.busy || s.cached.size() < kMinPromptCacheTokens) continue;
    bool covered = false;
    for (size_t j = 0; j < slots_.size() && !covered; ++j) {
      const Slot& o = *slots_[j];
      if (j == i || o.busy || o.canonical < s.canonical || !StartsWith(o.cached, s.cached)) continue;
      covered = o.cached.size() > s.cached.size() || j < i;
    }
    if (!covered) chosen.push_back(&s);
  }
  for (Slot* s : chosen) {
    auto same = std::find_if(prompt_entries_.begin(), prompt_entries_.end(),
                             [&](const PromptCacheEntry& e) { return e.tokens == s->cached; });
    std::error_code ec;
    if (same != prompt_entries_.end() && same->canonical >= s->canonical && std::filesystem::exists(same->path, ec)) {
      prompt_folder_->Touch(*same);
      report.notes.push_back("kept " + FileName(same->path) + ": it holds these " + std::to_string(s->cached.size()) +
                             " tokens already");
      continue;
    }
    const auto start = Clock::now();
    const uint64_t estimate = llama_state_seq_get_size(ctx_, s->seq) + s->cached.size() * 2 * sizeof(int32_t) + 4096;
    if (estimate > prompt_folder_->max_bytes()) {
      report.warnings.push_back("did not save " + std::to_string(s->cached.size()) + " tokens: their state (" +
                                FormatBytes(estimate) + ") is larger than the whole cache (" +
                                FormatBytes(prompt_folder_->max_bytes()) + ", RESIDENT_PROMPT_CACHE_SIZE)");
      continue;
    }
    const Slot& slot = *s;
    auto saved = prompt_folder_->Save(
        slot.cached, slot.canonical,
        [&](const std::string& path) -> Status {
          // Streamed to the file a range of cells at a time: no copy of the whole state in memory.
          const size_t n = llama_state_seq_save_file(ctx_, path.c_str(), slot.seq, slot.cached.data(), slot.cached.size());
          Beat();
          return n > 0 ? Status::Ok() : Status::Internal("llama.cpp could not write the state");
        },
        [this] { Beat(); });
    if (!saved.ok()) {
      report.warnings.push_back("did not save " + std::to_string(s->cached.size()) + " tokens: " + saved.status().message());
      continue;
    }
    ++report.saves;
    report.saved_bytes += saved->bytes;
    report.evictions += saved->evicted;
    report.evicted_bytes += saved->evicted_bytes;
    // Entries the new one supersedes: a prefix of its tokens with no more canonical chunks.
    uint32_t superseded = 0;
    for (auto it = prompt_entries_.begin(); it != prompt_entries_.end();) {
      if (it->path == saved->path) {
        it = prompt_entries_.erase(it);
      } else if (it->tokens.size() < s->cached.size() && it->canonical <= s->canonical && StartsWith(s->cached, it->tokens)) {
        prompt_folder_->Remove(*it);
        ++superseded;
        it = prompt_entries_.erase(it);
      } else {
        ++it;
      }
    }
    // As a later Scan would read it from its header (a restore checks it against the file again).
    PromptCacheEntry entry;
    entry.path = saved->path;
    entry.tokens = s->cached;
    entry.canonical = s->canonical;
    entry.payload_bytes = saved->payload_bytes;
    entry.payload_checksum = saved->payload_checksum;
    entry.file_bytes = saved->bytes;
    prompt_entries_.insert(prompt_entries_.begin(), std::move(entry));
    std::string note = "saved " + std::to_string(s->cached.size()) + " tokens (" + std::to_string(s->canonical) +
                       " canonical) to " + FileName(saved->path) + " (" + FormatBytes(saved->bytes) + ") in " + Seconds(start);
    if (superseded > 0) note += "; removed " + std::to_string(superseded) + " entry(ies) it extends";
    if (saved->evicted > 0) {
      note += "; evicted " + std::to_string(saved->evicted) + " least recently used entry(ies) (" +
              FormatBytes(saved->evicted_bytes) + ") to stay within " + FormatBytes(prompt_folder_->max_bytes());
    }
    report.notes.push_back(std::move(note));
  }
  return report;
}

}  // namespace resident::runner
