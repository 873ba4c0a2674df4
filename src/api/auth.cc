#include "api/auth.h"

#include <cctype>

namespace resident::api {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of `a` is compared (against `b`, cycled when shorter), so the time depends on the
  // lengths only. volatile keeps the compiler from stopping at the first difference.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  if (b.empty()) return a.empty();
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i % b.size()]);
  }
  return diff == 0;
}

KeyCheck CheckBearer(std::string_view authorization, std::string_view key) {
  if (key.empty()) return KeyCheck::kAccepted;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  std::string_view v = trim(authorization);
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size() || (v[kScheme.size()] != ' ' && v[kScheme.size()] != '\t')) return KeyCheck::kMissing;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(v[i])) != kScheme[i]) return KeyCheck::kMissing;
  }
  std::string_view token = trim(v.substr(kScheme.size()));
  if (token.empty()) return KeyCheck::kMissing;
  return ConstantTimeEquals(token, key) ? KeyCheck::kAccepted : KeyCheck::kWrong;
}

}  // namespace resident::api
