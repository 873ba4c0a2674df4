// Model names: [host/][namespace/]model[:tag]. A name that parses must stay inside the store
// (no empty, "." or ".." path component, nothing but [a-z0-9._:-] in a part) and must parse
// back from its display form to the same name.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "store/model_name.h"

using namespace resident;

namespace {

bool SafeComponent(const std::string& part) {
  if (part.empty() || part == "." || part == ".." || part.find("..") != std::string::npos) return false;
  for (char c : part) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == ':';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<store::ModelName> name = store::ParseModelName(text);
  if (!name.ok()) {
    FUZZ_CHECK(name.status().code() == StatusCode::kInvalidArgument, "unexpected error code");
    return 0;
  }
  for (const std::string* part : {&name->host, &name->ns, &name->model, &name->tag}) {
    FUZZ_CHECK(SafeComponent(*part), "unsafe path component \"%s\"", part->c_str());
  }
  FUZZ_CHECK(name->tag.find(':') == std::string::npos, "':' in a tag");
  const std::string display = name->Display();
  Result<store::ModelName> again = store::ParseModelName(display);
  FUZZ_CHECK(again.ok() && *again == *name, "\"%s\" displays as \"%s\", which parses differently",
             std::string(text).c_str(), display.c_str());
  return 0;
}
