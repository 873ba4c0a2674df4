// ModelCatalog: turns a model name into a weights file and what a Modelfile adds to it.
// Implementations: a plain folder of .gguf files (GgufFolderCatalog, here), an Ollama-format
// store (ModelStore, model_store.h), several of them in order (CompositeCatalog).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace resident::store {

// How resident uses a model's TEMPLATE (ModelEntry::template_text).
enum class TemplateKind {
  kNone,         // no TEMPLATE: the GGUF's own chat template (tokenizer.chat_template)
  // Ollama's pass-through Go template "{{ .Prompt }}" (spaces and trim markers allowed):
  // /api/generate sends the prompt as it is (raw); /api/chat uses the GGUF's own chat template.
  kPassThrough,
  kGo,     // any other Ollama Go template, which resident does not run: the GGUF's own is used
  kJinja,  // a Jinja chat template (the kind GGUF files carry): used instead of the GGUF's own
};

// A template with a Jinja statement ({% ... %}) is Jinja; else one with a Go action
// ({{ .Field }}, {{ $var }}, {{ if/range/with/end/else/template/block/define }}) is Go (or
// pass-through); any other text is taken as Jinja. "" is kNone.
TemplateKind ClassifyTemplate(std::string_view text);

struct ModelEntry {
  std::string name;        // display name, "demo:latest"
  std::string path;        // the GGUF weights file
  uint64_t size = 0;       // bytes of the model (all its layers)
  WallTime modified{};
  std::string digest;      // hex, may be empty when not known cheaply

  // What a Modelfile (or an Ollama manifest's layers) adds to the weights. Empty for a bare GGUF.
  std::string system;                 // SYSTEM: the default system prompt
  std::string template_text;          // TEMPLATE as written (Ollama's Go syntax, or Jinja)
  std::string license;                // LICENSE (all of them, joined by blank lines)
  // PARAMETER lines in order, already validated: ("temperature", "0.7"), ("stop", "</s>")...
  // Request options override them.
  std::vector<std::pair<std::string, std::string>> parameters;
  // MESSAGE lines in order: (role, content), prepended to chat conversations.
  std::vector<std::pair<std::string, std::string>> messages;
  // Details as /api/tags and /api/show report them.
  std::string family;                 // general.architecture when known
  std::string parameter_size;         // "8.0B"
  std::string quantization_level;     // "Q4_K_M"
  bool read_only = false;             // from an Ollama store served read-only, or a folder
  // What resident does with TEMPLATE; /api/show says it in `template_note`.
  TemplateKind template_kind = TemplateKind::kNone;
  std::string source;                 // "store", "ollama" or "folder": where the entry comes from
};

class ModelCatalog {
 public:
  virtual ~ModelCatalog() = default;
  // Errors: kInvalidArgument for a malformed name, kNotFound when no model has it.
  virtual Result<ModelEntry> Find(std::string_view name) const = 0;
  virtual std::vector<ModelEntry> List() const = 0;
};

// Normalizes "Demo" to "demo:latest" (the display name of store/model_name.h's ModelName).
// Errors: kInvalidArgument for a name ParseModelName rejects.
Result<std::string> NormalizeModelName(std::string_view name);

// The "not found" error every catalog returns, in Ollama's words.
Status ModelNotFound(std::string_view name);

// A folder of .gguf files, each a model named after its file ("demo.gguf" is "demo:latest";
// "llama-3b.q4.gguf" is "llama-3b.q4:latest"), as llama-server's router does. Only regular files
// (or links to them) directly in the folder count; files whose stem is not a valid model name are
// skipped. Read-only: details come from each file's GGUF header.
class GgufFolderCatalog final : public ModelCatalog {
 public:
  explicit GgufFolderCatalog(std::string dir) : dir_(std::move(dir)) {}
  Result<ModelEntry> Find(std::string_view name) const override;
  std::vector<ModelEntry> List() const override;

 private:
  std::string dir_;
};

}  // namespace resident::store
