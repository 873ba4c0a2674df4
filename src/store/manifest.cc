#include "store/manifest.h"

#include <nlohmann/json.hpp>

#include "store/blob_store.h"

namespace resident::store {
namespace {

using nlohmann::json;

Result<Layer> ParseLayer(const json& j, const char* what) {
  if (!j.is_object()) return Status::InvalidArgument(std::string("corrupt manifest: ") + what + " is not an object");
  Layer l;
  if (!j.contains("digest") || !j["digest"].is_string()) {
    return Status::InvalidArgument(std::string("corrupt manifest: ") + what + " has no digest");
  }
  auto d = CanonicalDigest(j["digest"].get<std::string>());
  if (!d.ok()) return Status::InvalidArgument("corrupt manifest: " + d.status().message());
  l.digest = *d;
  if (j.contains("mediaType") && j["mediaType"].is_string()) l.media_type = j["mediaType"].get<std::string>();
  if (j.contains("size") && j["size"].is_number_unsigned()) l.size = j["size"].get<uint64_t>();
  else if (j.contains("size") && j["size"].is_number_integer() && j["size"].get<int64_t>() >= 0)
    l.size = static_cast<uint64_t>(j["size"].get<int64_t>());
  else return Status::InvalidArgument(std::string("corrupt manifest: ") + what + " has no valid size");
  return l;
}

// Written with ordered_json: keys in the order Ollama's Go structs write them, so that the bytes
// (and so the model's ID, their SHA-256) are the ones Ollama would write.
using ordered_json = nlohmann::ordered_json;

ordered_json LayerJson(const Layer& l) {
  return ordered_json{{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.size}};
}

// GOARCH of the machine, as Ollama's config blob names it.
constexpr const char* kArchitecture =
#if defined(__x86_64__)
    "amd64";
#elif defined(__aarch64__)
    "arm64";
#elif defined(__i386__)
    "386";
#elif defined(__arm__)
    "arm";
#elif defined(__riscv) && __riscv_xlen == 64
    "riscv64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
    "ppc64le";
#elif defined(__s390x__)
    "s390x";
#else
    "unknown";
#endif

}  // namespace

const Layer* Manifest::Find(std::string_view media_type) const {
  for (const Layer& l : layers) {
    if (l.media_type == media_type) return &l;
  }
  return nullptr;
}

uint64_t Manifest::TotalSize() const {
  uint64_t n = config.size;
  for (const Layer& l : layers) n += l.size;
  return n;
}

Result<Manifest> ParseManifest(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("corrupt manifest: not a JSON object");
  if (!j.contains("schemaVersion") || j["schemaVersion"] != 2) {
    return Status::InvalidArgument("corrupt manifest: schemaVersion is not 2");
  }
  Manifest m;
  if (!j.contains("config")) return Status::InvalidArgument("corrupt manifest: no config");
  auto config = ParseLayer(j["config"], "config");
  if (!config.ok()) return config.status();
  m.config = *config;
  if (!j.contains("layers") || !j["layers"].is_array()) return Status::InvalidArgument("corrupt manifest: no layers");
  for (const json& lj : j["layers"]) {
    auto l = ParseLayer(lj, "a layer");
    if (!l.ok()) return l.status();
    m.layers.push_back(*l);
  }
  return m;
}

std::string SerializeManifest(const Manifest& m) {
  ordered_json layers = ordered_json::array();
  for (const Layer& l : m.layers) layers.push_back(LayerJson(l));
  ordered_json j{{"schemaVersion", 2},
                 {"mediaType", kManifestMediaType},
                 {"config", LayerJson(m.config)},
                 {"layers", layers}};
  return j.dump();
}

std::string ConfigArchitecture() { return kArchitecture; }

std::string SerializeConfig(const ModelConfig& c, const std::vector<std::string>& layer_digests) {
  ordered_json j{{"model_format", c.model_format},
                 {"model_family", c.model_family},
                 {"model_families", c.model_families},
                 {"model_type", c.model_type},
                 {"file_type", c.file_type},
                 {"architecture", kArchitecture},
                 {"os", "linux"},
                 {"rootfs", ordered_json{{"type", "layers"}, {"diff_ids", layer_digests}}}};
  return j.dump();
}

Result<ModelConfig> ParseConfig(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("corrupt config: not a JSON object");
  ModelConfig c;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  c.model_format = str("model_format");
  c.model_family = str("model_family");
  c.model_type = str("model_type");
  c.file_type = str("file_type");
  if (j.contains("model_families") && j["model_families"].is_array()) {
    for (const json& f : j["model_families"]) {
      if (f.is_string()) c.model_families.push_back(f.get<std::string>());
    }
  }
  return c;
}

}  // namespace resident::store
