// llama_floor: the in-process cold-start floor.
//
// What the fastest possible cold start costs with this llama.cpp build: in one process, for each
// run, load the model (mmap), create a context, tokenize the prompt, decode it once and sample
// the first token greedily, then free everything. A model server's cold start (request in,
// first token out, model not loaded) can be no faster unless it avoids part of this work.
//
//   llama_floor --model PATH [--threads N] [--ctx 2048] [--batch 512] [--runs 5] [--prompt "hi"]
//   llama_floor --model PATH [...] --stdin
//
// Output (stdout): one JSON object per run, then one summary object whose "median_total_s" is the
// median of the runs' "total_s". Times are seconds (steady_clock). llama.cpp's log is dropped
// below warnings.
//
// With --stdin the process first prints {"ready":true,...} once its backends are loaded, then
// does one run per line read from stdin (printing its JSON object), and exits at end of input
// without a summary: bench/cold_start drives it so that its runs take turns with the servers'.

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

namespace {

struct Options {
  std::string model;
  int threads = 0;  // 0: physical cores
  int ctx = 2048;
  int batch = 512;
  int runs = 5;
  std::string prompt = "hi";
  bool from_stdin = false;  // one run per line of stdin
};

struct RunTimes {
  double load_s = 0;
  double context_s = 0;
  double tokenize_s = 0;
  double decode_s = 0;
  double sample_s = 0;
  double free_s = 0;
  [[nodiscard]] double total() const { return load_s + context_s + tokenize_s + decode_s + sample_s; }
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// llama.cpp's log, warnings and errors only. GGML_LOG_LEVEL_CONT continues the previous message
// and shares its fate.
void quiet_log(ggml_log_level level, const char* text, void* /*user_data*/) {
  static bool last_shown = false;
  if (level != GGML_LOG_LEVEL_CONT) last_shown = level >= GGML_LOG_LEVEL_WARN;
  if (last_shown) std::fputs(text, stderr);
}

// Physical cores: distinct (physical_package_id, core_id) pairs of the online CPUs.
int physical_cores() {
  namespace fs = std::filesystem;
  std::set<std::pair<std::string, std::string>> cores;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/devices/system/cpu", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 4 || name.compare(0, 3, "cpu") != 0 ||
        name.find_first_not_of("0123456789", 3) != std::string::npos) {
      continue;
    }
    auto read = [&](const char* file) {
      std::ifstream in(entry.path() / "topology" / file);
      std::string value;
      std::getline(in, value);
      return value;
    };
    std::string core = read("core_id");
    if (core.empty()) continue;  // offline CPUs have no topology
    cores.emplace(read("physical_package_id"), core);
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// The folder of the loaded libllama: the prebuilt libraries link no backend in, and the CPU
// backends lie beside libllama.
std::string llama_lib_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&llama_backend_init), &info) == 0 || info.dli_fname == nullptr) {
    return {};
  }
  return std::filesystem::path(info.dli_fname).parent_path().string();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

[[noreturn]] void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: llama_floor --model PATH [--threads N] [--ctx 2048] [--batch 512] [--runs 5] "
               "[--prompt \"hi\"] [--stdin]\n"
               "  --threads defaults to the number of physical cores\n"
               "  --stdin: one run per line read from stdin (after printing a ready line)\n");
  std::exit(code);
}

int parse_int(const char* flag, const char* value, int min) {
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || v < min || v > 1'000'000) {
    std::fprintf(stderr, "llama_floor: %s wants an integer >= %d, got '%s'\n", flag, min, value);
    std::exit(2);
  }
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage(0);
    if (a == "--stdin") {
      o.from_stdin = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "llama_floor: %s needs a value\n", argv[i]);
      usage(2);
    }
    const char* v = argv[++i];
    if (a == "--model" || a == "-m") {
      o.model = v;
    } else if (a == "--threads" || a == "-t") {
      o.threads = parse_int("--threads", v, 1);
    } else if (a == "--ctx" || a == "-c") {
      o.ctx = parse_int("--ctx", v, 16);
    } else if (a == "--batch" || a == "-b") {
      o.batch = parse_int("--batch", v, 1);
    } else if (a == "--runs" || a == "-r") {
      o.runs = parse_int("--runs", v, 1);
    } else if (a == "--prompt" || a == "-p") {
      o.prompt = v;
    } else {
      std::fprintf(stderr, "llama_floor: unknown option %s\n", argv[i - 1]);
      usage(2);
    }
  }
  if (o.model.empty()) {
    std::fprintf(stderr, "llama_floor: --model is required\n");
    usage(2);
  }
  if (o.threads == 0) o.threads = physical_cores();
  return o;
}

// One cold start. Returns false (after printing why) on failure.
bool run_once(const Options& o, RunTimes& t, int& n_prompt, llama_token& first) {
  Clock::time_point t0 = Clock::now();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(o.model.c_str(), mp);
  t.load_s = seconds_since(t0);
  if (model == nullptr) {
    std::fprintf(stderr, "llama_floor: cannot load %s\n", o.model.c_str());
    return false;
  }

  t0 = Clock::now();
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(o.ctx);
  cp.n_batch = static_cast<uint32_t>(o.batch);
  cp.n_ubatch = static_cast<uint32_t>(o.batch);
  cp.n_threads = o.threads;
  cp.n_threads_batch = o.threads;
  llama_context* ctx = llama_init_from_model(model, cp);
  t.context_s = seconds_since(t0);
  if (ctx == nullptr) {
    std::fprintf(stderr, "llama_floor: cannot create a context\n");
    llama_model_free(model);
    return false;
  }

  bool ok = true;
  t0 = Clock::now();
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const auto len = static_cast<int32_t>(o.prompt.size());
  std::vector<llama_token> tokens(static_cast<size_t>(len) + 8);
  int32_t n = llama_tokenize(vocab, o.prompt.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()),
                             /*add_special=*/true, /*parse_special=*/false);
  if (n < 0 && n != INT32_MIN) {
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, o.prompt.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()), true, false);
  }
  t.tokenize_s = seconds_since(t0);
  if (n <= 0) {
    std::fprintf(stderr, "llama_floor: the prompt tokenizes to nothing (%d)\n", n);
    ok = false;
  } else if (n > o.batch || n > o.ctx) {
    std::fprintf(stderr, "llama_floor: the prompt has %d tokens, more than --batch or --ctx\n", n);
    ok = false;
  }
  n_prompt = n;

  if (ok) {
    t0 = Clock::now();
    const int rc = llama_decode(ctx, llama_batch_get_one(tokens.data(), n));
    t.decode_s = seconds_since(t0);
    if (rc != 0) {
      std::fprintf(stderr, "llama_floor: llama_decode returned %d\n", rc);
      ok = false;
    }
  }

  if (ok) {
    t0 = Clock::now();
    llama_sampler* smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    first = llama_sampler_sample(smpl, ctx, -1);
    t.sample_s = seconds_since(t0);
    llama_sampler_free(smpl);
  }

  t0 = Clock::now();
  llama_free(ctx);
  llama_model_free(model);
  t.free_s = seconds_since(t0);
  return ok;
}

// One run, printed as one JSON line. Returns false (after printing why) on failure.
bool run_and_print(const Options& o, int run, RunTimes& t) {
  t = RunTimes{};
  int n_prompt = 0;
  llama_token first = -1;
  if (!run_once(o, t, n_prompt, first)) return false;
  std::printf(
      "{\"run\":%d,\"load_s\":%.6f,\"context_s\":%.6f,\"tokenize_s\":%.6f,\"decode_s\":%.6f,"
      "\"sample_s\":%.6f,\"total_s\":%.6f,\"free_s\":%.6f,\"n_prompt_tokens\":%d,\"first_token\":%d}\n",
      run, t.load_s, t.context_s, t.tokenize_s, t.decode_s, t.sample_s, t.total(), t.free_s, n_prompt,
      static_cast<int>(first));
  std::fflush(stdout);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!std::filesystem::exists(o.model)) {
    std::fprintf(stderr, "llama_floor: no such file: %s\n", o.model.c_str());
    return 1;
  }

  llama_log_set(quiet_log, nullptr);
  // Process setup, done once (a server does it once at start too): not part of any run.
  const Clock::time_point t0 = Clock::now();
  const std::string lib_dir = llama_lib_dir();
  if (!lib_dir.empty()) ggml_backend_load_all_from_path(lib_dir.c_str());
  if (ggml_backend_reg_count() == 0) ggml_backend_load_all();
  llama_backend_init();
  const double setup_s = seconds_since(t0);
  if (ggml_backend_dev_count() == 0) {
    std::fprintf(stderr, "llama_floor: no ggml backend could be loaded (looked in '%s')\n", lib_dir.c_str());
    return 1;
  }

  if (o.from_stdin) {
    std::printf("{\"ready\":true,\"setup_s\":%.6f}\n", setup_s);
    std::fflush(stdout);
    std::string line;
    RunTimes t;
    for (int i = 1; std::getline(std::cin, line); ++i) {
      if (!run_and_print(o, i, t)) {
        llama_backend_free();
        return 1;
      }
    }
    llama_backend_free();
    return 0;
  }

  std::vector<double> totals, loads, contexts, decodes;
  for (int i = 0; i < o.runs; ++i) {
    RunTimes t;
    if (!run_and_print(o, i + 1, t)) {
      llama_backend_free();
      return 1;
    }
    totals.push_back(t.total());
    loads.push_back(t.load_s);
    contexts.push_back(t.context_s);
    decodes.push_back(t.decode_s);
  }

  std::printf(
      "{\"summary\":true,\"model\":%s,\"threads\":%d,\"ctx\":%d,\"batch\":%d,\"runs\":%d,\"prompt\":%s,"
      "\"setup_s\":%.6f,\"median_load_s\":%.6f,\"median_context_s\":%.6f,\"median_decode_s\":%.6f,"
      "\"min_total_s\":%.6f,\"max_total_s\":%.6f,\"median_total_s\":%.6f}\n",
      json_string(o.model).c_str(), o.threads, o.ctx, o.batch, o.runs, json_string(o.prompt).c_str(), setup_s,
      median(loads), median(contexts), median(decodes), *std::min_element(totals.begin(), totals.end()),
      *std::max_element(totals.begin(), totals.end()), median(totals));
  llama_backend_free();
  return 0;
}
