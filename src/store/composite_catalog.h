// CompositeCatalog: several catalogs searched in order (resident's store, then an Ollama store
// served read-only, then a folder of .gguf files). The first that knows a name answers.
#pragma once

#include <vector>

#include "store/model_catalog.h"

namespace resident::store {

class CompositeCatalog final : public ModelCatalog {
 public:
  // The catalogs are not owned and must outlive this one.
  explicit CompositeCatalog(std::vector<const ModelCatalog*> catalogs) : catalogs_(std::move(catalogs)) {}
  // A catalog's error other than kNotFound (a corrupt manifest, say) is returned as is, so the
  // user sees what is wrong with the model rather than "not found".
  Result<ModelEntry> Find(std::string_view name) const override;
  // Merged and sorted by name; a name listed by an earlier catalog hides later ones.
  std::vector<ModelEntry> List() const override;

 private:
  std::vector<const ModelCatalog*> catalogs_;
};

}  // namespace resident::store
