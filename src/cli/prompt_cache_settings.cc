#include "cli/prompt_cache_settings.h"

#include <filesystem>

#include "cli/config.h"
#include "core/bytes.h"
#include "runner/prompt_cache.h"

namespace resident::cli {

Result<PromptCacheSettings> PromptCacheSettingsFromEnv(const std::string& home) {
  PromptCacheSettings s;
  s.dir = home + "/.cache/resident/prompt-cache";
  s.max_bytes = runner::kPromptCacheDefaultMaxBytes;
  if (auto v = EnvFirst({"RESIDENT_PROMPT_CACHE"})) {
    if (*v == "off" || *v == "0" || *v == "false" || v->empty()) {
      s.dir.clear();
    } else {
      std::error_code ec;
      std::filesystem::path abs = std::filesystem::absolute(*v, ec);
      s.dir = ec ? *v : abs.lexically_normal().string();
    }
  }
  if (auto v = EnvFirst({"RESIDENT_PROMPT_CACHE_SIZE"})) {
    auto bytes = ParseBytes(*v);
    if (!bytes.ok()) return Status::InvalidArgument("RESIDENT_PROMPT_CACHE_SIZE=\"" + *v + "\": " + bytes.status().message());
    s.max_bytes = *bytes;
  }
  if (!s.on()) {
    s.dir.clear();
    s.max_bytes = 0;
  }
  return s;
}

}  // namespace resident::cli
