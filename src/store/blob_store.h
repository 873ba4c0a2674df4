// BlobStore: the blobs/ folder of an Ollama-format store. Each blob is named after the SHA-256
// of its bytes: digest "sha256:<64 hex>" lives at blobs/sha256-<64 hex>.
//
// Every write goes to a temporary file in blobs/ (".tmp-*", never a digest name) and is renamed
// into place only once its digest has been checked, so a crash never leaves a partial file under
// a digest name. Digests are validated (exactly "sha256:" + 64 lowercase hex) before they are
// turned into a path, so no digest can name a file outside blobs/.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/sha256.h"

namespace resident::store {

// Errors: kInvalidArgument unless `digest` is "sha256:" (or "sha256-") followed by 64 hex digits.
// Returns the canonical "sha256:<hex>" (hex lowercased).
Result<std::string> CanonicalDigest(std::string_view digest);

struct ImportedBlob {
  std::string digest;  // "sha256:<hex>"
  uint64_t size = 0;
  enum class How { kExisting, kHardLink, kReflink, kCopy } how = How::kCopy;
};

const char* ImportHowName(ImportedBlob::How how);

// The passes of an import over the file's bytes: hashing it, then, only when neither a hard link
// nor a reflink can place it, copying it into the store (hashed again as it is written).
enum class ImportPass { kHashing, kCopying };
// Bytes done in this pass and the file's size. Return false to stop.
using ImportProgress = std::function<bool(ImportPass pass, uint64_t done, uint64_t total)>;

class BlobStore {
 public:
  // `root` is the store's root; blobs live in root/blobs. Nothing is created until a write.
  explicit BlobStore(std::string root);

  // Path of a blob. Errors: kInvalidArgument for a malformed digest (never a path outside blobs/).
  Result<std::string> PathFor(std::string_view digest) const;
  bool Has(std::string_view digest) const;

  // Writes bytes as a blob (no-op when it exists). Returns the digest. Errors: kInternal on I/O.
  Result<std::string> Put(std::string_view bytes);

  // Reads a whole (small) blob and checks its digest. Errors: kNotFound when missing,
  // kInvalidArgument on a malformed digest, kInternal "digest mismatch" when the bytes differ.
  Result<std::string> ReadVerified(std::string_view digest, uint64_t max_bytes = 64u << 20) const;

  // Imports a file as a blob: hashes it (progress as it goes, kHashing), then places it without a
  // second copy when possible: a hard link when on the same file system, else a reflink
  // (FICLONE), else a copy that is hashed again while written and checked (progress from 0
  // again, kCopying). Errors: kNotFound (no such file), kInternal (I/O, or the file changed
  // while it was imported), kCancelled (progress returned false).
  Result<ImportedBlob> ImportFile(const std::string& path, const ImportProgress& progress = nullptr);

  // Removes a blob. Missing blobs are fine. Errors: kInvalidArgument for a malformed digest.
  Status Remove(std::string_view digest);

  // Where a pull downloads a blob: blobs/sha256-<hex>-partial. It grows there (an interrupted
  // pull resumes from its length), and is moved to PathFor once its digest was checked. A prune
  // removes one only a week after its last write. Errors: kInvalidArgument for a malformed digest.
  Result<std::string> PartialPath(std::string_view digest) const;
  // Creates blobs/ when missing.
  Status Prepare() const { return EnsureDir(); }

  const std::string& dir() const { return dir_; }

 private:
  Status EnsureDir() const;
  std::string TempPath() const;

  std::string dir_;
};

}  // namespace resident::store
