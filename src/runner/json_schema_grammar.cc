#include "runner/json_schema_grammar.h"

#include <exception>

#include "json-schema-to-grammar.h"  // llama.cpp common/

namespace resident::runner {

Result<std::string> JsonSchemaToGbnf(std::string_view schema_json) {
  try {
    common_json schema = common_json::parse(std::string(schema_json));
    return json_schema_to_grammar(schema, /*force_gbnf=*/true);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("invalid JSON schema in \"format\": ") + e.what());
  }
}

Result<std::string> JsonObjectGbnf() { return JsonSchemaToGbnf(R"({"type":"object"})"); }

}  // namespace resident::runner
