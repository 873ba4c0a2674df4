#include "core/checksum.h"

#include <algorithm>
#include <cstring>

namespace resident {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Little-endian loads (the machines resident runs on are little-endian; memcpy keeps it legal
// for unaligned addresses and compiles to one load).
inline uint64_t Load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t Load32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}

inline uint64_t MergeRound(uint64_t acc, uint64_t v) {
  acc ^= Round(0, v);
  return acc * kP1 + kP4;
}

// Folds the four lanes and the tail (< 32 bytes) into the final value.
uint64_t Finish(const uint64_t* v, bool lanes, uint64_t seed, uint64_t total, const unsigned char* p, const unsigned char* end) {
  uint64_t h;
  if (lanes) {
    h = Rotl(v[0], 1) + Rotl(v[1], 7) + Rotl(v[2], 12) + Rotl(v[3], 18);
    for (int i = 0; i < 4; ++i) h = MergeRound(h, v[i]);
  } else {
    h = seed + kP5;
  }
  h += total;
  while (end - p >= 8) {
    h ^= Round(0, Load64(p));
    h = Rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (end - p >= 4) {
    h ^= static_cast<uint64_t>(Load32(p)) * kP1;
    h = Rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= static_cast<uint64_t>(*p) * kP5;
    h = Rotl(h, 11) * kP1;
    ++p;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// Consumes whole 32-byte stripes from p; returns where it stopped.
const unsigned char* Stripes(uint64_t* v, const unsigned char* p, const unsigned char* end) {
  while (end - p >= 32) {
    v[0] = Round(v[0], Load64(p));
    v[1] = Round(v[1], Load64(p + 8));
    v[2] = Round(v[2], Load64(p + 16));
    v[3] = Round(v[3], Load64(p + 24));
    p += 32;
  }
  return p;
}

}  // namespace

uint64_t Checksum64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* const end = p + size;
  uint64_t v[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
  p = Stripes(v, p, end);
  return Finish(v, size >= 32, seed, static_cast<uint64_t>(size), p, end);
}

Checksum64Stream::Checksum64Stream(uint64_t seed) : seed_(seed), v_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1} {}

void Checksum64Stream::Update(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* const end = p + size;
  total_ += size;
  if (buffered_ > 0) {
    const size_t take = std::min(size, sizeof buffer_ - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    if (buffered_ < sizeof buffer_) return;
    Stripes(v_, buffer_, buffer_ + sizeof buffer_);
    buffered_ = 0;
  }
  p = Stripes(v_, p, end);
  buffered_ = static_cast<size_t>(end - p);
  std::memcpy(buffer_, p, buffered_);
}

uint64_t Checksum64Stream::Digest() const {
  return Finish(v_, total_ >= 32, seed_, total_, buffer_, buffer_ + buffered_);
}

std::string Hex64(uint64_t value) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[value & 0xf];
    value >>= 4;
  }
  return out;
}

}  // namespace resident
