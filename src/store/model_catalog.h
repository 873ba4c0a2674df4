// ModelCatalog: turns a model name into a weights file. Implementations: a plain folder of
// .gguf files (GgufFolderCatalog); the Ollama-format store comes with its own issue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace resident::store {

struct ModelEntry {
  std::string name;        // display name, "demo:latest"
  std::string path;        // the GGUF weights file
  uint64_t size = 0;       // bytes of the model (all its layers)
  WallTime modified{};
  std::string digest;      // hex, may be empty when not known cheaply

  // What a Modelfile (or an Ollama manifest's layers) adds to the weights. Empty for a bare GGUF.
  std::string system;                 // SYSTEM: the default system prompt
  std::string template_text;          // TEMPLATE as written (Ollama's Go template syntax)
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
};

class ModelCatalog {
 public:
  virtual ~ModelCatalog() = default;
  // Errors: kInvalidArgument for a malformed name, kNotFound when no model has it.
  virtual Result<ModelEntry> Find(std::string_view name) const = 0;
  virtual std::vector<ModelEntry> List() const = 0;
};

// Normalizes "Demo" to "demo:latest"; rejects names that could reach outside a folder
// (slashes, "..", control characters, NUL) or are empty or longer than 256 bytes.
Result<std::string> NormalizeModelName(std::string_view name);

// A folder of .gguf files, each a model named after its file ("demo.gguf" is "demo:latest";
// "llama-3b.q4.gguf" is "llama-3b.q4:latest"). Only regular files directly in the folder count.
class GgufFolderCatalog final : public ModelCatalog {
 public:
  explicit GgufFolderCatalog(std::string dir) : dir_(std::move(dir)) {}
  Result<ModelEntry> Find(std::string_view name) const override;
  std::vector<ModelEntry> List() const override;

 private:
  std::string dir_;
};

}  // namespace resident::store
