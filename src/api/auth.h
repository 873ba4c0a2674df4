// The optional API key (RESIDENT_API_KEY): when the server has one, every request but `GET /`
// (and CORS preflights) must carry `Authorization: Bearer <key>`.
#pragma once

#include <string_view>

namespace resident::api {

// Compares two secrets in time that depends only on their lengths, never on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

enum class KeyCheck {
  kAccepted,
  kMissing,  // no Authorization header, or not a Bearer one
  kWrong,    // a Bearer token that is not the key
};

// Checks an Authorization header value against `key` ("Bearer" is matched case-insensitively,
// as RFC 6750 allows; spaces around the token are ignored). An empty `key` accepts everything.
KeyCheck CheckBearer(std::string_view authorization, std::string_view key);

}  // namespace resident::api
