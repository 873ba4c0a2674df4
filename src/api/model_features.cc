#include "api/model_features.h"

#include "store/gguf_metadata.h"
#include "store/model_capabilities.h"

namespace resident::api {

Result<runner::Think> CheckModelFeatures(const store::ModelEntry& entry, std::string_view requested_model, bool tools,
                                         const ThinkValue& think) {
  auto info = store::ReadGgufInfo(entry.path);
  if (!info.ok()) {
    // A request that asks nothing of the model gets the load's own error for its file (or, with
    // a runner that needs no file, its answer); one that asks for tools or thinking, this one.
    if (!tools && !(think.given && think.on)) return runner::Think::kDefault;
    return info.status();
  }
  const store::ModelCapabilities caps = store::CapabilitiesOf(entry, *info);
  // Ollama checks thinking first (in its handler), then tools (when it schedules the model).
  if (!caps.thinking) {
    if (think.given && think.on) {
      return Status::InvalidArgument("\"" + std::string(requested_model) + "\" does not support thinking");
    }
  }
  if (tools && !caps.tools) return Status::InvalidArgument(store::FullModelName(entry.name) + " does not support tools");
  if (!caps.thinking) return runner::Think::kDefault;
  return think.given && !think.on ? runner::Think::kOff : runner::Think::kOn;
}

Status ApplyToolUse(const ToolUse& use, runner::GenerateRequest* request) {
  request->tool_choice = use.choice;
  request->parallel_tool_calls = use.parallel_calls;
  if (use.function.empty()) {
    request->tools = use.tools;
    return Status::Ok();
  }
  for (const runner::ToolDefinition& t : use.tools) {
    if (t.name == use.function) {
      request->tools = {t};
      request->tool_choice = runner::ToolChoice::kRequired;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("tool_choice names the function \"" + use.function + "\", which is not among the tools");
}

}  // namespace resident::api
