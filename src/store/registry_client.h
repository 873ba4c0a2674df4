// RegistryClient: the HTTP side of pull and push: Ollama's registry protocol, which is the Docker
// distribution API v2 (registry.ollama.ai, hf.co and the reference registry all speak it), over
// libcurl. One client talks about one model name (host/namespace/model:tag):
//
//   GET  /v2/<ns>/<model>/manifests/<tag>           the manifest (Accept: the v2 manifest type)
//   GET  /v2/<ns>/<model>/blobs/<digest>            a blob, from an offset (Range), may redirect
//   HEAD /v2/<ns>/<model>/blobs/<digest>            whether the registry has a blob
//   POST /v2/<ns>/<model>/blobs/uploads/            starts an upload: a Location to PUT to
//   PUT  <location>?digest=<digest>                 the whole blob in one request
//   PUT  /v2/<ns>/<model>/manifests/<tag>           the manifest, last
//
// HTTPS by default; `insecure` speaks plain HTTP (a registry on loopback or the local network).
// A 401 with a Bearer challenge is answered as registries expect (a token from the challenge's
// realm for its service and scope, anonymous), then the request is sent again; registries that
// want a login are refused with a message saying so. Redirects are followed (registries send blob
// downloads to a CDN) without the token. A transfer that moves nothing for a minute fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/model_name.h"

namespace resident::store {

struct RegistryOptions {
  bool insecure = false;  // plain HTTP
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds stall_timeout{60};  // no byte moved for this long: the transfer fails
};

// Receives a blob's bytes as they arrive, `at` their offset in the blob (the first call's is where
// the registry started: the offset asked for, or 0 when it sends the whole blob again). Return
// false to stop the transfer (kCancelled).
using BlobSink = std::function<bool(uint64_t at, const char* data, size_t n)>;
// Bytes sent so far of an upload. Return false to stop it (kCancelled).
using UploadProgress = std::function<bool(uint64_t sent)>;

class RegistryClient {
 public:
  RegistryClient(ModelName name, RegistryOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // "https://host" or "http://host" (with the name's port).
  std::string BaseUrl() const;

  // The manifest's bytes (at most 4 MiB). Errors: kNotFound "file does not exist" (the registry
  // knows no such model or tag), kUnavailable (the registry cannot be reached or the connection
  // broke, with curl's reason), kFailedPrecondition (it wants a login or refuses access),
  // kInternal (any other answer, with the registry's own error message when it gave one).
  Result<std::string> GetManifest();

  // Streams a blob from byte `offset` to `sink` (a registry that ignores the range sends it from 0:
  // see BlobSink). Errors as GetManifest, kNotFound for a blob the registry does not have;
  // kCancelled when `sink` returned false.
  Status GetBlob(std::string_view digest, uint64_t offset, const BlobSink& sink);

  // Whether the registry has the blob (HEAD). Errors as GetManifest, never kNotFound.
  Result<bool> HasBlob(std::string_view digest);

  // Uploads a file as the blob `digest` (`size` bytes): an upload session, then one PUT with its
  // bytes. Errors as GetManifest; kCancelled when `progress` returned false.
  Status PutBlob(std::string_view digest, const std::string& path, uint64_t size, const UploadProgress& progress);

  // Uploads the manifest (last, once the registry has every blob it names).
  Status PutManifest(const std::string& bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace resident::store
