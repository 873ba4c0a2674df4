// Manifest: Ollama's image manifest (Docker distribution manifest v2) — a config blob and the
// layers of a model, each a digest, a size and a media type, in the JSON Ollama writes (layer
// media types application/vnd.ollama.image.<kind>).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace resident::store {

inline constexpr std::string_view kManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kConfigMediaType = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kLayerModel = "application/vnd.ollama.image.model";
inline constexpr std::string_view kLayerProjector = "application/vnd.ollama.image.projector";
inline constexpr std::string_view kLayerAdapter = "application/vnd.ollama.image.adapter";
inline constexpr std::string_view kLayerTemplate = "application/vnd.ollama.image.template";
inline constexpr std::string_view kLayerSystem = "application/vnd.ollama.image.system";
inline constexpr std::string_view kLayerParams = "application/vnd.ollama.image.params";
inline constexpr std::string_view kLayerMessages = "application/vnd.ollama.image.messages";
inline constexpr std::string_view kLayerLicense = "application/vnd.ollama.image.license";

struct Layer {
  std::string media_type;
  std::string digest;  // "sha256:<hex>", validated by ParseManifest
  uint64_t size = 0;
};

struct Manifest {
  Layer config;
  std::vector<Layer> layers;

  // The first layer of that media type, or nullptr.
  const Layer* Find(std::string_view media_type) const;
  // Sum of the config and layer sizes.
  uint64_t TotalSize() const;
};

// Errors: kInvalidArgument "corrupt manifest: ..." for bad JSON, a missing field, or a digest
// that is not sha256:<64 hex>.
Result<Manifest> ParseManifest(std::string_view json_text);

// The JSON bytes of a manifest as Ollama writes them, keys in its order:
// {"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
//  "config":{"mediaType":..,"digest":..,"size":N},"layers":[{"mediaType":..,"digest":..,"size":N}]}.
std::string SerializeManifest(const Manifest& manifest);

// The config blob, keys in Ollama's order: {"model_format":"gguf","model_family":..,
// "model_families":[..],"model_type":"20M","file_type":"F16","architecture":"amd64","os":"linux",
// "rootfs":{"type":"layers","diff_ids":[..]}}. "architecture" is this machine's, in Go's
// GOARCH words (ConfigArchitecture: "amd64", "arm64"...).
struct ModelConfig {
  std::string model_format = "gguf";
  std::string model_family;
  std::vector<std::string> model_families;
  std::string model_type;  // parameter size, "8.0B"
  std::string file_type;   // "Q4_K_M"
};

std::string SerializeConfig(const ModelConfig& config, const std::vector<std::string>& layer_digests);
std::string ConfigArchitecture();
// Errors: kInvalidArgument "corrupt config: ..." when not a JSON object. Missing fields are empty.
Result<ModelConfig> ParseConfig(std::string_view json_text);

}  // namespace resident::store
