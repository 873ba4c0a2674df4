// What a chat or generate request asks of its model beyond text, checked as Ollama checks it
// before the model loads (server/routes.go, server/images.go): tools need a chat template that
// mentions them, thinking one that thinks (store/model_capabilities.h). And how a request's
// tools and think setting become the runner's.
#pragma once

#include <string_view>

#include "api/requests.h"
#include "core/status.h"
#include "runner/protocol.h"
#include "store/model_catalog.h"

namespace resident::api {

// The think setting the runner gets: for a model that thinks, on unless the request says false
// (Ollama's default), with the request's level; for one that does not, the template's default.
// Errors (kInvalidArgument, Ollama's words): think asked of a model that cannot think,
// "\"<model as requested>\" does not support thinking"; tools given to one whose template has
// none, "registry.ollama.ai/library/<m>:latest does not support tools" (the text clients match
// to fall back); the GGUF's own errors when its header cannot be read and tools or thinking
// were asked for (otherwise the template's default, and the load reports the file).
Result<runner::Think> CheckModelFeatures(const store::ModelEntry& entry, std::string_view requested_model, bool tools,
                                         const ThinkValue& think);

// Puts the tools into the request: all of them with the request's choice, or for a named
// function only that one, required. Errors (kInvalidArgument): a named function that is not
// among the tools.
Status ApplyToolUse(const ToolUse& use, runner::GenerateRequest* request);

}  // namespace resident::api
