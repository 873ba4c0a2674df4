// SHA-256 of bytes and of files (OpenSSL's libcrypto), as lowercase hex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace resident::store {

// Incremental hasher. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  // 64 lowercase hex digits. Call once.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view bytes);

// Called while hashing a file: bytes done so far and the file's total size. Return false to stop.
using HashProgress = std::function<bool(uint64_t done, uint64_t total)>;

// Hashes a file. Errors: kNotFound when it cannot be opened, kInternal on a read error,
// kCancelled when `progress` returned false.
Result<std::string> Sha256File(const std::string& path, const HashProgress& progress = nullptr);

// True for exactly 64 lowercase hex digits.
bool IsSha256Hex(std::string_view hex);

}  // namespace resident::store
