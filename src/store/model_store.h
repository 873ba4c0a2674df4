// ModelStore: a model store in Ollama's own on-disk format (the layout of ~/.ollama/models),
// used both for resident's own store (RESIDENT_MODELS, writable) and to serve an existing
// Ollama store (read-only: nothing is ever written, renamed or pruned there).
//
//   <root>/manifests/<host>/<namespace>/<model>/<tag>   manifest JSON (Docker v2)
//   <root>/blobs/sha256-<64 hex>                        config, weights and text layers
//
// Consistency: blobs are written first (temp file + rename, digest checked), the manifest last
// (temp file + rename), so a reader sees either the old model or the complete new one, and an
// interrupted create leaves at most an unreferenced blob, which the next delete prunes.
// Thread safety: reads need no lock (they only follow renames); writes (Create, Copy, Delete,
// Prune) are serialized by mu_ in this process, and across processes (a server and
// `resident create --local`) by a StoreLock on <root>/.lock: shared for Create and Copy,
// exclusive for Delete and Prune, so a prune never removes a blob whose manifest is still being
// written. Read-only stores are never locked (nothing is written there).
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/blob_store.h"
#include "store/manifest.h"
#include "store/model_catalog.h"
#include "store/model_name.h"
#include "store/modelfile.h"

namespace resident::store {

// One step of a create, as /api/create streams it: {"status":..., "digest":..., "total":...,
// "completed":...}. total 0: no byte progress in this event.
struct CreateEvent {
  std::string status;
  std::string digest;
  uint64_t total = 0;
  uint64_t completed = 0;
};
using CreateProgress = std::function<void(const CreateEvent&)>;

class ModelStore final : public ModelCatalog {
 public:
  // `source` names the entries' origin in ModelEntry::source ("store" or "ollama").
  ModelStore(std::string root, bool read_only, std::string source);

  // Errors: kInvalidArgument (bad name), kNotFound (no manifest), kInternal naming the model
  // and the problem when its manifest is corrupt, a blob is missing, has the wrong size or
  // digest, or the weights are not a GGUF file.
  Result<ModelEntry> Find(std::string_view name) const override;
  // Every model whose manifest and blobs are sound; broken ones are skipped with a warning.
  std::vector<ModelEntry> List() const override;

  // Creates (or replaces) `name` from a parsed Modelfile. FROM is a .gguf file: an absolute
  // path, or a path relative to `base_dir` (a Modelfile's folder; "" for none) that exists
  // there; anything else is a model name looked up in `models` (any catalog: its weights are
  // linked in, its template/system/parameters/messages/license inherited and then overridden by
  // the Modelfile). A relative FROM is never looked up in the working folder. Errors:
  // kInvalidArgument (bad name, FROM not a regular file (CheckModelFile) or not a GGUF file, its
  // hyperparameters refused by CheckGgufHyperparameters (the message names the key), read-only
  // store, a malformed params layer in the FROM model, naming it), kNotFound (FROM not found),
  // kInternal (I/O).
  Result<ModelEntry> Create(std::string_view name, const Modelfile& modelfile, const std::string& base_dir,
                            const ModelCatalog& models, const CreateProgress& progress);

  // Copies a model of this store to a new name (the same blobs). Errors: kNotFound, kInvalidArgument.
  Status Copy(std::string_view from, std::string_view to);

  // Deletes a model and then every blob no manifest references any more. Returns the weights
  // files that were removed (for the caller to unload). Errors: kNotFound, kInvalidArgument.
  Result<std::vector<std::string>> Delete(std::string_view name);

  // Removes blobs that no manifest references and temp files older than a day. Does nothing
  // (and says so) when a manifest cannot be read, since its blobs cannot be known. Read-only
  // stores are never pruned. Returns the removed blob paths.
  Result<std::vector<std::string>> Prune();

  // Pull and push (model_transfer.h). The manifest of a model of this store, as its file holds it.
  // Errors: kInvalidArgument (bad name), kNotFound, kInternal (unreadable, or the model is broken).
  Result<std::string> ManifestBytes(std::string_view name) const;
  // Installs a pulled model (`manifest_bytes` as the registry sent them): under the shared store
  // lock, every blob it names that the store lacks is moved in from its checked download
  // (BlobStore::PartialPath), then the manifest is written and the model checked as Find checks
  // it; a model that fails the check is undone (the previous manifest back). Errors:
  // kInvalidArgument (read-only store, bad name, corrupt manifest), kNotFound (a blob neither in
  // the store nor downloaded: nothing written), kInternal (I/O, a broken model).
  Result<ModelEntry> Install(std::string_view name, const std::string& manifest_bytes);
  BlobStore& blobs() { return blobs_; }

  bool read_only() const { return read_only_; }
  const std::string& root() const { return root_; }

 private:
  // The manifest file of `name`, matched case-insensitively component by component.
  // kNotFound when there is none.
  Result<std::string> ManifestPath(const ModelName& name) const;
  Result<ModelEntry> LoadEntry(const ModelName& name, const std::string& manifest_path) const;
  Status WriteManifest(const ModelName& name, const std::string& bytes);
  // Writes the manifest, then checks the model as Find does; a model that fails the check is
  // undone (the previous manifest back, or none) and the error says "cannot <verb> ...".
  Result<ModelEntry> CommitManifest(const ModelName& name, const std::string& bytes, const std::string& verb);
  Status CheckWritable() const;
  // Prune's work; the caller holds mu_ and the exclusive StoreLock.
  Result<std::vector<std::string>> PruneLocked();

  const std::string root_;
  const bool read_only_;
  const std::string source_;
  BlobStore blobs_;
  std::mutex mu_;  // serializes Create, Copy, Delete and Prune in this process
};

// The root of resident's own store: $RESIDENT_MODELS, else <home>/.resident/models.
std::string StoreRootFromEnv(const std::string& home);

}  // namespace resident::store
