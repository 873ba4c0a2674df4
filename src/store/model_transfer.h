// ModelTransfers: pull and push between resident's store and an Ollama-style registry
// (registry_client.h), with the progress lines Ollama streams.
//
// Pull: the manifest, then every blob it names that the store lacks, each downloaded to
// blobs/sha256-<hex>-partial (an interrupted download resumes from what the file holds, by a range
// request: after a broken connection within the pull, and at the next pull after a stopped one or
// a restart), hashed as it arrives and checked against its digest; the verified blobs are moved
// in and the manifest written last (ModelStore::Install), then the blobs no manifest names any
// more are pruned. A blob that fails its digest is deleted, and nothing of the pull stays in the
// store. Two pulls that need the same blob at the same time share one download: the second
// watches the first's progress. A download stops (keeping its partial file) once no pull that
// needs it is left, i.e. every client went away. A model that is loaded is not disturbed: its
// runner keeps the file it mapped; the next load uses the new one.
//
// Push: every blob of the model's manifest that the registry lacks (HEAD), uploaded whole, then
// the manifest.
//
// Progress (CreateEvent, as /api/pull and /api/push stream it): pull: "pulling manifest",
// "pulling <first 12 hex digits>" with digest/total/completed for each blob (config included),
// "verifying sha256 digest", "writing manifest", "success"; push: "retrieving manifest",
// "pushing <12 hex>" with digest/total/completed, "pushing manifest", "success". Byte progress
// comes at most every 100 ms per blob. A progress callback that returns false says its client
// is gone.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/model_store.h"
#include "store/registry_client.h"

namespace resident::store {

using TransferProgress = std::function<bool(const CreateEvent&)>;

class ModelTransfers {
 public:
  explicit ModelTransfers(ModelStore& store) : store_(store) {}

  // Errors (messages as Ollama's where it has one): kNotFound "pull model manifest: file does not
  // exist"; kUnavailable "pull model manifest: cannot reach <host>: <why>" (no network) or a
  // download that broke three times in a row; kInternal for an answer that is not a manifest, a
  // digest mismatch ("digest mismatch, file must be downloaded again: want sha256:..., got
  // sha256:..."), more bytes than the manifest says, a full disk (saying how much is needed and
  // free) or I/O; kFailedPrecondition (the registry wants a login); kInvalidArgument (bad name,
  // read-only store); kCancelled (every client of the download went away).
  Result<ModelEntry> Pull(std::string_view name, const RegistryOptions& options, const TransferProgress& progress);

  // Errors: kNotFound (no such model in resident's store), the registry's errors as Pull's,
  // kCancelled (the client went away).
  Status Push(std::string_view name, const RegistryOptions& options, const TransferProgress& progress);

 private:
  // One blob being downloaded, shared by the pulls that need it.
  struct Download {
    std::mutex mu;
    std::condition_variable cv;
    uint64_t completed = 0;
    int watchers = 1;  // pulls waiting for it, its owner included
    bool done = false;
    Status result;
  };
  // Gets one blob the store lacks into its partial file: downloads it (the first pull that needs
  // it) or watches the download another pull runs, reporting byte progress through `say`; stops
  // watching once `client_gone` is set.
  Status Obtain(RegistryClient& client, const Layer& layer, const std::function<void(const CreateEvent&)>& say,
                const bool& client_gone);
  // Downloads `layer` into its partial file and checks it (the owner's work); `tick` after every
  // chunk (the owner's progress lines).
  Status Fetch(RegistryClient& client, const Layer& layer, Download& shared, const std::function<void()>& tick);
  // True when no pull watches `shared` any more; then it leaves the map (the download stops).
  bool StopUnwatched(const std::string& digest, Download& shared);

  ModelStore& store_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Download>> downloads_;  // by digest, guarded by mu_
};

}  // namespace resident::store
