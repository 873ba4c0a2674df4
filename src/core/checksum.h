// A fast 64-bit checksum of bytes: XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0), written
// from its specification. Not cryptographic: it catches files that were cut short, flipped or
// overwritten by accident (the prompt cache's entries, read at about 10 GB/s so that checking a
// 100 MB entry costs ~10 ms), not an attacker's forgery.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace resident {

uint64_t Checksum64(const void* data, size_t size, uint64_t seed = 0);
inline uint64_t Checksum64(std::string_view bytes) { return Checksum64(bytes.data(), bytes.size()); }

// The same checksum of bytes that arrive in pieces (a file read a buffer at a time): Digest()
// after any number of Update calls equals Checksum64 of their concatenation.
class Checksum64Stream {
 public:
  explicit Checksum64Stream(uint64_t seed = 0);
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  uint64_t seed_;
  uint64_t v_[4];
  uint64_t total_ = 0;
  unsigned char buffer_[32];
  size_t buffered_ = 0;
};

// 16 lowercase hex digits.
std::string Hex64(uint64_t value);

}  // namespace resident
