// Model names as Ollama writes them: [host/][namespace/]model[:tag].
//
// Defaults: host "registry.ollama.ai", namespace "library", tag "latest". Names compare
// case-insensitively: Parse lowercases every part. Each part is checked against a strict
// character set before it is used as a path component, so a name can never reach outside the
// store's manifests folder ("..", "/", "\", NUL, "%", control characters, over-long parts).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace resident::store {

inline constexpr std::string_view kDefaultHost = "registry.ollama.ai";
inline constexpr std::string_view kDefaultNamespace = "library";
inline constexpr std::string_view kDefaultTag = "latest";

struct ModelName {
  std::string host = std::string(kDefaultHost);
  std::string ns = std::string(kDefaultNamespace);
  std::string model;
  std::string tag = std::string(kDefaultTag);

  // "llama3.2:latest", "myhost/ns/m:tag", "ns/m:tag": the default host and namespace dropped.
  std::string Display() const;
  // "host/ns/model/tag", relative to a store's manifests/ folder.
  std::string ManifestRelPath() const;
  bool operator==(const ModelName&) const = default;
};

// Errors: kInvalidArgument ("model is required" for an empty name; otherwise
// `invalid model name "X": ` and the rule it breaks, e.g. for ".hidden": "the model part must
// start with a letter, a digit or '_', not '.'").
// Parts: host [a-z0-9][a-z0-9._-]* with an optional :port; namespace and model
// [a-z0-9_][a-z0-9._-]* (no ".."); tag [a-z0-9_][a-z0-9._-]*; each at most 80 characters
// (host 255), the whole name at most 350, as typed and as Display() shows it (with its tag).
Result<ModelName> ParseModelName(std::string_view name);

}  // namespace resident::store
