// Synthetic llama models: a GGUF with the vocabulary of a real model and random weights.
//
// Benchmarks and tests need models of a chosen size that llama.cpp loads and runs, without
// downloading any. WriteSyntheticModel copies every key of a vocab-only GGUF (the
// ggml-vocab-*.gguf files of llama.cpp's source tree), picks a llama shape for the requested
// parameter count (ChooseSynthShape) and streams random weights to disk tensor by tensor.
//
// Shape rule (ChooseSynthShape), with V = n_vocab, E = n_embd, L = n_layer, F = n_ff:
//   parameters = 2·V·E + E                     (token_embd, output, output_norm)
//              + L·(4·E² + 3·E·F + 2·E)        (q, k, v, o; gate, up, down; two norms)
//   1. E is the largest value of the ladder 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536,
//      2048, 3072, 4096, 6144, 8192 whose smallest model (L = Lmin(E), F = 4·E) has at most
//      the target count, where Lmin(E) = max(1, E / 256).
//   2. L = the layer count (F = 4·E) nearest the target, kept within [Lmin(E), max(16, 4·Lmin(E))].
//   3. F = 4·E if that total is within ±5% of the target; otherwise F is refitted (a multiple of
//      64, at least 64) so that the total lands on the target (small vocabularies, tiny models
//      whose width cannot grow, and counts beyond the top of the ladder).
//   n_head = max(1, E / 64) (head dim 64, or 32 for E = 32), n_head_kv = n_head, context 4096.
//   E and F are multiples of 32, so every 2-D weight can be Q8_0. With the 32,000-token llama-spm
//   vocab: 20M → E 256, 3 layers, F 1024 (19.5M); 800M → E 2048, 10 layers, F 8192 (802M, the
//   1.6 GB F16 reference model); the smallest model is E 32, 1 layer (2.06M, a 5 MB F16 file).
//   By construction the result is within ±5% of the target (checked for vocabs of 1k to 256k
//   tokens, from the minimum up to 20G parameters).
//
// Weights: norm weights are 1.0 (F32); every other weight is drawn from a bell-shaped
// distribution with mean 0 and standard deviation 0.02 (the sum of four 8-bit uniforms, scaled:
// 1021 levels within ±3.5 sd). Each chunk of 2^20 elements has its own splitmix64 generator
// seeded from (seed, tensor index, chunk index), so the file is byte-identical for a seed
// whatever the thread count. 1.6 GB (800M parameters, F16) takes about 3 s of CPU time.
//
// The file is written to out_path + ".tmp" and renamed over out_path when complete, so a failed
// or killed write never leaves a half-written file under out_path (it is not fsynced: that
// promise does not survive a power loss). Memory use is a few MiB per thread whatever the model
// size.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace resident {

struct SynthOptions {
  std::string out_path;          // .gguf to write (written to out_path + ".tmp" then renamed)
  uint64_t params = 20'000'000;  // target parameter count
  uint64_t seed = 42;
  // A name (ggml-vocab-<name>.gguf in vocab_dir) or a path to a .gguf (anything containing '/'
  // or ending in ".gguf" is taken as a path); "" = the vocab of a named template (below), else
  // llama-spm.
  std::string vocab;
  std::string vocab_dir;  // folder of ggml-vocab-*.gguf (llama.cpp's models/), with templates/
  enum class Type { kF16, kQ8_0 } type = Type::kF16;
  // "" = keep the vocab's own template, or add a default one suited to the vocab if it has none
  //      (ChatML if it has <|im_start|>, Llama 3 if it has <|start_header_id|>, else Llama 2
  //      "[INST] ... [/INST]" with an optional <<SYS>> system prompt);
  // "none" = the model gets no chat template (the vocab's own is removed too);
  // "llama2", "llama3", "chatml" = that built-in template;
  // a name of SynthNamedTemplates() ("qwen2.5", "deepseek-r1"...) = that real model's template,
  //   read from vocab_dir/templates (llama.cpp's models/templates);
  // text containing "{{" or "{%" = that Jinja template;
  // anything else = a path to a file whose text is the template.
  std::string chat_template;
  int threads = 0;  // 0 = hardware_concurrency
  // Metadata set after the keys above, replacing any of the same name: a u32, a f32 or a string
  // value. For tests that need hostile files (a NaN epsilon, a block_count the tensors do not
  // match, an unknown tokenizer); the tensors keep the chosen shape.
  std::vector<std::pair<std::string, std::variant<uint32_t, float, std::string>>> metadata;
  // The value of every norm weight (1.0). NaN gives a model whose every output is NaN, for the
  // tests of what the server does with one.
  float norm_weight = 1.0f;
  // Optional; called on the calling thread after each chunk written, done_bytes ending at
  // total_bytes (the file size).
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

struct SynthShape {
  uint32_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx_train;
  uint64_t n_params;  // exact parameter count of this shape
};

// Parameter count of a llama model of this shape (n_head_kv = n_head), as in the header comment.
uint64_t SynthParamCount(uint32_t n_vocab, uint32_t n_embd, uint32_t n_layer, uint32_t n_ff);

// Picks the llama shape whose parameter count is closest to `params` for a vocab of n_vocab
// tokens, by the rule above. Fails (kInvalidArgument) when params is below the smallest model
// for that vocab (the message says the minimum) or above 10T.
Result<SynthShape> ChooseSynthShape(uint64_t params, uint32_t n_vocab);

// Names of the vocabs in vocab_dir (ggml-vocab-<name>.gguf → "<name>"), sorted.
std::vector<std::string> ListSynthVocabs(const std::string& vocab_dir);

// Real models' chat templates by name, from llama.cpp's models/templates: "qwen2.5" (tools),
// "qwen3" (tools, thinking), "deepseek-r1" (thinking; the Qwen distill), "llama3.1", "llama3.2",
// "hermes3", "mistral-nemo" (tools), "gpt-oss" (tools, thinking), each with a vocabulary of its
// family (qwen2, llama-bpe, llama-spm; special tokens the vocabulary lacks are text).
struct SynthNamedTemplate {
  const char* name;
  const char* file;   // in models/templates
  const char* vocab;  // the vocab used when SynthOptions::vocab is ""
};
const std::vector<SynthNamedTemplate>& SynthNamedTemplates();
const SynthNamedTemplate* FindSynthNamedTemplate(const std::string& name);

// The default chat template WriteSyntheticModel adds for a vocab ("llama2", "llama3" or
// "chatml" for the built-in names; "" for an unknown name).
std::string SynthBuiltinChatTemplate(const std::string& name);

// Writes the model; returns the shape written. Errors: unknown vocab name (kNotFound, lists the
// available names), unreadable or non-vocab file (kNotFound / kInvalidArgument), params too
// small for the vocab (kInvalidArgument, says the minimum), unreadable chat template file
// (kNotFound), unwritable output (kInternal with the system's reason).
Result<SynthShape> WriteSyntheticModel(const SynthOptions& opts);

}  // namespace resident
