// Settings read from the environment (RESIDENT_* first, then Ollama's OLLAMA_* name).
#pragma once

#include <optional>
#include <string>

#include "core/status.h"

namespace resident::cli {

// The first of the named environment variables that is set and non-empty.
std::optional<std::string> EnvFirst(std::initializer_list<const char*> names);

struct HostPort {
  std::string host = "127.0.0.1";
  int port = 11434;
};

// Parses OLLAMA_HOST-style values: "host", "host:port", ":port", "http://host:port", "[::1]:port".
// A bare host gets port 11434. Errors: kInvalidArgument for a bad port.
Result<HostPort> ParseHostPort(std::string_view value);

// RESIDENT_HOST, then OLLAMA_HOST, then 127.0.0.1:11434.
Result<HostPort> HostFromEnv();

// RESIDENT_API_KEY when set: the key the command-line client sends as "Authorization: Bearer".
std::optional<std::string> ApiKeyFromEnv();

// An integer environment setting (RESIDENT_x, then OLLAMA_x); `fallback` when unset.
// Errors: kInvalidArgument naming the variable when the value is not an integer >= min.
Result<int> IntFromEnv(const char* resident_name, const char* ollama_name, int fallback, int min);

}  // namespace resident::cli
