// The prompt cache's settings for `resident serve` (runner/prompt_cache.h), from the environment.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace resident::cli {

struct PromptCacheSettings {
  std::string dir;         // empty: off
  uint64_t max_bytes = 0;  // 0: off
  bool on() const { return !dir.empty() && max_bytes > 0; }
};

// Reads
//   RESIDENT_PROMPT_CACHE       the folder (default `home`/.cache/resident/prompt-cache); "off"
//                               (or "0", "false", "") turns the cache off; a relative path is
//                               taken from the working folder
//   RESIDENT_PROMPT_CACHE_SIZE  its size, bytes with units (default 2GiB; 0 turns it off)
// Errors: kInvalidArgument naming the variable and its value.
Result<PromptCacheSettings> PromptCacheSettingsFromEnv(const std::string& home);

}  // namespace resident::cli
