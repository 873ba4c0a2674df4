// Ollama manifests and config blobs, read from a store (possibly an Ollama store served
// read-only). A manifest that parses must serialize to one that parses to the same layers.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "store/manifest.h"

using namespace resident;

namespace {

bool SameLayer(const store::Layer& a, const store::Layer& b) {
  return a.media_type == b.media_type && a.digest == b.digest && a.size == b.size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (Result<store::Manifest> m = store::ParseManifest(text); m.ok()) {
    const std::string json = store::SerializeManifest(*m);
    Result<store::Manifest> again = store::ParseManifest(json);
    FUZZ_CHECK(again.ok(), "a serialized manifest does not parse: %s", again.status().message().c_str());
    FUZZ_CHECK(SameLayer(again->config, m->config) && again->layers.size() == m->layers.size(),
               "round trip changed the manifest");
    for (size_t i = 0; i < m->layers.size(); ++i) {
      FUZZ_CHECK(SameLayer(again->layers[i], m->layers[i]), "round trip changed layer %zu", i);
    }
    (void)m->TotalSize();
  }
  (void)store::ParseConfig(text);
  return 0;
}
