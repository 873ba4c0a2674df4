#include "store/composite_catalog.h"

#include <algorithm>
#include <set>

namespace resident::store {

Result<ModelEntry> CompositeCatalog::Find(std::string_view name) const {
  auto normalized = NormalizeModelName(name);
  if (!normalized.ok()) return normalized.status();
  for (const ModelCatalog* c : catalogs_) {
    auto r = c->Find(name);
    if (r.ok() || r.status().code() != StatusCode::kNotFound) return r;
  }
  return ModelNotFound(name);
}

std::vector<ModelEntry> CompositeCatalog::List() const {
  std::vector<ModelEntry> out;
  std::set<std::string> seen;
  for (const ModelCatalog* c : catalogs_) {
    for (ModelEntry& e : c->List()) {
      if (seen.insert(e.name).second) out.push_back(std::move(e));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace resident::store
