#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "cli/config.h"
#include "core/bytes.h"
#include "store/gguf_synth.h"

namespace resident::cli {
namespace {

struct SynthArgs {
  std::string out;
  std::string params = "20M";
  uint64_t seed = 42;
  std::string vocab;
  std::string type = "f16";
  std::string chat_template;
};

int Synth(const SynthArgs& args) {
  auto params = ParseCount(args.params);
  if (!params.ok()) return Fail(params.status());
  SynthOptions o;
  o.out_path = args.out;
  o.params = *params;
  o.seed = args.seed;
  o.vocab = args.vocab;
  o.vocab_dir = EnvFirst({"RESIDENT_VOCAB_DIR"}).value_or(RESIDENT_VOCAB_DIR);
  o.chat_template = args.chat_template;
  if (args.type == "f16") o.type = SynthOptions::Type::kF16;
  else if (args.type == "q8_0") o.type = SynthOptions::Type::kQ8_0;
  else return Fail(Status::InvalidArgument("--type must be f16 or q8_0"));
  bool tty = isatty(STDERR_FILENO);
  o.progress = [&](uint64_t done, uint64_t total) {
    if (tty) std::fprintf(stderr, "\rwriting %s / %s", FormatBytes(done).c_str(), FormatBytes(total).c_str());
  };
  auto shape = WriteSyntheticModel(o);
  if (tty) std::fputc('\n', stderr);
  if (!shape.ok()) return Fail(shape.status());
  std::printf("wrote %s: %s parameters (n_embd %u, %u layers, n_ff %u, vocab %u), %s\n", args.out.c_str(),
              FormatCount(shape->n_params).c_str(),
              shape->n_embd, shape->n_layer, shape->n_ff, shape->n_vocab,
              FormatBytes(std::filesystem::file_size(args.out)).c_str());
  return 0;
}

}  // namespace

void AddSynthCommand(CLI::App& app, CommandAction& chosen) {
  auto args = std::make_shared<SynthArgs>();
  auto* synth = app.add_subcommand("synth", "Write a random-weight llama GGUF on a real tokenizer");
  synth->add_option("out", args->out, "Output .gguf path")->required();
  synth->add_option("--params", args->params, "Parameter count, e.g. 20M, 800M, 1G")->capture_default_str();
  synth->add_option("--seed", args->seed, "Random seed (same seed, same file)")->capture_default_str();
  synth->add_option("--vocab", args->vocab,
                    "Tokenizer: llama-spm, llama-bpe, qwen2, phi-3... or a path (default: a named template's, else "
                    "llama-spm)");
  synth->add_option("--type", args->type, "Weight type: f16 or q8_0")->capture_default_str();
  synth->add_option("--chat-template", args->chat_template,
                    "llama2, llama3, chatml, none; a real model's from llama.cpp's models/templates: qwen2.5, qwen3, "
                    "deepseek-r1, llama3.1, llama3.2, hermes3, mistral-nemo, gpt-oss; a Jinja template or a file "
                    "(default: the vocab's own)");
  synth->callback([&chosen, args] { chosen = [args] { return Synth(*args); }; });
}

}  // namespace resident::cli
