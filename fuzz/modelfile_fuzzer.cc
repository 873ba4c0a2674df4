// Modelfiles, as `resident create` and POST /api/create read them. A Modelfile that parses has
// valid parameters, and the parameters text /api/show builds from it does not crash.
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "store/modelfile.h"

using namespace resident;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<store::Modelfile> mf = store::ParseModelfile(text);
  if (!mf.ok()) {
    FUZZ_CHECK(mf.status().code() == StatusCode::kInvalidArgument, "unexpected error code");
    return 0;
  }
  FUZZ_CHECK(!mf->from.empty(), "a Modelfile without FROM parsed");
  for (const auto& [name, value] : mf->parameters) {
    FUZZ_CHECK(store::ValidateParameter(name, value).ok(), "parameter %s passed the parser only", name.c_str());
  }
  for (const auto& [role, content] : mf->messages) {
    FUZZ_CHECK(role == "system" || role == "user" || role == "assistant", "role %s", role.c_str());
  }
  (void)store::FormatParameters(mf->parameters);
  return 0;
}
