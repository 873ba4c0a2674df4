// Modelfile: Ollama's recipe for a model. Parsing and validation only; ModelStore::Create turns
// a parsed Modelfile into layers.
//
//   FROM <path to a .gguf, or an existing model name>      (required, once)
//   PARAMETER <name> <value>                               (validated; "stop" may repeat)
//   TEMPLATE <text>       SYSTEM <text>       LICENSE <text> (may repeat)
//   MESSAGE <system|user|assistant> <text>
//   ADAPTER ...           → error: not supported
//   # comment
// Instructions are case-insensitive. A value is the rest of the line, a "quoted" string, or a
// """triple-quoted""" string that may span lines.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/option_table.h"
#include "core/status.h"
#include "store/model_catalog.h"

namespace resident::store {

struct Modelfile {
  std::string from;
  int from_line = 0;
  std::vector<std::pair<std::string, std::string>> parameters;  // (name, value), in order
  bool has_template = false;
  std::string template_text;
  bool has_system = false;
  std::string system;
  std::vector<std::pair<std::string, std::string>> messages;  // (role, content)
  std::vector<std::string> licenses;
};

// Errors: kInvalidArgument "line N: <problem>" (unknown instruction, unknown parameter, bad
// value, unterminated string, missing or repeated FROM, ADAPTER not supported...), or one of
// CheckModelfileLimits's.
Result<Modelfile> ParseModelfile(std::string_view text);

// What a model may carry. Each text becomes a layer of the store that every load and every
// /api/show reads back whole, and the manifest names each layer.
inline constexpr uint64_t kMaxTextLayerBytes = 16u << 20;  // a TEMPLATE, SYSTEM, LICENSE, the MESSAGEs
inline constexpr size_t kMaxLicenses = 64;
inline constexpr size_t kMaxMessages = 4096;
inline constexpr size_t kMaxParameters = 256;  // PARAMETER lines, stop strings included (at most 64 of them)

// Errors: kInvalidArgument naming the bound: a TEMPLATE, SYSTEM or LICENSE text or all MESSAGE
// texts together over kMaxTextLayerBytes, more than kMaxLicenses licenses, kMaxMessages messages,
// kMaxParameters parameters or kMaxStopStrings stop strings.
Status CheckModelfileLimits(const Modelfile& modelfile);

// Checks one PARAMETER: a name of core/option_table.h's table and a value of its type and
// range, the same check a request's `options` get. Names are lowercased. Errors:
// kInvalidArgument naming the parameter and the problem.
Status ValidateParameter(const std::string& name, const std::string& value);

using ParameterType = OptionType;
// The value's type for a known parameter name (kString for "stop"); kString for unknown ones.
ParameterType ParameterTypeOf(const std::string& name);

// /api/show's "parameters" text: one "name   value" line per parameter (stop values quoted).
std::string FormatParameters(const std::vector<std::pair<std::string, std::string>>& parameters);

// A Modelfile that recreates `entry` (its weights file as FROM), as /api/show returns it.
std::string FormatModelfile(const ModelEntry& entry);

}  // namespace resident::store
