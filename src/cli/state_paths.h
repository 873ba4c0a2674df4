// Where the server keeps the files it writes about itself, next to its model store (`<store>/..`):
// what keep_alive "auto" learned (residency-history) and the request log (request-log.csv).
// `serve` writes them; `bench simulate --own` reads them.
#pragma once

#include <optional>
#include <string>

#include "api/request_log.h"
#include "core/status.h"

namespace resident::cli {

// RESIDENT_LEARNER_STATE (a path, or "off": ""), else STORE/../residency-history.
std::string LearnerStatePath(const std::string& store_root);

// RESIDENT_REQUEST_LOG (a path, or "off": ""), else STORE/../request-log.csv.
std::string RequestLogPath(const std::string& store_root);

// The request log's settings: RequestLogPath(), RESIDENT_REQUEST_LOG_MAX_SIZE (a byte size, both
// files together; default 64MiB), RESIDENT_REQUEST_LOG_MAX_AGE (a Go duration; default 720h).
// nullopt: the log is off. Errors: kInvalidArgument naming the variable.
Result<std::optional<api::RequestLogOptions>> RequestLogOptionsFromEnv(const std::string& store_root);

}  // namespace resident::cli
