#include "store/modelfile.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace resident::store {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

Status LineError(int line, const std::string& message) {
  return Status::InvalidArgument(fmt::format("Modelfile line {}: {}", line, message));
}

// Unescapes a "quoted" value: \" and \\ .
std::string Unquote(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
    out += s[i];
  }
  return out;
}

}  // namespace

ParameterType ParameterTypeOf(const std::string& name) {
  const OptionSpec* spec = FindOption(Lower(name));
  return spec ? spec->type : ParameterType::kString;
}

Status ValidateParameter(const std::string& raw_name, const std::string& value) {
  std::string name = Lower(raw_name);
  const OptionSpec* spec = FindOption(name);
  if (!spec) return Status::InvalidArgument("unknown parameter \"" + raw_name + "\"");
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(fmt::format("invalid value \"{}\" for parameter {}: {}", value, name, why));
  };
  switch (spec->type) {
    case ParameterType::kString:
      if (value.empty()) return bad("empty");
      return Status::Ok();
    case ParameterType::kBool:
      if (value != "true" && value != "false") return bad("expected true or false");
      return Status::Ok();
    case ParameterType::kInt:
    case ParameterType::kFloat: {
      // Both are read as numbers, then checked by the table the request-time check uses too.
      if (value.empty()) return bad(spec->type == ParameterType::kInt ? "expected an integer" : "expected a number");
      errno = 0;
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (*end != '\0' || errno == ERANGE) {
        return bad(spec->type == ParameterType::kInt ? "expected an integer" : "expected a number");
      }
      if (spec->type == ParameterType::kInt && value.find_first_of(".eExXnN") != std::string::npos) {
        return bad("expected an integer");
      }
      if (Status st = CheckOptionNumber(*spec, v); !st.ok()) return bad(st.message());
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Result<Modelfile> ParseModelfile(std::string_view text) {
  Modelfile mf;
  size_t pos = 0;
  int line_no = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    size_t nl = text.find('\n', pos);
    line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    return true;
  };
  if (text.find('\0') != std::string_view::npos) return Status::InvalidArgument("Modelfile contains a NUL byte");
  std::string_view line;
  while (next_line(line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    const int start_line = line_no;
    size_t sp = t.find_first_of(" \t");
    std::string instr = Lower(t.substr(0, sp));
    std::string rest = sp == std::string::npos ? "" : Trim(std::string_view(t).substr(sp));

    // PARAMETER and MESSAGE take a first word before the value.
    std::string first;
    if (instr == "parameter" || instr == "message") {
      size_t sp2 = rest.find_first_of(" \t");
      first = rest.substr(0, sp2);
      rest = sp2 == std::string::npos ? "" : Trim(std::string_view(rest).substr(sp2));
      if (first.empty()) {
        return LineError(start_line, instr == "parameter" ? "PARAMETER needs a name and a value" : "MESSAGE needs a role and a message");
      }
      if (instr == "parameter" && rest.empty()) return LineError(start_line, "PARAMETER " + first + " needs a value");
    }

    // The value: """multi-line""", "quoted", or the rest of the line.
    std::string value;
    if (rest.rfind("\"\"\"", 0) == 0) {
      std::string acc = rest.substr(3);
      size_t end;
      while ((end = acc.find("\"\"\"")) == std::string::npos) {
        std::string_view more;
        if (!next_line(more)) return LineError(start_line, "unterminated \"\"\" string");
        acc += "\n";
        acc += std::string(more);
      }
      if (!Trim(std::string_view(acc).substr(end + 3)).empty()) {
        return LineError(line_no, "unexpected text after the closing \"\"\"");
      }
      value = acc.substr(0, end);
    } else if (rest.size() >= 1 && rest[0] == '"') {
      if (rest.size() < 2 || rest.back() != '"') return LineError(start_line, "unterminated \" string");
      value = Unquote(std::string_view(rest).substr(1, rest.size() - 2));
    } else {
      value = rest;
    }

    if (instr == "from") {
      if (!mf.from.empty()) return LineError(start_line, "FROM may appear only once");
      if (value.empty()) return LineError(start_line, "FROM needs a .gguf path or a model name");
      mf.from = value;
      mf.from_line = start_line;
    } else if (instr == "parameter") {
      std::string name = Lower(first);
      if (Status st = ValidateParameter(name, value); !st.ok()) return LineError(start_line, st.message());
      mf.parameters.emplace_back(name, value);
    } else if (instr == "template") {
      mf.has_template = true;
      mf.template_text = value;
    } else if (instr == "system") {
      mf.has_system = true;
      mf.system = value;
    } else if (instr == "message") {
      std::string role = Lower(first);
      if (role != "system" && role != "user" && role != "assistant") {
        return LineError(start_line, "MESSAGE role must be system, user or assistant, not \"" + first + "\"");
      }
      mf.messages.emplace_back(role, value);
    } else if (instr == "license") {
      mf.licenses.push_back(value);
    } else if (instr == "adapter") {
      return LineError(start_line, "ADAPTER is not supported by resident (merge the LoRA into the GGUF instead)");
    } else {
      return LineError(start_line, "unknown instruction \"" + t.substr(0, sp) + "\"");
    }
  }
  if (mf.from.empty()) return Status::InvalidArgument("Modelfile has no FROM line");
  RESIDENT_RETURN_IF_ERROR(CheckModelfileLimits(mf));
  return mf;
}

Status CheckModelfileLimits(const Modelfile& mf) {
  auto too_long = [](const char* what, uint64_t bytes) {
    return Status::InvalidArgument(fmt::format("{} is {} bytes, more than a model may carry ({} bytes)", what, bytes,
                                               kMaxTextLayerBytes));
  };
  if (mf.template_text.size() > kMaxTextLayerBytes) return too_long("the template", mf.template_text.size());
  if (mf.system.size() > kMaxTextLayerBytes) return too_long("the system message", mf.system.size());
  if (mf.licenses.size() > kMaxLicenses) {
    return Status::InvalidArgument(fmt::format("too many licenses: {} (at most {})", mf.licenses.size(), kMaxLicenses));
  }
  for (const std::string& l : mf.licenses) {
    if (l.size() > kMaxTextLayerBytes) return too_long("a license", l.size());
  }
  if (mf.messages.size() > kMaxMessages) {
    return Status::InvalidArgument(fmt::format("too many messages: {} (at most {})", mf.messages.size(), kMaxMessages));
  }
  uint64_t message_bytes = 0;
  for (const auto& [role, content] : mf.messages) message_bytes += role.size() + content.size();
  if (message_bytes > kMaxTextLayerBytes) return too_long("the messages' text", message_bytes);
  if (mf.parameters.size() > kMaxParameters) {
    return Status::InvalidArgument(
        fmt::format("too many parameters: {} (at most {})", mf.parameters.size(), kMaxParameters));
  }
  size_t stops = 0;
  for (const auto& [name, value] : mf.parameters) {
    if (Lower(name) != "stop") continue;
    ++stops;
    RESIDENT_RETURN_IF_ERROR(CheckStopString(value));
  }
  return CheckStopCount(stops);
}

std::string FormatParameters(const std::vector<std::pair<std::string, std::string>>& parameters) {
  std::string out;
  for (const auto& [k, v] : parameters) {
    std::string shown = ParameterTypeOf(k) == ParameterType::kString ? "\"" + v + "\"" : v;
    out += fmt::format("{:<30} {}\n", k, shown);
  }
  if (!out.empty()) out.pop_back();
  return out;
}

std::string FormatModelfile(const ModelEntry& e) {
  auto quoted = [](const std::string& s) { return "\"\"\"" + s + "\"\"\""; };
  std::string out = "# Modelfile generated by \"resident show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM " +
                    e.name + "\n\nFROM " + e.path + "\n";
  if (!e.template_text.empty()) out += "TEMPLATE " + quoted(e.template_text) + "\n";
  if (!e.system.empty()) out += "SYSTEM " + quoted(e.system) + "\n";
  for (const auto& [k, v] : e.parameters) {
    out += "PARAMETER " + k + " " + (ParameterTypeOf(k) == ParameterType::kString ? "\"" + v + "\"" : v) + "\n";
  }
  for (const auto& [role, content] : e.messages) out += "MESSAGE " + role + " " + quoted(content) + "\n";
  if (!e.license.empty()) out += "LICENSE " + quoted(e.license) + "\n";
  return out;
}

}  // namespace resident::store
