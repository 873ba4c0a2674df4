// The prompt cache folder (RESIDENT_PROMPT_CACHE): KV cache states of prompt prefixes that a runner
// saved before its model was unloaded, so that the next load of the same model with the same
// context settings restores them instead of evaluating those tokens again. No llama.cpp here: the
// engine has llama.cpp write an entry's payload (llama_state_seq_save_file) and read it back
// (llama_state_seq_load_file) through the open, checked file.
//
// Entries are files named <key checksum>-<tokens checksum>.kv, where the key is everything that
// decides whether a saved state fits a context (the model file's identity, the context settings
// that shape the KV cache, the llama.cpp build and CPU variant; see Engine). One file:
//
//   payload   llama.cpp's sequence state file, as llama_state_seq_save_file writes it
//   header    "RESPCKV\0"  u32 version  u64 payload bytes  u64 payload checksum (XXH64)
//             u32 key bytes, key  u32 canonical  u32 n tokens, tokens (int32)
//             u64 checksum of the header up to here
//   footer    u64 header bytes  "RESPCKV\0"
//
// The header follows the payload (llama.cpp reads its file from the start) and the footer says
// where it begins; it is the entry's header in every other way: read first, and nothing of the
// payload is given to llama.cpp before the whole file passed its checks. Files are written whole
// or not at all (a temporary file, fsync, rename, fsync of the folder, as core/atomic_file). An
// entry that is cut short, fails a checksum, or whose header names another key is removed, never
// used. The folder is held to a size: after each save the least recently used entries (of any
// model) go first, by modification time, which a restore renews.
//
// Several runners (and servers) may share a folder: saves and evictions take an flock on
// <dir>/.lock; readers take none (a file removed while open stays readable).
//
// Reading is streamed through a small buffer, never mapped or read whole: on the virtual machines
// this was measured on, mapping 125 MB of page cache took 120-190 ms and a fresh 125 MB buffer
// ~0.9 s to fault in, where reading it through 1 MiB took 30-40 ms.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace resident::runner {

inline constexpr uint32_t kPromptCacheVersion = 1;
inline constexpr uint64_t kPromptCacheDefaultMaxBytes = 2ull << 30;  // 2 GiB

// What a model file is, for the cache's key: "sha256:<hex>" for a blob of a model store (its name
// says its digest), else its absolute path; then its size and modification time, so that an edited
// or replaced file never finds the states of the old one. Errors: kNotFound when it cannot be read.
Result<std::string> ModelFileIdentity(const std::string& path);

// Creates the folder (and its parents) if missing; the folder itself readable by its owner only
// (its entries hold the prompts' tokens). Errors: kInternal saying why.
Status CreatePromptCacheDir(const std::string& dir);

// One saved state, as its header describes it.
struct PromptCacheEntry {
  std::string path;
  std::vector<int32_t> tokens;  // the tokens whose KV entries the state holds, from position 0
  size_t canonical = 0;         // the first `canonical` were decoded as a fresh context decodes them
  uint64_t payload_bytes = 0;
  uint64_t payload_checksum = 0;
  uint64_t file_bytes = 0;      // payload, header and footer
};

// An entry's file, open and checked (its size, header and payload checksum). llama.cpp reads its
// payload through path(), the open file itself (/proc/self/fd/N): what it reads is what was
// checked, whatever renames and removals happen in the folder meanwhile. Closed on destruction.
class VerifiedPromptEntry {
 public:
  VerifiedPromptEntry() = default;
  VerifiedPromptEntry(int fd, PromptCacheEntry entry) : fd_(fd), entry_(std::move(entry)) {}
  VerifiedPromptEntry(VerifiedPromptEntry&& other) noexcept;
  VerifiedPromptEntry& operator=(VerifiedPromptEntry&& other) noexcept;
  VerifiedPromptEntry(const VerifiedPromptEntry&) = delete;
  VerifiedPromptEntry& operator=(const VerifiedPromptEntry&) = delete;
  ~VerifiedPromptEntry();

  bool valid() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }
  const PromptCacheEntry& entry() const { return entry_; }

 private:
  int fd_ = -1;
  PromptCacheEntry entry_;
};

struct PromptCacheSaveResult {
  std::string path;
  uint64_t bytes = 0;        // the file's size
  uint64_t payload_bytes = 0;     // llama.cpp's state, as its header says
  uint64_t payload_checksum = 0;
  uint32_t evicted = 0;      // entries removed to keep the folder within its size
  uint64_t evicted_bytes = 0;
};

class PromptCacheFolder {
 public:
  // `key`: see above. `max_bytes` > 0.
  PromptCacheFolder(std::string dir, uint64_t max_bytes, std::string key);

  const std::string& dir() const { return dir_; }
  const std::string& key() const { return key_; }
  uint64_t max_bytes() const { return max_bytes_; }
  // The file an entry of these tokens has.
  std::string PathFor(const std::vector<int32_t>& tokens) const;

  // The entries of this key, most recently used first, from their headers (payloads unread). One
  // whose header cannot be read, is cut short, fails its checksum or names another key is removed;
  // `dropped` (when given) gets one line per removal saying why. A missing folder has no entries.
  std::vector<PromptCacheEntry> Scan(std::vector<std::string>* dropped) const;

  // Opens an entry and checks its size, its header (it must still be the entry scanned) and its
  // payload checksum, reading the file once. `progress` is called after every 8 MiB. Errors:
  // kNotFound when the file is gone or was replaced by another entry; kInvalidArgument, saying why,
  // when it is cut short or corrupt: the file is then removed; kInternal when it cannot be read.
  Result<VerifiedPromptEntry> Verify(const PromptCacheEntry& entry, const std::function<void()>& progress = nullptr) const;

  // Writes the entry for these tokens atomically, replacing one of the same tokens: `write_payload`
  // writes the payload to the temporary file it is given (llama_state_seq_save_file); the header
  // and footer are appended, the file synced and renamed into place. Then removes the least
  // recently used entries of the folder until it is within max_bytes (never the new one).
  // `progress` is called while the payload is checksummed. Errors: `write_payload`'s;
  // kResourceExhausted when the entry alone is larger than max_bytes (it is not kept); kInternal
  // when the folder or the file cannot be written. The temporary file never outlives an error.
  using PayloadWriter = std::function<Status(const std::string& path)>;
  Result<PromptCacheSaveResult> Save(const std::vector<int32_t>& tokens, size_t canonical,
                                     const PayloadWriter& write_payload,
                                     const std::function<void()>& progress = nullptr) const;

  // Removes an entry's file (no error when it is gone already).
  void Remove(const PromptCacheEntry& entry) const;
  // Marks an entry used now: eviction keeps it longer.
  void Touch(const PromptCacheEntry& entry) const;

 private:
  std::string dir_;
  uint64_t max_bytes_;
  std::string key_;
  std::string key_hash_;  // Hex64 of the key's checksum: the file names' prefix
};

// The file format, exposed for tests. The header and footer that follow a payload of
// `payload_bytes` bytes whose checksum is `payload_checksum`.
std::string EncodePromptCacheTrailer(std::string_view key, const std::vector<int32_t>& tokens, size_t canonical,
                                     uint64_t payload_bytes, uint64_t payload_checksum);
inline constexpr size_t kPromptCacheFooterBytes = 16;
// The header's size from a file's last kPromptCacheFooterBytes bytes; 0 when they are not the
// footer of an entry.
uint64_t PromptCacheHeaderBytes(std::string_view footer);
// Reads a header (without the footer). Errors: kInvalidArgument saying what is wrong (magic,
// version, sizes, checksum, another key).
Result<PromptCacheEntry> DecodePromptCacheHeader(std::string_view header, std::string_view key);

}  // namespace resident::runner
