#include "store/gguf_synth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "ggml.h"
#include "gguf.h"

namespace resident {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kEmbdLadder[] = {32,   64,   128,  192,  256,  384,  512, 768,
                                    1024, 1536, 2048, 3072, 4096, 6144, 8192};
constexpr uint64_t kMaxParams = 10'000'000'000'000ULL;  // 10T
constexpr uint32_t kCtxTrain = 4096;
constexpr double kFfnSnapTolerance = 0.05;
constexpr float kInitStd = 0.02f;
constexpr int64_t kChunkElems = int64_t{1} << 20;  // generator unit: same bytes for any thread count
constexpr int64_t kSubBlock = 8192;                 // Q8_0: floats drawn, then quantized

uint32_t MinLayers(uint32_t n_embd) { return std::max<uint32_t>(1, n_embd / 256); }
uint32_t MaxLayers(uint32_t n_embd) { return std::max<uint32_t>(16, 4 * MinLayers(n_embd)); }

uint64_t EmbParams(uint64_t v, uint64_t e) { return 2 * v * e + e; }
uint64_t LayerParams(uint64_t e, uint64_t f) { return 4 * e * e + 3 * e * f + 2 * e; }

SynthShape MakeShape(uint32_t n_vocab, uint32_t e, uint32_t l, uint32_t f) {
  SynthShape s{};
  s.n_vocab = n_vocab;
  s.n_embd = e;
  s.n_layer = l;
  s.n_ff = f;
  s.n_head = std::max<uint32_t>(1, e / 64);
  s.n_head_kv = s.n_head;
  s.n_ctx_train = kCtxTrain;
  s.n_params = SynthParamCount(n_vocab, e, l, f);
  return s;
}

double RelErr(uint64_t got, uint64_t want) {
  return std::fabs(static_cast<double>(got) - static_cast<double>(want)) / static_cast<double>(want);
}

// "20M", "800M", "1G", "2500000".
std::string CompactCount(uint64_t n) {
  if (n >= 1'000'000'000 && n % 1'000'000'000 == 0) return std::to_string(n / 1'000'000'000) + "G";
  if (n >= 1'000'000 && n % 1'000'000 == 0) return std::to_string(n / 1'000'000) + "M";
  if (n >= 1'000 && n % 1'000 == 0) return std::to_string(n / 1'000) + "K";
  return std::to_string(n);
}

// ---- chat templates ---------------------------------------------------------------------------

// Llama 2 chat in the usual Hugging Face form, without the raise_exception on non-alternating
// roles (a server must render whatever a client sends): system first → <<SYS>> block in the
// first user turn; other roles are rendered as user turns.
constexpr const char* kLlama2Template =
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_message = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ ' ' + (message['content'] | trim) + ' ' + eos_token }}"
    "{%- else -%}"
    "{%- if loop.index0 == 0 and system_message != '' -%}"
    "{%- set content = '<<SYS>>\\n' + (system_message | trim) + '\\n<</SYS>>\\n\\n' + "
    "(message['content'] | trim) -%}"
    "{%- else -%}"
    "{%- set content = message['content'] | trim -%}"
    "{%- endif -%}"
    "{{ bos_token + '[INST] ' + content + ' [/INST]' }}"
    "{%- endif -%}"
    "{%- endfor -%}";

constexpr const char* kLlama3Template =
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "(message['content'] | trim) + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif -%}";

constexpr const char* kChatMLTemplate =
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}";

bool VocabHasToken(const gguf_context* vocab, int64_t tokens_key, const char* text) {
  const size_t n = gguf_get_arr_n(vocab, tokens_key);
  for (size_t i = 0; i < n; ++i) {
    if (std::strcmp(gguf_get_arr_str(vocab, tokens_key, i), text) == 0) return true;
  }
  return false;
}

std::string DefaultTemplateName(const gguf_context* vocab, int64_t tokens_key) {
  if (VocabHasToken(vocab, tokens_key, "<|im_start|>")) return "chatml";
  if (VocabHasToken(vocab, tokens_key, "<|start_header_id|>")) return "llama3";
  return "llama2";
}

// Resolves opts.chat_template (see the header) to template text; "" = none.
Result<std::string> ResolveTemplateOption(const std::string& opt, const std::string& vocab_dir) {
  std::string builtin = SynthBuiltinChatTemplate(opt);
  if (!builtin.empty()) return builtin;
  if (const SynthNamedTemplate* named = FindSynthNamedTemplate(opt)) {
    const fs::path file = fs::path(vocab_dir) / "templates" / named->file;
    std::ifstream in(file, std::ios::binary);
    if (!in) return Status::NotFound("chat template \"" + opt + "\": " + file.string() + " cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  if (opt.find("{{") != std::string::npos || opt.find("{%") != std::string::npos) return opt;
  std::ifstream in(opt, std::ios::binary);
  if (!in) {
    std::string names;
    for (const SynthNamedTemplate& t : SynthNamedTemplates()) names += std::string(", ") + t.name;
    return Status::NotFound("chat template \"" + opt + "\" is neither a built-in name (llama2, llama3, chatml, none" +
                            names + "), Jinja text, nor a readable file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) return Status::InvalidArgument("chat template file " + opt + " is empty");
  return text.str();
}

// ---- vocab ------------------------------------------------------------------------------------

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;

bool LooksLikePath(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() > 5 && s.compare(s.size() - 5, 5, ".gguf") == 0);
}

Result<std::string> ResolveVocabPath(const SynthOptions& opts) {
  if (opts.vocab.empty()) return Status::InvalidArgument("no vocab given");  // see EffectiveVocab
  if (LooksLikePath(opts.vocab)) {
    std::error_code ec;
    if (!fs::is_regular_file(opts.vocab, ec)) {
      return Status::NotFound("vocab file " + opts.vocab + " does not exist");
    }
    return opts.vocab;
  }
  if (opts.vocab_dir.empty()) {
    return Status::InvalidArgument("vocab \"" + opts.vocab +
                                   "\" is a name but no vocab folder was given");
  }
  fs::path p = fs::path(opts.vocab_dir) / ("ggml-vocab-" + opts.vocab + ".gguf");
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p.string();
  std::vector<std::string> names = ListSynthVocabs(opts.vocab_dir);
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  if (list.empty()) list = "none: no ggml-vocab-*.gguf in " + opts.vocab_dir;
  return Status::NotFound("unknown vocab \"" + opts.vocab + "\"; available: " + list);
}

// ---- random weights ---------------------------------------------------------------------------

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The values drawn: the sum of four 8-bit uniforms (Irwin-Hall, n = 4: a bell on 1021 levels
// within ±3.5 standard deviations), centred and scaled to a standard deviation of kInitStd.
// Tabled once per type, so a draw of 64 bits gives two weights for two table look-ups.
constexpr int kLevels = 4 * 255 + 1;

struct ValueTables {
  std::array<float, kLevels> f32;
  std::array<ggml_fp16_t, kLevels> f16;
  ValueTables() {
    // Variance of one uniform on {0..255}: (256² - 1) / 12; four of them summed.
    const double sd = std::sqrt(4.0 * (256.0 * 256.0 - 1.0) / 12.0);
    for (int i = 0; i < kLevels; ++i) f32[i] = static_cast<float>((i - 510) * (kInitStd / sd));
    ggml_fp32_to_fp16_row(f32.data(), f16.data(), kLevels);
  }
};

const ValueTables& Tables() {
  static const ValueTables tables;
  return tables;
}

// splitmix64 stream for one chunk of one tensor.
struct ChunkRng {
  uint64_t state;
  ChunkRng(uint64_t seed, uint64_t tensor, uint64_t chunk)
      : state(Mix64(Mix64(seed ^ 0x5851f42d4c957f2dULL) ^ Mix64((tensor << 32) ^ chunk ^
                                                                 0x2545f4914f6cdd1dULL))) {}
  // Fills out[0..n) (n even) with table[level] for levels drawn as described above.
  template <typename T>
  void Fill(const std::array<T, kLevels>& table, T* out, int64_t n) {
    uint64_t s = state;
    for (int64_t i = 0; i < n; i += 2) {
      s += 0x9e3779b97f4a7c15ULL;
      const uint64_t r = Mix64(s);
      out[i] = table[(r & 0xff) + ((r >> 8) & 0xff) + ((r >> 16) & 0xff) + ((r >> 24) & 0xff)];
      out[i + 1] = table[((r >> 32) & 0xff) + ((r >> 40) & 0xff) + ((r >> 48) & 0xff) + (r >> 56)];
    }
    state = s;
  }
};

struct TensorPlan {
  std::string name;
  ggml_type type;
  int64_t ne0, ne1;  // ne1 = 1 for vectors
  bool is_norm;      // all SynthOptions::norm_weight (F32)
  uint64_t offset;   // from the start of the file
  uint64_t nbytes;
};

struct Unit {
  uint32_t tensor;
  uint32_t chunk;
  int64_t n_elems;
  uint64_t file_offset;
  uint64_t nbytes;
  uint64_t pad_after;  // zero bytes after this unit (alignment after a tensor's last chunk)
};

void FillUnit(const TensorPlan& t, const Unit& u, uint64_t seed, float norm_weight, float* scratch, uint8_t* out) {
  if (t.is_norm) {
    float* dst = reinterpret_cast<float*>(out);
    std::fill(dst, dst + u.n_elems, norm_weight);
    return;
  }
  const ValueTables& tables = Tables();
  ChunkRng rng(seed, u.tensor, u.chunk);
  switch (t.type) {
    case GGML_TYPE_F32:
      rng.Fill(tables.f32, reinterpret_cast<float*>(out), u.n_elems);
      break;
    case GGML_TYPE_F16:
      rng.Fill(tables.f16, reinterpret_cast<ggml_fp16_t*>(out), u.n_elems);
      break;
    default: {  // Q8_0: blocks of 32 are independent, so quantizing piecewise is exact.
      const size_t block_bytes = ggml_row_size(t.type, kSubBlock);
      for (int64_t done = 0; done < u.n_elems; done += kSubBlock) {
        const int64_t n = std::min(kSubBlock, u.n_elems - done);
        rng.Fill(tables.f32, scratch, n);
        ggml_quantize_chunk(t.type, scratch, out + (done / kSubBlock) * block_bytes, 0, 1, n, nullptr);
      }
      break;
    }
  }
}

Status WriteAt(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::Internal("cannot write " + path + ": " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

// Generates and writes the units on `threads` threads, the calling thread being one of them
// (so that it can call opts.progress). Each thread writes its own chunks with pwrite, one
// thread at a time, so the kernel's copy into the page cache overlaps with the other threads'
// drawing. The alignment padding between tensors is never written: the file was sized
// beforehand, and what is not written reads as zeros.
Status WriteUnits(int fd, const std::string& path, const std::vector<TensorPlan>& tensors,
                  const std::vector<Unit>& units, uint64_t seed, int threads, uint64_t meta_bytes,
                  uint64_t total_bytes, const SynthOptions& opts) {
  size_t max_bytes = 0;
  for (const Unit& u : units) max_bytes = std::max<size_t>(max_bytes, u.nbytes);

  std::atomic<size_t> next_unit{0};
  std::atomic<uint64_t> done_bytes{meta_bytes};
  std::atomic<bool> failed{false};
  std::mutex mu;        // guards first_error
  std::mutex write_mu;  // one write at a time: concurrent writes only contend in the kernel
  Status first_error;

  auto work = [&](bool caller) {
    std::vector<float> scratch(kSubBlock);
    std::vector<uint8_t> buf(max_bytes);
    while (!failed.load(std::memory_order_relaxed)) {
      const size_t u = next_unit.fetch_add(1);
      if (u >= units.size()) break;
      const Unit& unit = units[u];
      FillUnit(tensors[unit.tensor], unit, seed, opts.norm_weight, scratch.data(), buf.data());
      Status st;
      {
        std::lock_guard<std::mutex> lock(write_mu);
        st = WriteAt(fd, buf.data(), unit.nbytes, unit.file_offset, path);
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = std::move(st);
        failed = true;
        break;
      }
      const uint64_t done = done_bytes.fetch_add(unit.nbytes + unit.pad_after) + unit.nbytes + unit.pad_after;
      if (caller && opts.progress) opts.progress(done, total_bytes);
    }
  };

  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int i = 1; i < threads; ++i) pool.emplace_back(work, false);
  work(true);
  for (auto& t : pool) t.join();
  if (failed) return first_error;
  if (opts.progress) opts.progress(total_bytes, total_bytes);
  return Status::Ok();
}

class TmpFile {
 public:
  explicit TmpFile(std::string path) : path_(std::move(path)) {}
  ~TmpFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!kept_) ::unlink(path_.c_str());
  }
  TmpFile(const TmpFile&) = delete;
  TmpFile& operator=(const TmpFile&) = delete;

  Status Open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::Internal("cannot write " + path_ + ": " + std::strerror(errno));
    return Status::Ok();
  }
  int fd() const { return fd_; }
  Status CloseAndRename(const std::string& to) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Status::Internal("cannot write " + path_ + ": " + std::strerror(errno));
    if (::rename(path_.c_str(), to.c_str()) != 0) {
      return Status::Internal("cannot rename " + path_ + " to " + to + ": " + std::strerror(errno));
    }
    kept_ = true;
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool kept_ = false;
};

}  // namespace

uint64_t SynthParamCount(uint32_t n_vocab, uint32_t n_embd, uint32_t n_layer, uint32_t n_ff) {
  return EmbParams(n_vocab, n_embd) + uint64_t{n_layer} * LayerParams(n_embd, n_ff);
}

Result<SynthShape> ChooseSynthShape(uint64_t params, uint32_t n_vocab) {
  if (n_vocab == 0) return Status::InvalidArgument("the vocab has no tokens");
  const uint64_t min_params = SynthParamCount(n_vocab, kEmbdLadder[0], 1, 4 * kEmbdLadder[0]);
  if (params < min_params) {
    return Status::InvalidArgument("a model with a vocab of " + std::to_string(n_vocab) +
                                   " tokens has at least " + std::to_string(min_params) +
                                   " parameters (" + CompactCount(params) + " asked)");
  }
  if (params > kMaxParams) {
    return Status::InvalidArgument("at most 10T parameters (" + std::to_string(params) + " asked)");
  }

  uint32_t e = kEmbdLadder[0];
  for (uint32_t cand : kEmbdLadder) {
    if (SynthParamCount(n_vocab, cand, MinLayers(cand), 4 * cand) <= params) e = cand;
  }
  const uint64_t emb = EmbParams(n_vocab, e);
  const double layers = static_cast<double>(params - emb) / static_cast<double>(LayerParams(e, 4 * e));
  const uint32_t l = static_cast<uint32_t>(std::clamp<double>(std::llround(layers), MinLayers(e), MaxLayers(e)));

  uint32_t f = 4 * e;
  if (RelErr(SynthParamCount(n_vocab, e, l, f), params) > kFfnSnapTolerance) {
    // Refit n_ff: params = emb + l·(4e² + 2e) + 3·e·l·f.
    const double fixed = static_cast<double>(emb + uint64_t{l} * LayerParams(e, 0));
    const double per_f = 3.0 * e * l;
    double want_f = (static_cast<double>(params) - fixed) / per_f;
    want_f = std::clamp(std::round(want_f / 64.0) * 64.0, 64.0, 4'000'000'000.0);
    f = static_cast<uint32_t>(want_f);
  }
  return MakeShape(n_vocab, e, l, f);
}

std::vector<std::string> ListSynthVocabs(const std::string& vocab_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(vocab_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    constexpr std::string_view kPrefix = "ggml-vocab-", kSuffix = ".gguf";
    if (file.size() > kPrefix.size() + kSuffix.size() && file.starts_with(kPrefix) &&
        file.ends_with(kSuffix)) {
      names.push_back(file.substr(kPrefix.size(), file.size() - kPrefix.size() - kSuffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

const std::vector<SynthNamedTemplate>& SynthNamedTemplates() {
  // Tool-capable and thinking templates of real models, with a vocabulary of their family.
  static const std::vector<SynthNamedTemplate> kTemplates = {
      {"qwen2.5", "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2"},
      {"qwen3", "Qwen-Qwen3-0.6B.jinja", "qwen2"},
      {"deepseek-r1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "qwen2"},
      {"llama3.1", "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama-bpe"},
      {"llama3.2", "meta-llama-Llama-3.2-3B-Instruct.jinja", "llama-bpe"},
      {"hermes3", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "llama-bpe"},
      {"mistral-nemo", "mistralai-Mistral-Nemo-Instruct-2407.jinja", "llama-spm"},
      {"gpt-oss", "openai-gpt-oss-120b.jinja", "llama-bpe"},
  };
  return kTemplates;
}

const SynthNamedTemplate* FindSynthNamedTemplate(const std::string& name) {
  for (const SynthNamedTemplate& t : SynthNamedTemplates()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

std::string SynthBuiltinChatTemplate(const std::string& name) {
  if (name == "llama2") return kLlama2Template;
  if (name == "llama3") return kLlama3Template;
  if (name == "chatml") return kChatMLTemplate;
  return "";
}

Result<SynthShape> WriteSyntheticModel(const SynthOptions& given) {
  if (given.out_path.empty()) return Status::InvalidArgument("no output path given");
  SynthOptions opts = given;
  if (opts.vocab.empty()) {  // the named template's vocabulary, else llama-spm
    const SynthNamedTemplate* named = FindSynthNamedTemplate(opts.chat_template);
    opts.vocab = named != nullptr ? named->vocab : "llama-spm";
  }

  // Vocab.
  Result<std::string> vocab_path = ResolveVocabPath(opts);
  if (!vocab_path.ok()) return vocab_path.status();
  GgufPtr vocab(gguf_init_from_file(vocab_path->c_str(), gguf_init_params{true, nullptr}));
  if (!vocab) return Status::InvalidArgument("cannot read vocab file " + *vocab_path + ": not a GGUF file");
  const int64_t tokens_key = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
  if (tokens_key < 0 || gguf_get_kv_type(vocab.get(), tokens_key) != GGUF_TYPE_ARRAY ||
      gguf_get_arr_type(vocab.get(), tokens_key) != GGUF_TYPE_STRING) {
    return Status::InvalidArgument(*vocab_path + " has no tokenizer.ggml.tokens: not a vocab file");
  }
  const uint64_t n_vocab64 = gguf_get_arr_n(vocab.get(), tokens_key);
  if (n_vocab64 == 0 || n_vocab64 > UINT32_MAX) {
    return Status::InvalidArgument(*vocab_path + " has " + std::to_string(n_vocab64) + " tokens");
  }
  const auto n_vocab = static_cast<uint32_t>(n_vocab64);

  Result<SynthShape> shape_or = ChooseSynthShape(opts.params, n_vocab);
  if (!shape_or.ok()) {
    return Status(shape_or.status().code(), "vocab " + opts.vocab + ": " + shape_or.status().message());
  }
  const SynthShape shape = *shape_or;

  // Chat template.
  std::string chat_template;  // "" = leave the copied key as it is
  bool remove_template = false;
  if (opts.chat_template == "none") {
    remove_template = true;
  } else if (!opts.chat_template.empty()) {
    Result<std::string> t = ResolveTemplateOption(opts.chat_template, opts.vocab_dir);
    if (!t.ok()) return t.status();
    chat_template = *t;
  } else if (gguf_find_key(vocab.get(), "tokenizer.chat_template") < 0) {
    chat_template = SynthBuiltinChatTemplate(DefaultTemplateName(vocab.get(), tokens_key));
  }

  // Metadata: every key of the vocab, minus the hyperparameters of its own architecture.
  GgufPtr out(gguf_init_empty());
  gguf_set_kv(out.get(), vocab.get());
  {
    std::vector<std::string> prefixes = {"llama."};
    const int64_t arch_key = gguf_find_key(vocab.get(), "general.architecture");
    if (arch_key >= 0 && gguf_get_kv_type(vocab.get(), arch_key) == GGUF_TYPE_STRING) {
      prefixes.push_back(std::string(gguf_get_val_str(vocab.get(), arch_key)) + ".");
    }
    std::vector<std::string> doomed = {GGUF_KEY_GENERAL_ALIGNMENT, "general.quantization_version"};
    for (int64_t i = 0; i < gguf_get_n_kv(out.get()); ++i) {
      const std::string key = gguf_get_key(out.get(), i);
      for (const auto& p : prefixes) {
        if (key.starts_with(p)) doomed.push_back(key);
      }
    }
    if (remove_template) {
      for (int64_t i = 0; i < gguf_get_n_kv(out.get()); ++i) {
        const std::string key = gguf_get_key(out.get(), i);
        if (key.starts_with("tokenizer.chat_template")) doomed.push_back(key);
      }
    }
    for (const auto& key : doomed) gguf_remove_key(out.get(), key.c_str());
  }
  gguf_set_val_str(out.get(), "general.architecture", "llama");
  gguf_set_val_str(out.get(), "general.name", ("resident-synth-" + CompactCount(opts.params)).c_str());
  gguf_set_val_u32(out.get(), "llama.vocab_size", shape.n_vocab);
  gguf_set_val_u32(out.get(), "llama.context_length", shape.n_ctx_train);
  gguf_set_val_u32(out.get(), "llama.embedding_length", shape.n_embd);
  gguf_set_val_u32(out.get(), "llama.block_count", shape.n_layer);
  gguf_set_val_u32(out.get(), "llama.feed_forward_length", shape.n_ff);
  gguf_set_val_u32(out.get(), "llama.attention.head_count", shape.n_head);
  gguf_set_val_u32(out.get(), "llama.attention.head_count_kv", shape.n_head_kv);
  gguf_set_val_u32(out.get(), "llama.rope.dimension_count", shape.n_embd / shape.n_head);
  gguf_set_val_f32(out.get(), "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(out.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  const bool q8 = opts.type == SynthOptions::Type::kQ8_0;
  gguf_set_val_u32(out.get(), "general.file_type", q8 ? 7 : 1);
  if (q8) gguf_set_val_u32(out.get(), "general.quantization_version", GGML_QNT_VERSION);
  if (!chat_template.empty()) gguf_set_val_str(out.get(), "tokenizer.chat_template", chat_template.c_str());
  for (const auto& [key, value] : opts.metadata) {
    if (const auto* u = std::get_if<uint32_t>(&value)) gguf_set_val_u32(out.get(), key.c_str(), *u);
    else if (const auto* f = std::get_if<float>(&value)) gguf_set_val_f32(out.get(), key.c_str(), *f);
    else gguf_set_val_str(out.get(), key.c_str(), std::get<std::string>(value).c_str());
  }

  // Tensors.
  const ggml_type wtype = q8 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
  const int64_t e = shape.n_embd, v = shape.n_vocab, f = shape.n_ff;
  const int64_t e_kv = e / shape.n_head * shape.n_head_kv;
  std::vector<TensorPlan> tensors;
  auto add = [&](std::string name, ggml_type type, int64_t ne0, int64_t ne1, bool norm) {
    tensors.push_back(TensorPlan{std::move(name), type, ne0, ne1, norm, 0, 0});
  };
  add("token_embd.weight", wtype, e, v, false);
  add("output_norm.weight", GGML_TYPE_F32, e, 1, true);
  add("output.weight", wtype, e, v, false);
  for (uint32_t i = 0; i < shape.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", GGML_TYPE_F32, e, 1, true);
    add(b + "attn_q.weight", wtype, e, e, false);
    add(b + "attn_k.weight", wtype, e, e_kv, false);
    add(b + "attn_v.weight", wtype, e, e_kv, false);
    add(b + "attn_output.weight", wtype, e, e, false);
    add(b + "ffn_norm.weight", GGML_TYPE_F32, e, 1, true);
    add(b + "ffn_gate.weight", wtype, e, f, false);
    add(b + "ffn_up.weight", wtype, e, f, false);
    add(b + "ffn_down.weight", wtype, f, e, false);
  }
  GgmlPtr meta_ctx(ggml_init(ggml_init_params{ggml_tensor_overhead() * (tensors.size() + 1), nullptr, true}));
  if (!meta_ctx) return Status::Internal("ggml_init failed");
  for (const TensorPlan& t : tensors) {
    ggml_tensor* gt = t.ne1 == 1 ? ggml_new_tensor_1d(meta_ctx.get(), t.type, t.ne0)
                                 : ggml_new_tensor_2d(meta_ctx.get(), t.type, t.ne0, t.ne1);
    ggml_set_name(gt, t.name.c_str());
    gguf_add_tensor(out.get(), gt);
  }

  std::vector<uint8_t> meta(gguf_get_meta_size(out.get()));
  gguf_get_meta_data(out.get(), meta.data());
  const uint64_t align = gguf_get_alignment(out.get());
  uint64_t total_bytes = meta.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorPlan& t = tensors[i];
    t.offset = meta.size() + gguf_get_tensor_offset(out.get(), static_cast<int64_t>(i));
    t.nbytes = gguf_get_tensor_size(out.get(), static_cast<int64_t>(i));
    if (t.offset != total_bytes) return Status::Internal("unexpected tensor layout in " + t.name);
    total_bytes = t.offset + (t.nbytes + align - 1) / align * align;
  }

  std::vector<Unit> units;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorPlan& t = tensors[i];
    const int64_t n = t.ne0 * t.ne1;
    uint64_t off = t.offset;
    for (int64_t first = 0, c = 0; first < n; first += kChunkElems, ++c) {
      const int64_t cnt = std::min(kChunkElems, n - first);
      const uint64_t nb = ggml_row_size(t.type, cnt);
      units.push_back(Unit{static_cast<uint32_t>(i), static_cast<uint32_t>(c), cnt, off, nb, 0});
      off += nb;
    }
    units.back().pad_after = (align - t.nbytes % align) % align;
    if (off != t.offset + t.nbytes) return Status::Internal("unexpected tensor size of " + t.name);
  }

  // Write.
  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::clamp(threads, 1, 256);
  TmpFile tmp(opts.out_path + ".tmp");
  RESIDENT_RETURN_IF_ERROR(tmp.Open());
  if (::ftruncate(tmp.fd(), static_cast<off_t>(total_bytes)) != 0) {
    return Status::Internal("cannot write " + opts.out_path + ".tmp: " + std::strerror(errno));
  }
  RESIDENT_RETURN_IF_ERROR(WriteAt(tmp.fd(), meta.data(), meta.size(), 0, opts.out_path + ".tmp"));
  if (opts.progress) opts.progress(meta.size(), total_bytes);
  RESIDENT_RETURN_IF_ERROR(WriteUnits(tmp.fd(), opts.out_path + ".tmp", tensors, units, opts.seed,
                                      threads, meta.size(), total_bytes, opts));
  RESIDENT_RETURN_IF_ERROR(tmp.CloseAndRename(opts.out_path));
  return shape;
}

}  // namespace resident
