// JSON schema -> GBNF grammar, through llama.cpp common's json_schema_to_grammar. Kept apart
// (like chat_template.cc) because it is the only other file that sees llama.cpp's common headers
// and their vendored JSON library; no llama.h, so the server process may call it too.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace resident::runner {

// A GBNF grammar (root rule "root") that accepts exactly the JSON documents the schema
// describes. `schema_json` is the schema as JSON text. Errors: kInvalidArgument when the text is
// not JSON or the schema uses something the converter does not support.
Result<std::string> JsonSchemaToGbnf(std::string_view schema_json);

// The grammar for Ollama's `format: "json"`: any JSON object.
Result<std::string> JsonObjectGbnf();

}  // namespace resident::runner
