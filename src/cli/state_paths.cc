#include "cli/state_paths.h"

#include <filesystem>

#include "cli/config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"

namespace resident::cli {
namespace {

std::string BesideStore(const std::string& store_root, const std::string& name) {
  std::filesystem::path root(store_root);
  if (!root.has_filename()) root = root.parent_path();
  return (root.parent_path() / name).string();
}

}  // namespace

std::string LearnerStatePath(const std::string& store_root) {
  if (auto v = EnvFirst({"RESIDENT_LEARNER_STATE"})) return *v == "off" ? "" : *v;
  return BesideStore(store_root, "residency-history");
}

std::string RequestLogPath(const std::string& store_root) {
  if (auto v = EnvFirst({"RESIDENT_REQUEST_LOG"})) return *v == "off" ? "" : *v;
  return BesideStore(store_root, "request-log.csv");
}

Result<std::optional<api::RequestLogOptions>> RequestLogOptionsFromEnv(const std::string& store_root) {
  std::string path = RequestLogPath(store_root);
  if (path.empty()) return std::optional<api::RequestLogOptions>();
  api::RequestLogOptions o;
  o.path = path;
  if (auto v = EnvFirst({"RESIDENT_REQUEST_LOG_MAX_SIZE"})) {
    auto b = ParseBytes(*v);
    if (!b.ok() || *b < 4096) {
      return Status::InvalidArgument("RESIDENT_REQUEST_LOG_MAX_SIZE=" + *v + ": expected a size of 4KiB or more, e.g. 64MiB");
    }
    o.max_bytes = *b;
  }
  if (auto v = EnvFirst({"RESIDENT_REQUEST_LOG_MAX_AGE"})) {
    auto d = ParseGoDuration(*v);
    if (!d.ok() || *d <= Duration::zero()) {
      return Status::InvalidArgument("RESIDENT_REQUEST_LOG_MAX_AGE=" + *v + ": expected a duration above 0, e.g. 720h");
    }
    o.max_age = *d;
  }
  return std::optional<api::RequestLogOptions>(o);
}

}  // namespace resident::cli
