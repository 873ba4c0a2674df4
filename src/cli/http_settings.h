// The HTTP server's safety settings for `resident serve`, from the environment.
#pragma once

#include "api/server.h"
#include "core/status.h"

namespace resident::cli {

// Fills the API key, allowed origins and limits of `options` from:
//   RESIDENT_API_KEY                          bearer token every request but GET / must carry
//   RESIDENT_ORIGINS, else OLLAMA_ORIGINS     comma-separated extra CORS origins ("*" wildcards)
//   RESIDENT_MAX_BODY         (default 32MiB) request body limit, bytes with units
//   RESIDENT_MAX_HEADER       (default 64KiB) request line + headers limit
//   RESIDENT_MAX_CONNECTIONS  (default 128)   connections served at once; as many more may wait
//   RESIDENT_IDLE_TIMEOUT     (default 10s)   Go duration or seconds; > 0
// Errors: kInvalidArgument naming the variable and its value.
Status ApplyHttpSettingsFromEnv(api::ApiServer::Options* options);

}  // namespace resident::cli
